"""Sweep of 8 same-shape points: one vmapped program (``trainer.make_epoch(..., vmapped=True)``, what
``python -m vae_jax.sweeps --vmap=on`` trains) vs 8 sequential runs of the single-run epoch
(``trainer.make_epoch``), steady state.

    python bench/sweep_speedup.py [--data_dir DIR] [--members 8] [--subset 12800] [--rounds 3]

The 8 points are the 784-500-20 VAE with seeds 0..7 and KL weights 0.5/1.0 alternating (shapes
equal, scalars differ: β is a step argument, so one compiled single-run epoch serves all 8).
Each round times one vmapped epoch and 8 single-member epochs back to back; speed-up = time of
the 8 sequential epochs / time of the vmapped epoch (median over rounds). First calls (compile +
one epoch) are reported separately.
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
    p.add_argument("--data_dir", default=None)
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--subset", type=int, default=12800, help="training images per epoch (0: all 60k)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=128)
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp

    import vae_jax.training.loop as loop
    import vae_jax.training.trainer as trainer

    base, ds, model, _ = common.default_vae(args.data_dir, args.subset, args.batch_size)
    n = len(ds.train_images)
    configs = []
    for i in range(args.members):
        c = base.copy_and_resolve_references()
        c.seed, c.objective.kl_weight = i, (0.5, 1.0)[i % 2]
        configs.append(c)
    images = jax.device_put(ds.train_images)
    group_epoch, steps = trainer.make_epoch(model, base, n, vmapped=True)
    single_epoch, _ = trainer.make_epoch(model, base, n)
    # Each member exactly as a single run of its config starts (vae_jax.sweeps.vmap_group does the same).
    keys = [trainer.split_keys(c.seed) for c in configs]
    hparams = [trainer.hparams_of(c) for c in configs]

    def initial_states():
        states = [trainer.init_model_state(c, model, k["init"], ds.image_shape, ds.train_images, steps)
                  for c, k in zip(configs, keys)]
        # One optax object for all: TrainState keeps ``tx`` as static metadata, and loop.stack
        # refuses states whose metadata differ (separate make_optimizer calls).
        return [st.replace(tx=states[0].tx) for st in states]

    stacked, stacked_hparams = loop.stack(initial_states()), loop.stack(hparams)
    data_keys = jnp.stack([k["data"] for k in keys])
    noise_keys = jnp.stack([k["noise"] for k in keys])
    t = time.perf_counter()
    stacked, m = group_epoch(stacked, images, data_keys, noise_keys, stacked_hparams)
    jax.block_until_ready(m)
    group_first = time.perf_counter() - t

    single_states = initial_states()
    t = time.perf_counter()
    for i in range(len(configs)):  # compiles once: β is an argument
        single_states[i], m = single_epoch(single_states[i], images, keys[i]["data"], keys[i]["noise"], hparams[i])
        jax.block_until_ready(m)
    seq_first = time.perf_counter() - t

    group_t, seq_t = [], []
    for r in range(args.rounds):
        t = time.perf_counter()
        stacked, m = group_epoch(stacked, images, data_keys, noise_keys, stacked_hparams)
        jax.block_until_ready(m)
        group_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(len(configs)):
            single_states[i], m = single_epoch(single_states[i], images, keys[i]["data"], keys[i]["noise"],
                                               hparams[i])
            jax.block_until_ready(m)
        seq_t.append(time.perf_counter() - t)
    speedups = [s / g for s, g in zip(seq_t, group_t)]
    result = {"machine": common.machine_description(), "load_avg": common.load_avg(), "members": args.members,
              "examples_per_epoch": steps * args.batch_size, "group_epoch_s": group_t, "sequential_8_epochs_s": seq_t,
              "speedup": common.median(speedups), "speedups": speedups,
              "group_first_call_s": group_first, "sequential_first_calls_s": seq_first,
              "group_examples_per_s": args.members * steps * args.batch_size / common.median(group_t),
              "sequential_examples_per_s": args.members * steps * args.batch_size / common.median(seq_t)}
    print(f"{args.members} points x {steps * args.batch_size} examples: vmapped {common.median(group_t):.2f} s/epoch, "
          f"sequential {common.median(seq_t):.2f} s; speed-up {result['speedup']:.2f}x "
          f"(rounds {[round(s, 2) for s in speedups]}); first calls (compile + 1 epoch) "
          f"{group_first:.1f} s vs {seq_first:.1f} s on {jax.devices()[0].device_kind}")
    print("saved", common.save_result(f"sweep_{jax.default_backend()}", result))


if __name__ == "__main__":
    main()
