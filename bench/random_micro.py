"""Micro-benchmarks behind the binarization and PRNG changes: ms per step of a 400-step scan.

    python bench/random_micro.py

Each variant runs inside a jitted ``lax.scan`` over 400 batches of 128 uint8 MNIST-sized images
(random values) and reduces its output to one number so nothing is optimized away:
binarization with a float32 uniform per pixel (the earlier form), ``data.bernoulli_u8`` (16-bit
thresholds, straight-line threefry); uint8 → float32 directly and through int32; and 50,176 /
2,560 random words from ``jax.random.bits`` (JAX's rolled threefry loop on CPU) against
``vae_jax.prng.bits`` (same bits, straight-line).
"""
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from vae_jax import data, prng  # noqa: E402

S, B = 400, 128
KEY = jax.random.PRNGKey(0)


def per_step_ms(fn, xs):
    def step(c, u8):
        return (c[0] + jnp.sum(fn(u8, jax.random.fold_in(KEY, c[1]))).astype(jnp.float32), c[1] + 1), None

    f = jax.jit(lambda xs: jax.lax.scan(step, (jnp.float32(0), 0), xs)[0])
    jax.block_until_ready(f(xs))
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        jax.block_until_ready(f(xs))
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts)) / S


def main():
    images = jax.random.randint(KEY, (S, B, 28, 28, 1), 0, 256).astype(jnp.uint8)
    words = {n: jnp.zeros((S, n), jnp.uint8) for n in (50176, 2560)}
    variants = [
        ("binarize: float32 uniform per pixel", images,
         lambda u8, k: (jax.random.uniform(k, u8.shape) < u8.astype(jnp.float32) / 255).astype(jnp.float32)),
        ("binarize: data.bernoulli_u8", images, lambda u8, k: data.bernoulli_u8(k, u8)),
        ("uint8 -> float32 directly", images, lambda u8, k: u8.astype(jnp.float32) * (1 / 255)),
        ("uint8 -> int32 -> float32", images, lambda u8, k: u8.astype(jnp.int32).astype(jnp.float32) * (1 / 255)),
    ]
    for n, w in words.items():
        variants += [(f"{n} words: jax.random.bits", w, lambda u, k, n=n: jax.random.bits(k, (n,), jnp.uint32)),
                     (f"{n} words: prng.bits", w, lambda u, k, n=n: prng.bits(k, (n,)))]
    for name, xs, fn in variants:
        print(f"{name:40s} {per_step_ms(fn, xs):8.4f} ms/step", flush=True)


if __name__ == "__main__":
    main()
