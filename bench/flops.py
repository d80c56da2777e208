"""FLOP model of our network and the measured matmul peak of this machine.

Model FLOPs per training example = 3 x forward matmul FLOPs (forward, plus backward w.r.t.
activations and weights: the usual "6N" convention for dense nets), where the forward matmul
FLOPs of a Dense kernel [in, out] are 2·in·out per example. Elementwise work (activations, the
likelihood, the optimizer, random bits) is not counted: MFU measures useful matmul work against
the peak of the one operation the machine is fastest at.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np


def forward_matmul_flops(params) -> int:
    """2·in·out summed over every 2-D ``kernel`` in the parameter tree (per example)."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        name = jax.tree_util.keystr(path)
        if name.endswith("['kernel']") and np.ndim(leaf) == 2:
            total += 2 * int(leaf.shape[0]) * int(leaf.shape[1])
    return total


def train_flops_per_example(params) -> int:
    return 3 * forward_matmul_flops(params)


def matmul_peak(n: int = 4096, repeats: int = 5, dtype=jnp.float32) -> dict:
    """FLOP/s of a jitted n x n matmul: median and best of ``repeats`` timed calls."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t)
    flops = 2.0 * n**3
    return {"n": n, "median_flops": flops / float(np.median(times)), "best_flops": flops / min(times),
            "times_s": times}


def xla_flops(compiled) -> float | None:
    """XLA's own FLOP count of a compiled computation (None where the backend gives none)."""
    try:
        cost = compiled.cost_analysis()
        if isinstance(cost, (list, tuple)):
            cost = cost[0]
        return float(cost.get("flops")) if cost and cost.get("flops") is not None else None
    except Exception:  # noqa: BLE001 - optional cross-check only
        return None


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    r = matmul_peak(n)
    print(f"matmul peak ({n}^2 f32): median {r['median_flops'] / 1e9:.1f} GFLOP/s, best {r['best_flops'] / 1e9:.1f}")
    print(json.dumps(r))
