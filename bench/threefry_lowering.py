"""The random draws of a training step under JAX's two threefry lowerings on the CPU (vae_jax/prng.py).

    python bench/threefry_lowering.py [--batch_size 512] [--noise 150] [--steps 100] [--rounds 3]

Times one jitted ``lax.scan`` of ``--steps`` iterations that each draw what a step of the two-layer
model draws at that batch size (a dynamic binarization of [B, 784] and [B, noise] normals from a
folded-in key), lowered with the rolled and with the unrolled rule alternately (``--rounds``
times each), and checks that both give the same numbers. Prints ms per step for each and their
ratio; the compile times beside them.
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import vae_jax.prng as prng


def draws_program(batch_size: int, noise: int, steps: int):
    probs = jnp.linspace(0.0, 1.0, batch_size * 784).reshape(batch_size, 784)

    def program(key):
        def body(total, i):
            k_bin, k_eps = jax.random.split(jax.random.fold_in(key, i))
            x = jax.random.bernoulli(k_bin, probs).astype(jnp.float32)
            eps = jax.random.normal(k_eps, (batch_size, noise))
            return total + jnp.sum(x) + jnp.sum(eps), None
        return jax.lax.scan(body, jnp.float32(0), jnp.arange(steps))[0]
    return program


def measure(mode: str, args) -> dict:
    prng.use(mode)
    fn = jax.jit(draws_program(args.batch_size, args.noise, args.steps))   # a new program: lowered with `mode`
    t = time.perf_counter()
    compiled = fn.lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t
    value = float(compiled(jax.random.key(0)))
    times = []
    for _ in range(3):
        t = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(0)))
        times.append(time.perf_counter() - t)
    return {"ms_per_step": 1e3 * float(np.median(times)) / args.steps, "compile_s": compile_s, "value": value}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch_size", type=int, default=512)
    p.add_argument("--noise", type=int, default=150, help="Gaussian draws per example (the two-layer model: 100 + 50)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if jax.default_backend() != "cpu":
        p.error(f"the lowering choice applies to the CPU backend; this JAX runs on {jax.default_backend()}")
    before = prng.active()
    rows = {"rolled": [], "unrolled": []}
    for _ in range(args.rounds):
        for mode in ("rolled", "unrolled"):
            rows[mode].append(measure(mode, args))
    prng.use(before)
    values = {r["value"] for rs in rows.values() for r in rs}
    if len(values) != 1:
        raise SystemExit(f"the two lowerings drew different numbers: {sorted(values)}")
    med = {m: float(np.median([r["ms_per_step"] for r in rs])) for m, rs in rows.items()}
    out = {"batch_size": args.batch_size, "noise": args.noise, "steps": args.steps,
           "ms_per_step": med, "rolled/unrolled": med["rolled"] / med["unrolled"],
           "compile_s": {m: float(np.median([r["compile_s"] for r in rs])) for m, rs in rows.items()},
           "rounds": rows, "same_numbers": True}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
