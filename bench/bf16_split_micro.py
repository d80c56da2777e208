"""The first layer's two matmuls (x·W₁ forward, xᵀ·dh₁ weight gradient) for a binary batch x, in
float32 and through bf16 operands.

    python bench/bf16_split_micro.py [--rounds 7]

x ∈ {0, 1} is exact in bf16, and a float32 matrix is exactly the sum of three bf16 parts
(hi + mid + lo, 8 significand bits each), so x·W = x·hi + x·mid + x·lo with float32 accumulation
is a float32-accurate product computed by bf16 matmuls (this CPU has AMX/AVX-512 bf16). The script
times float32, that three-part split (as one concatenated matmul and as three), and plain bf16
(one part: not float32-accurate), and prints each one's largest relative error against float64.
For reference it also times the forward matmul x·W alone in float32 and in bf16 with both
operands already bf16 (no casts, no transposed operand): the best case for bf16.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=300)
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax import lax

    bf16, f32 = jnp.bfloat16, jnp.float32
    tn = (((0,), (0,)), ((), ()))  # contract the batch axis: xᵀ·dh

    def split3(w):
        hi = w.astype(bf16)
        r = w - hi.astype(f32)
        mid = r.astype(bf16)
        return hi, mid, (r - mid.astype(f32)).astype(bf16)

    def float32(x, w, dh):
        return x @ w, lax.dot_general(x, dh, tn)

    def split_concat(x, w, dh):
        xb, n = x.astype(bf16), w.shape[1]
        o = jnp.dot(xb, jnp.concatenate(split3(w), axis=1), preferred_element_type=f32)
        g = lax.dot_general(xb, jnp.concatenate(split3(dh), axis=1), tn, preferred_element_type=f32)
        return o[:, :n] + o[:, n:2 * n] + o[:, 2 * n:], g[:, :n] + g[:, n:2 * n] + g[:, 2 * n:]

    def split_three(x, w, dh):
        xb = x.astype(bf16)
        fwd = sum(jnp.dot(xb, part, preferred_element_type=f32) for part in split3(w))
        grad = sum(lax.dot_general(xb, part, tn, preferred_element_type=f32) for part in split3(dh))
        return fwd, grad

    def bf16_one_part(x, w, dh):
        xb = x.astype(bf16)
        return (jnp.dot(xb, w.astype(bf16), preferred_element_type=f32),
                lax.dot_general(xb, dh.astype(bf16), tn, preferred_element_type=f32))

    k = jax.random.split(jax.random.PRNGKey(0), 3)
    x = (jax.random.uniform(k[0], (128, 784)) < 0.13).astype(f32)  # ≈ MNIST's share of ink
    w = jax.random.normal(k[1], (784, 500)) * 0.03
    dh = jax.random.normal(k[2], (128, 500))
    x64 = np.asarray(x, np.float64)
    ref = (x64 @ np.asarray(w, np.float64), x64.T @ np.asarray(dh, np.float64))
    xb, wb = x.astype(bf16), w.astype(bf16)
    # name -> (function, its arguments, the float32 variant it is compared with)
    variants = {"float32": (float32, (x, w, dh), "float32"),
                "bf16 split x3 (concat)": (split_concat, (x, w, dh), "float32"),
                "bf16 split x3 (three)": (split_three, (x, w, dh), "float32"),
                "bf16 one part": (bf16_one_part, (x, w, dh), "float32"),
                "forward x·W float32": (lambda a, b: (a @ b,), (x, w), "forward x·W float32"),
                "forward x·W bf16 operands": (lambda a, b: (jnp.dot(a, b, preferred_element_type=f32),),
                                              (xb, wb), "forward x·W float32")}
    jitted = {n: jax.jit(f) for n, (f, _, _) in variants.items()}
    err = {}
    for n, (_, a, _) in variants.items():
        out = jitted[n](*a)
        err[n] = max(float(np.max(np.abs(np.asarray(o) - r)) / np.max(np.abs(r))) for o, r in zip(out, ref))
    times = {n: [] for n in variants}
    for _ in range(args.rounds):
        for n, (_, a, _) in variants.items():
            t = time.perf_counter()
            for _ in range(args.calls):
                out = jitted[n](*a)
            jax.block_until_ready(out)
            times[n].append((time.perf_counter() - t) / args.calls)
    result = {}
    for n, (_, _, base_name) in variants.items():
        med, base = common.median(times[n]), common.median(times[base_name])
        result[n] = {"ms": 1e3 * med, "vs": base_name, "ratio": med / base, "max_rel_error": err[n]}
        print(f"{n:26s} {1e3 * med:.3f} ms  x{med / base:.2f} of {base_name}  max rel. error {err[n]:.1e}")
    print("saved", common.save_result("bf16_split_micro", {"machine": common.machine_description(),
                                                           "load_avg": common.load_avg(), "variants": result}))


if __name__ == "__main__":
    main()
