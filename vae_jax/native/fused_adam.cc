// Adam in one pass over memory, for XLA:CPU through the XLA FFI.
//
// XLA:CPU compiles optax's Adam into three loops per weight (first moment, second moment,
// parameters) and the trainer's finite check into a fourth. One call of this kernel updates every
// parameter leaf: it reads p, g, m, v once, writes p, m, v once (in place: the Python side aliases
// them), counts non-finite new parameters on the way and splits the work over XLA's intra-op
// threads. The arithmetic is optax's formula, operation by operation in float32 with no
// floating-point contraction, and with correctly rounded division and square root; XLA's
// vectorized division may differ in the last bit, so the results agree with optax to rounding
// (tests/test_fused_adam.py checks the kernel bit for bit against float32 Adam in numpy).
//
// XLA rewrites optax's division by the bias corrections c = 1 - β^t into a multiplication by 1/c,
// so `scalars` holds [1/c1, 1/c2, step_size] as XLA computes them (vae_jax/fused_adam.py). A
// batched (vmapped) call with S members passes S such triples and treats each array as S equal
// contiguous blocks.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

inline bool IsFinite(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x7f800000u) != 0x7f800000u;
}

// Every operation and its order follow optax as XLA compiles it (scale_by_adam, the learning-rate
// scale, apply_updates): m' = (1-b1)·g + b1·m; v' = (1-b2)·g² + b2·v;
// u = (m'·(1/c1)) / (sqrt(v'·(1/c2)) + eps); p' = p + u·step_size (optax's eps_root is 0).
int64_t UpdateBlock(const float* p_in, float* p, const float* g, float* m, float* v, int64_t n, float one_minus_b1,
                    float b1, float one_minus_b2, float b2, float eps, float inv_bc1,
                    float inv_bc2, float step_size) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = one_minus_b1 * gi + b1 * m[i];
    const float vi = one_minus_b2 * (gi * gi) + b2 * v[i];
    const float mhat = mi * inv_bc1;
    const float vhat = vi * inv_bc2;
    const float u = (mhat / (std::sqrt(vhat) + eps)) * step_size;
    const float pi = p_in[i] + u;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    bad += !IsFinite(pi);
  }
  return bad;
}

struct Hyper {
  float one_minus_b1, b1, one_minus_b2, b2, eps;
};

struct Chunk {
  const float* p_in;
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  int64_t member;
};

// The work of one call, shared by the calling thread and the tasks it hands to XLA's intra-op
// pool; it lives until the last of them lets go of it (a task may start after the call returned
// and then finds no chunk left).
struct Job {
  std::vector<Chunk> chunks;
  const float* scalars;
  Hyper h;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::unique_ptr<std::atomic<int64_t>[]> bad;

  void Run() {
    const int64_t total = static_cast<int64_t>(chunks.size());
    for (int64_t c = next.fetch_add(1); c < total; c = next.fetch_add(1)) {
      const Chunk& k = chunks[c];
      const float* s = scalars + 3 * k.member;
      bad[k.member].fetch_add(UpdateBlock(k.p_in, k.p, k.g, k.m, k.v, k.n, h.one_minus_b1, h.b1,
                                          h.one_minus_b2, h.b2, h.eps, s[0], s[1], s[2]),
                              std::memory_order_relaxed);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

constexpr int64_t kChunk = 16384;  // floats per task: 64 KiB of each array

// Operands: scalars [members, 3], then (p, g, m, v) per parameter leaf. Results: non-finite flag
// [members], then (p', m', v') per leaf. All leaves in one call, so it runs after the whole
// backward pass: no matmul still reads a weight it overwrites, and p, m, v are updated in place.
ffi::Error FusedAdamImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> scalars,
                         ffi::RemainingArgs args, ffi::ResultBuffer<ffi::S32> nonfinite,
                         ffi::RemainingRets rets, float one_minus_b1, float b1, float one_minus_b2,
                         float b2, float eps) {
  const int64_t members = scalars.element_count() / 3;
  if (members < 1 || scalars.element_count() % 3 != 0 || nonfinite->element_count() != members ||
      args.size() % 4 != 0 || rets.size() != args.size() / 4 * 3) {
    return ffi::Error::InvalidArgument("vae_jax_fused_adam: operands are not (p, g, m, v) per leaf");
  }
  auto job = std::make_shared<Job>();
  for (size_t leaf = 0; leaf < args.size() / 4; ++leaf) {
    auto p = args.get<ffi::Buffer<ffi::F32>>(4 * leaf);
    auto g = args.get<ffi::Buffer<ffi::F32>>(4 * leaf + 1);
    auto m = args.get<ffi::Buffer<ffi::F32>>(4 * leaf + 2);
    auto v = args.get<ffi::Buffer<ffi::F32>>(4 * leaf + 3);
    auto po = rets.get<ffi::Buffer<ffi::F32>>(3 * leaf);
    auto mo = rets.get<ffi::Buffer<ffi::F32>>(3 * leaf + 1);
    auto vo = rets.get<ffi::Buffer<ffi::F32>>(3 * leaf + 2);
    if (!p || !g || !m || !v || !po || !mo || !vo) {
      return ffi::Error::InvalidArgument("vae_jax_fused_adam: every operand must be float32");
    }
    const int64_t n = p->element_count();
    if (n % members != 0 || g->element_count() != n || m->element_count() != n ||
        v->element_count() != n || (*po)->element_count() != n) {
      return ffi::Error::InvalidArgument("vae_jax_fused_adam: inconsistent operand sizes");
    }
    float* pd = (*po)->typed_data();
    float* md = (*mo)->typed_data();
    float* vd = (*vo)->typed_data();
    // In place when XLA honours the aliasing (it does unless an operand is still needed later).
    if (md != m->typed_data()) std::memcpy(md, m->typed_data(), n * sizeof(float));
    if (vd != v->typed_data()) std::memcpy(vd, v->typed_data(), n * sizeof(float));
    const int64_t block = n / members;
    for (int64_t k = 0; k < members; ++k) {
      for (int64_t lo = k * block; lo < (k + 1) * block; lo += kChunk) {
        const int64_t len = std::min(kChunk, (k + 1) * block - lo);
        job->chunks.push_back(Chunk{p->typed_data() + lo, pd + lo, g->typed_data() + lo, md + lo,
                                    vd + lo, len, k});
      }
    }
  }
  job->scalars = scalars.typed_data();
  job->h = Hyper{one_minus_b1, b1, one_minus_b2, b2, eps};
  job->bad.reset(new std::atomic<int64_t>[members]);
  for (int64_t k = 0; k < members; ++k) job->bad[k].store(0);
  const int64_t total = static_cast<int64_t>(job->chunks.size());
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), total) - 1;
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule([job] { job->Run(); });
  job->Run();
  // Chunks that a helper took are finished by it; wait for those (at most one chunk each).
  while (job->done.load(std::memory_order_acquire) < total) std::this_thread::yield();
  for (int64_t k = 0; k < members; ++k) nonfinite->typed_data()[k] = job->bad[k].load() > 0;
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(VaeJaxFusedAdam, FusedAdamImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scalars [members, 3]
                                  .RemainingArgs()               // (p, g, m, v) per leaf
                                  .Ret<ffi::Buffer<ffi::S32>>()  // [members] any non-finite p'
                                  .RemainingRets()               // (p', m', v') per leaf
                                  .Attr<float>("one_minus_b1")
                                  .Attr<float>("b1")
                                  .Attr<float>("one_minus_b2")
                                  .Attr<float>("b2")
                                  .Attr<float>("eps"));
