"""Which of JAX's two lowerings of the threefry hash XLA:CPU compiles: the same bits either way.

JAX lowers ``threefry2x32`` (the hash under every ``jax.random`` draw: shuffling, dynamic
binarization, the reparameterization noise, the IWAE evaluator's samples) with its 20 rounds
unrolled on every platform but the CPU, where it emits a 5-iteration loop to keep compile times
short. Inside a training step that loop keeps XLA:CPU from fusing the rounds: each iteration
writes the whole state to memory and reads it back, and the draws run ≈ 2.2x slower than the
unrolled form (a 512×784 binarization + 512×150 normals: 1.29 → 0.58 ms, and the unrolled form
compiles faster; ``python bench/threefry_lowering.py``). ``install()`` registers JAX's own unrolled
lowering (``jax._src.random.threefry2x32``) for the CPU too. No random number changes
(tests/test_prng.py); through the CLI the default VAE's epoch is 3–16 % shorter (BENCHMARKS.md,
"Threefry on the CPU").

``VAE_JAX_THREEFRY`` chooses: ``auto`` (default: unrolled where this JAX has the rule, else JAX's
default with a warning), ``unrolled``, or ``rolled`` (JAX's CPU default). A run records the choice
in run_meta.json (``threefry_lowering``). Applied when ``vae_jax`` is imported, before anything is
lowered; ``use()`` switches for programs lowered afterwards.
"""
from __future__ import annotations

import os
import warnings

ENV = "VAE_JAX_THREEFRY"
MODES = ("auto", "unrolled", "rolled")
_active = "rolled"   # what is registered for the CPU now (JAX's default until install/use)


def check_env() -> str | None:
    """The error line for a bad ``VAE_JAX_THREEFRY``, or None."""
    value = os.environ.get(ENV, "auto")
    if value not in MODES:
        return f"{ENV}: {value!r} is not one of {list(MODES)} (unset it for 'auto')"
    return None


def _rules():
    """JAX's (unrolled, rolled) lowering rules, or None where this JAX has moved them."""
    try:
        from jax._src.random import threefry2x32 as tf
        return tf.threefry2x32_p, tf._threefry2x32_lowering_rule, tf._threefry2x32_cpu_lowering_rule
    except (ImportError, AttributeError):
        return None


def use(mode: str) -> str:
    """Registers the ``mode`` lowering ('unrolled' or 'rolled') for the CPU; returns it."""
    global _active
    if mode not in ("unrolled", "rolled"):
        raise ValueError(f"{ENV}: {mode!r} is not one of ['unrolled', 'rolled']")
    rules = _rules()
    if rules is None:
        if mode == "unrolled":
            import jax
            raise RuntimeError(f"{ENV}=unrolled: jax {jax.__version__} has no "
                               "jax._src.random.threefry2x32._threefry2x32_lowering_rule; unset it")
        return _active
    from jax._src.interpreters import mlir
    prim, unrolled, rolled = rules
    if mode == "unrolled":
        mlir.register_lowering(prim, unrolled, platform="cpu", inline=False)  # as JAX does elsewhere
    else:
        mlir.register_lowering(prim, rolled, platform="cpu")
    _active = mode
    return mode


def install() -> None:
    """Applies ``VAE_JAX_THREEFRY`` (a bad value is left to ``check_env``'s callers to report)."""
    value = os.environ.get(ENV, "auto")
    if value == "auto":
        if _rules() is None:
            import jax
            warnings.warn(f"{ENV}=auto: jax {jax.__version__} moved its threefry lowering rules; random "
                          "draws on the CPU use JAX's default (rolled) form, slower, same numbers", stacklevel=2)
            return
        use("unrolled")
    elif value in ("unrolled", "rolled"):
        use(value)


def active() -> str:
    """'unrolled' or 'rolled': the lowering programs lowered now get on the CPU."""
    error = check_env()
    if error:
        raise ValueError(error)
    return _active
