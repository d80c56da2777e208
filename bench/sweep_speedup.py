"""Sweep of 8 same-shape points: one vmapped program (``vae_jax.sweep_vmap.make_group_epoch``) vs
8 sequential runs of the trainer's epoch (``vae_jax.train.make_train_epoch``), steady state.

    python bench/sweep_speedup.py [--data_dir DIR] [--members 8] [--subset 12800] [--rounds 3]

The 8 points are the 784-500-20 VAE with seeds 0..7 and KL weights 0.5/1.0 alternating (shapes
equal, scalars differ). Each round times one vmapped epoch and 8 single-member epochs back to back;
speed-up = time of the 8 sequential epochs / time of the vmapped epoch (median over rounds).
Compile times are reported separately (the vmapped program compiles once; sequential runs of
one shape compile once per process).
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

    from configs import vae_mnist
    from vae_jax import data as data_lib, models, sweep_vmap, train

    base = vae_mnist.get_config()
    base.data.dir, base.data.train_subset = common.data_dir(args.data_dir), args.subset
    base.train.batch_size = args.batch_size
    ds = data_lib.load(base.data)
    configs = []
    for i in range(args.members):
        c = base.copy_and_resolve_references()
        c.seed, c.objective.kl_weight = i, (0.5, 1.0)[i % 2]
        configs.append(c)
    model = models.build_model(base.model, ds.image_shape)
    images = jax.device_put(ds.train_images)
    n = len(ds.train_images)
    steps = n // args.batch_size

    group_epoch, _ = sweep_vmap.make_group_epoch(model, base, n)
    keys, states = sweep_vmap._init_members(configs, model, ds, steps)
    stacked = sweep_vmap._stack(states)
    data_keys = jnp.stack([k["data"] for k in keys])
    noise_keys = jnp.stack([k["noise"] for k in keys])
    scalars = sweep_vmap._scalars(configs)
    t = time.perf_counter()
    stacked, m = group_epoch(stacked, images, data_keys, noise_keys, scalars)
    jax.block_until_ready(m)
    group_first = time.perf_counter() - t

    single_epochs = [train.make_train_epoch(model, c, n)[0] for c in configs]
    single_states = [train.create_state(c, model, k["init"], ds.image_shape, steps) for c, k in zip(configs, keys)]
    t = time.perf_counter()
    for i, c in enumerate(configs):  # one compile per distinct config (KL weight is a Python constant)
        single_states[i], m = single_epochs[i](single_states[i], images, keys[i]["data"], keys[i]["noise"])
        jax.block_until_ready(m)
    seq_first = time.perf_counter() - t

    group_t, seq_t = [], []
    for r in range(args.rounds):
        t = time.perf_counter()
        stacked, m = group_epoch(stacked, images, data_keys, noise_keys, scalars)
        jax.block_until_ready(m)
        group_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(len(configs)):
            single_states[i], m = single_epochs[i](single_states[i], images, keys[i]["data"], keys[i]["noise"])
            jax.block_until_ready(m)
        seq_t.append(time.perf_counter() - t)
    speedups = [s / g for s, g in zip(seq_t, group_t)]
    result = {"machine": common.machine_description(), "load_avg": common.load_avg()[0], "members": args.members,
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
