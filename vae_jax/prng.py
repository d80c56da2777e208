"""Random bits and normals with JAX's threefry-2x32, bit for bit, as straight-line code.

On CPU JAX lowers its threefry hash as a rolled five-iteration while-loop (to keep programs
small). XLA:CPU runs every iteration as separate thunks that copy the whole counter arrays.
Written out as twenty rounds of jnp ops, the hash becomes one fused elementwise loop: 50,176
words in 45 µs instead of 220 µs (`python bench/random_micro.py`).

``bits`` and ``normal`` return exactly what ``jax.random.bits`` / ``jax.random.normal`` return for
the same key (with JAX's default ``jax_threefry_partitionable``); tests/test_prng.py checks that.
Keys of another PRNG implementation, or the non-partitionable threefry layout, go to
``jax.random`` itself, so results never depend on which path ran.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x, r: int):
    return lax.shift_left(x, np.uint32(r)) | lax.shift_right_logical(x, np.uint32(32 - r))


def threefry2x32(k1, k2, x1, x2):
    """The Threefry-2x32 block cipher, 20 rounds (Salmon et al. 2011), as JAX defines it."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotate_left(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def _raw_threefry_key(key):
    """uint32[2] key data when ``key`` is a threefry key we can reproduce; otherwise None."""
    if not jax.config.jax_threefry_partitionable:
        return None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if "threefry" not in str(jax.random.key_impl(key)):
            return None
        key = jax.random.key_data(key)
    elif jax.config.jax_default_prng_impl != "threefry2x32":
        return None
    return key if key.shape == (2,) and key.dtype == jnp.uint32 else None


def bits(key, shape) -> jax.Array:
    """uint32 random bits of ``shape``; equals ``jax.random.bits(key, shape, jnp.uint32)``."""
    shape = tuple(shape)
    raw = _raw_threefry_key(key)
    n = math.prod(shape)
    if raw is None or n >= 2**32:
        return jax.random.bits(key, shape, jnp.uint32)
    # JAX's partitionable layout: the 64-bit element index split into (high, low) words is the
    # counter, and the two output words are xor-ed.
    counts = lax.iota(np.uint32, n).reshape(shape)
    b1, b2 = threefry2x32(raw[0], raw[1], jnp.zeros_like(counts), counts)
    return b1 ^ b2


def uniform(key, shape, minval=0.0, maxval=1.0) -> jax.Array:
    """float32 uniform on [minval, maxval); equals ``jax.random.uniform`` for float32."""
    if _raw_threefry_key(key) is None:
        return jax.random.uniform(key, shape, jnp.float32, minval, maxval)
    mantissa = lax.shift_right_logical(bits(key, shape), np.uint32(32 - 23))
    floats = lax.bitcast_convert_type(mantissa | np.float32(1.0).view(np.uint32), jnp.float32) - 1.0
    minval, maxval = jnp.float32(minval), jnp.float32(maxval)
    return lax.max(minval, floats * (maxval - minval) + minval)


def normal(key, shape, dtype=jnp.float32) -> jax.Array:
    """Standard normal samples; equal to ``jax.random.normal(key, shape, float32)``."""
    if jnp.dtype(dtype) != jnp.float32 or _raw_threefry_key(key) is None:
        return jax.random.normal(key, shape, dtype)
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0), dtype=np.float32)
    u = uniform(key, shape, lo, 1.0)
    return np.float32(np.sqrt(2)) * lax.erf_inv(u)
