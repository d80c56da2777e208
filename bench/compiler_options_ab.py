"""XLA:CPU compiler options for the trainer's epoch, A/B in one process.

    python bench/compiler_options_ab.py [--data_dir DIR] [--rounds 10] [--subset 25600]
                                        [--variants default,region_copies,...]

Lowers the trainer's jitted scan epoch (``vae_jax.train.make_train_epoch``) once and compiles it
once per variant with different per-executable ``compiler_options`` (no process-wide XLA_FLAGS, so
every variant runs in the same process and sees the same machine), then times the executables
round-robin in a shuffled order and prints, per variant, the median wall and process CPU time per
epoch relative to the first variant, whether its trained parameters equal the first variant's
bit for bit (an option that changes the numbers is reported, not hidden), and whether XLA produced
a different program at all (an option that leaves the optimized HLO unchanged shows the noise).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

VARIANTS = {
    "default": {},
    # Copy insertion that analyses the while-loop body's regions: the body then updates the
    # parameters in place instead of first copying the ones the backward pass still reads.
    "region_copies": {"xla_cpu_copy_insertion_use_region_analysis": True},
    "concurrency_sched": {"xla_cpu_enable_concurrency_optimized_scheduler": True},
    "onednn_dot": {"xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
    "xnn_dot": {"xla_cpu_experimental_xnn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"},
    "ynn_plus_eltwise": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_ELTWISE"},
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--subset", type=int, default=25600)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args(argv)

    import jax
    import numpy as np

    from vae_jax import train

    config, ds, model, keys, images = common.default_vae(args.data_dir, args.subset, args.batch_size)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    train_epoch, steps = train.make_train_epoch(model, config, len(images))
    initial = train.create_state(config, model, keys["init"], ds.image_shape)
    # Copies of one state (the epoch donates its input), so every variant starts from the same
    # numbers and the same static fields the epoch was lowered with.
    fresh = lambda: jax.tree.map(lambda x: x.copy(), initial)  # noqa: E731
    lowered = train_epoch.lower(fresh(), images, keys["data"], keys["noise"])
    compiled, states, first_params = {}, {}, {}
    for n in names:
        t = time.perf_counter()
        compiled[n] = lowered.compile(compiler_options=VARIANTS[n])
        compile_s = time.perf_counter() - t
        states[n], m = compiled[n](fresh(), images, keys["data"], keys["noise"])  # warm-up epoch
        jax.block_until_ready(m)
        first_params[n] = jax.device_get(states[n].params)
        print(f"compiled {n} in {compile_s:.2f} s", flush=True)
    # An option that leaves the optimized HLO unchanged cannot change the speed: its ratio then
    # measures only this harness's noise.
    same_program = {n: compiled[n].as_text() == compiled[names[0]].as_text() for n in names}
    same = {n: all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(first_params[names[0]]),
                                                        jax.tree.leaves(first_params[n]))) for n in names}

    wall, cpu = common.time_epochs_round_robin(compiled, states, images, keys, args.rounds)
    n_ex = steps * args.batch_size
    base_w, base_c = common.median(wall[names[0]]), common.median(cpu[names[0]])
    result = {}
    for n in names:
        w, c = common.median(wall[n]), common.median(cpu[n])
        # Per-round ratio to the first variant: both ran within the same round, so slow phases of
        # the machine hit both.
        per_round = [a / b for a, b in zip(wall[n], wall[names[0]])]
        result[n] = {"options": VARIANTS[n], "examples_per_s": n_ex / w, "wall_vs_first": w / base_w,
                     "median_round_ratio": common.median(per_round), "cpu_vs_first": c / base_c,
                     "same_params_after_one_epoch": same[n], "same_optimized_hlo": same_program[n]}
        print(f"{n:18s} {n_ex / w:9,.0f} ex/s  wall x{w / base_w:.3f}  per-round x{common.median(per_round):.3f}"
              f"  cpu x{c / base_c:.3f}  same numbers: {same[n]}  same program: {same_program[n]}")
    out = {"machine": common.machine_description(), "load_avg": common.load_avg(), "rounds": args.rounds,
           "subset": args.subset, "variants": result}
    print("saved", common.save_result("compiler_options_ab", out))


if __name__ == "__main__":
    main()
