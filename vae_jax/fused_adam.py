"""Adam in one pass over memory on CPU: a small C++ kernel (vae_jax/native/fused_adam.cc) called
from the jitted training step through the XLA FFI.

Why: XLA:CPU compiles optax's Adam into three loops per weight matrix (first moment, second
moment, parameters), and the trainer's finite check reads the new parameters a fourth time. The
kernel reads p, g, m, v once, writes p, m, v once in place, counts non-finite new parameters on the
way, and splits the work over XLA's intra-op threads (what that saves per step: ``python
bench/ablate_step.py --variants trainer,optax_adam``).

What it computes is optax.adam followed by optax.apply_updates, operation by operation in float32
(the bias corrections, the learning-rate schedule and the optimizer state are optax's own), with
correctly rounded division and square root. XLA:CPU evaluates the same formula with its own
vectorized division, which can differ in the last bit, so parameters trained with and without the
kernel agree to float32 rounding, not bit for bit (tests/test_fused_adam.py bounds the difference).

``train.fused_adam``: ``auto`` (default) uses the kernel when it applies: CPU backend, one device,
``optim.name='adam'`` without gradient clipping, a model without ``retract``,
and a C++ compiler to build it with (``$CXX`` or ``c++``; built once per machine into
``$VAE_JAX_CACHE`` or ``~/.cache/vae_jax``). ``on`` makes a missing condition an error naming it;
``off`` keeps optax. The choice and its reason are printed and recorded in run_meta.json.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax

MODES = ("auto", "on", "off")
TARGET = "vae_jax_fused_adam"
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native", "fused_adam.cc")
# No contraction of a·b + c into one rounding (XLA does not contract either); no errno from sqrt,
# so the loop vectorizes.
CXXFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c++17", "-shared",
            "-fPIC", "-w")

_loaded: dict = {}


class FusedAdamUnavailable(RuntimeError):
    """The kernel cannot be used here; the message says why."""


def _cpu_signature() -> str:
    # -march=native code runs only on CPUs with the same features: key the build on them, so a
    # cache directory shared between machines never hands one machine the other's library.
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
        return "".join(lines)
    except OSError:
        import platform
        return platform.processor() + platform.machine()


def library_path() -> str:
    src = open(SOURCE, "rb").read()
    key = hashlib.sha256(b"\0".join([src, " ".join(CXXFLAGS).encode(), jax.__version__.encode(),
                                     _cpu_signature().encode()])).hexdigest()[:16]
    cache = os.environ.get("VAE_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vae_jax")
    return os.path.join(cache, "native", f"fused_adam-{key}.so")


def _build(path: str) -> None:
    cxx = os.environ.get("CXX", "c++")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Built under a temporary name and renamed: concurrent builds (parallel tests, sweep workers)
    # never load a half-written library.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
    os.close(fd)
    try:
        cmd = [cxx, *CXXFLAGS, f"-I{jax.ffi.include_dir()}", SOURCE, "-o", tmp]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except FileNotFoundError:
            raise FusedAdamUnavailable(f"no C++ compiler: {cxx!r} not found (set $CXX)") from None
        if r.returncode != 0:
            raise FusedAdamUnavailable(f"building {SOURCE} failed ({' '.join(cmd)}):\n{r.stderr[-2000:]}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load() -> str:
    """Builds (once per machine) and registers the kernel; returns the library path."""
    if "path" in _loaded:
        return _loaded["path"]
    if "error" in _loaded:
        raise FusedAdamUnavailable(_loaded["error"])
    import ctypes

    try:
        path = library_path()
        if not os.path.exists(path):
            _build(path)
        lib = ctypes.cdll.LoadLibrary(path)
        jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.VaeJaxFusedAdam), platform="cpu")
    except FusedAdamUnavailable as e:
        _loaded["error"] = str(e)
        raise
    except OSError as e:
        _loaded["error"] = f"loading the fused Adam kernel failed: {e}"
        raise FusedAdamUnavailable(_loaded["error"]) from e
    _loaded["path"] = path
    return path


@dataclasses.dataclass(frozen=True)
class Plan:
    """Whether the training step uses the kernel, and why (printed and kept in run_meta.json)."""
    use: bool
    reason: str

    def as_dict(self) -> dict:
        return {"fused_adam": self.use, "reason": self.reason}


def _why_not(config, model, num_devices: int) -> str | None:
    optim = config.optim
    if jax.default_backend() != "cpu":
        return f"backend is {jax.default_backend()}, the kernel is for CPU"
    if num_devices > 1:
        return f"data parallel over {num_devices} devices"
    if optim.name != "adam":
        return f"optim.name={optim.name!r}, the kernel implements adam"
    if optim.get("grad_clip_norm", 0.0):
        return f"optim.grad_clip_norm={optim.grad_clip_norm} (gradient clipping goes through optax)"
    if getattr(model, "retract", None) is not None:
        return "the model retracts its parameters after each update"
    return None


def plan(config, model, num_devices: int = 1) -> Plan:
    """Resolves ``config.train.fused_adam`` (auto | on | off) for this run."""
    mode = config.train.get("fused_adam", "auto")
    if mode not in MODES:
        from vae_jax.config_validation import ConfigError
        raise ConfigError(f"train.fused_adam: {mode!r} is not one of {list(MODES)}")
    if mode == "off":
        return Plan(False, "train.fused_adam='off'")
    reason = _why_not(config, model, num_devices)
    if reason is None:
        try:
            load()
        except FusedAdamUnavailable as e:
            reason = str(e)
    if reason is not None:
        if mode == "on":
            from vae_jax.config_validation import ConfigError
            raise ConfigError(f"train.fused_adam='on' but the kernel cannot be used: {reason}")
        return Plan(False, reason)
    return Plan(True, "one-pass Adam kernel (XLA FFI, CPU)")


def apply(params, grads, opt_state, optim_cfg, lr_transform: optax.GradientTransformation):
    """optax.adam's update and optax.apply_updates in one kernel call for all parameter leaves
    (float32, as every model here initializes them).

    ``opt_state`` is the state of ``optax.adam`` (``(ScaleByAdamState, lr state)``) and is returned
    in the same structure, so checkpoints do not depend on whether the kernel ran. Returns
    (new params, new opt_state, whether every new parameter is finite)."""
    load()  # registers the kernel with XLA (a no-op once done); raises FusedAdamUnavailable
    adam_state, lr_state = opt_state
    if not isinstance(adam_state, optax.ScaleByAdamState):
        raise TypeError(f"fused Adam expects optax.adam's state, got {type(adam_state).__name__}")
    b1, b2, eps = optim_cfg.get("b1", 0.9), optim_cfg.get("b2", 0.999), optim_cfg.get("eps", 1e-8)
    count_inc = optax.safe_increment(adam_state.count)
    # As optax computes them (1 - β^t in float32), and as reciprocals: XLA multiplies by 1/c.
    inv_bc1 = 1.0 / (1 - b1 ** count_inc).astype(jnp.float32)
    inv_bc2 = 1.0 / (1 - b2 ** count_inc).astype(jnp.float32)
    # The learning-rate transform itself gives the signed step size (schedule included) and its
    # next state: applied to a 1 it returns -lr(count) · 1.
    step_size, new_lr_state = lr_transform.update(jnp.ones((), jnp.float32), lr_state)
    scalars = jnp.stack([inv_bc1, inv_bc2, step_size]).astype(jnp.float32)
    hyper = {"one_minus_b1": np.float32(1 - b1), "b1": np.float32(b1), "one_minus_b2": np.float32(1 - b2),
             "b2": np.float32(b2), "eps": np.float32(eps)}
    leaves, treedef = jax.tree.flatten(params)
    if any(jnp.dtype(p.dtype) != jnp.float32 for p in leaves):
        raise TypeError(f"fused Adam updates float32 parameters, got {sorted({str(p.dtype) for p in leaves})}")
    operands = [scalars]
    for group in zip(leaves, treedef.flatten_up_to(grads), treedef.flatten_up_to(adam_state.mu),
                     treedef.flatten_up_to(adam_state.nu)):
        operands.extend(group)
    # One call for every leaf: it then depends on the whole backward pass, so no matmul still reads
    # a weight it overwrites and XLA can update p, m and v in place without protective copies.
    results = [jax.ShapeDtypeStruct((), jnp.int32)]
    aliases = {}
    for i, p in enumerate(leaves):
        results.extend([jax.ShapeDtypeStruct(p.shape, jnp.float32)] * 3)
        for j, operand in enumerate((0, 2, 3)):  # p, m, v -> p', m', v'
            aliases[1 + 4 * i + operand] = 1 + 3 * i + j
    out = jax.ffi.ffi_call(TARGET, results, input_output_aliases=aliases,
                           vmap_method="broadcast_all")(*operands, **hyper)
    new_params = treedef.unflatten(out[1::3])
    mu, nu = treedef.unflatten(out[2::3]), treedef.unflatten(out[3::3])
    finite = out[0] == 0
    return new_params, (optax.ScaleByAdamState(count=count_inc, mu=mu, nu=nu), new_lr_state), finite


if __name__ == "__main__":  # python -m vae_jax.fused_adam: build now and say where
    try:
        print(load())
    except FusedAdamUnavailable as e:
        sys.exit(str(e))
