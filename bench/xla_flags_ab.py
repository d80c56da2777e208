"""Process-wide XLA flags for the trainer's epoch, A/B in interleaved child processes.

    python bench/xla_flags_ab.py [--data_dir DIR] [--rounds 6] [--subset 25600] [--variants a,b,...]

Some XLA:CPU settings can only be given through ``XLA_FLAGS`` (the backend's extra options, such
as multi-output fusion, are a map that per-executable ``compiler_options`` cannot set; see
bench/compiler_options_ab.py for those that can). So each variant runs in its own process, the
variants interleaved round by round in a shuffled order; every child trains the same epochs from
the same state and prints its rate and a digest of the final parameters, so the table also says
whether a flag changes the numbers. ``XLA_FLAGS`` already in the environment is replaced, so each
variant runs exactly the flags named here.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

MOF = "--xla_backend_extra_options=xla_cpu_use_multi_output_fusion"
VARIANTS = {
    "none": "",
    # Sibling and producer-consumer multi-output fusion: Adam's first and second moments of each
    # weight are then written by one loop instead of two.
    "multi_output_fusion": MOF,
    # Plus copy insertion that analyses the loop body's regions, so the parameters are updated in
    # place instead of first being copied for the backward pass.
    "mof_region_copies": MOF + " --xla_cpu_copy_insertion_use_region_analysis=true",
    "mof_flatten": "--xla_backend_extra_options=xla_cpu_use_multi_output_fusion,xla_cpu_flatten_after_fusion",
    "mof_vector512": MOF + " --xla_cpu_prefer_vector_width=512",
}


def child(args):
    import jax
    import numpy as np

    from vae_jax import train

    config, ds, model, keys, images = common.default_vae(args.data_dir, args.subset, args.batch_size)
    state = train.create_state(config, model, keys["init"], ds.image_shape)
    epoch, steps = train.make_train_epoch(model, config, len(images))
    state, m = epoch(state, images, keys["data"], keys["noise"])  # compile + warm-up
    jax.block_until_ready(m)
    t, c = time.perf_counter(), time.process_time()
    for e in range(args.epochs):
        state, m = epoch(state, images, jax.random.fold_in(keys["data"], e + 1), keys["noise"])
    jax.block_until_ready(m)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    digest = hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in jax.tree.leaves(state.params))).hexdigest()
    print(json.dumps({"examples_per_s": args.epochs * steps * args.batch_size / wall,
                      "ms_per_step": 1e3 * wall / (args.epochs * steps),
                      "cpu_ms_per_step": 1e3 * cpu / (args.epochs * steps), "params_sha256": digest[:16]}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--subset", type=int, default=25600)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per child, after one warm-up epoch")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data_dir = common.data_dir(args.data_dir)
    if args.child:
        return child(args)

    import numpy as np

    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    rows = {n: [] for n in names}
    order_rng = np.random.default_rng(0)
    for r in range(args.rounds):
        for n in order_rng.permutation(names):
            env = dict(os.environ, XLA_FLAGS=VARIANTS[n])
            out = subprocess.run([sys.executable, __file__, "--child", "--data_dir", args.data_dir,
                                  "--subset", str(args.subset), "--epochs", str(args.epochs),
                                  "--batch_size", str(args.batch_size)],
                                 env=env, capture_output=True, text=True, timeout=900)
            if out.returncode != 0:
                raise SystemExit(f"variant {n} failed:\n{out.stderr[-2000:]}")
            rows[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {rows[n][-1]['examples_per_s']:,.0f}" for n in names),
              flush=True)
    base = names[0]
    summary = {}
    for n in names:
        ratios = [a["examples_per_s"] / b["examples_per_s"] for a, b in zip(rows[n], rows[base])]
        cpu_ratios = [b["cpu_ms_per_step"] / a["cpu_ms_per_step"] for a, b in zip(rows[n], rows[base])]
        digests = {x["params_sha256"] for x in rows[n]}
        summary[n] = {"xla_flags": VARIANTS[n], "examples_per_s": common.median([x["examples_per_s"] for x in rows[n]]),
                      "speed_vs_first": common.median(ratios), "lowest_round": min(ratios), "highest_round": max(ratios),
                      "cpu_speed_vs_first": common.median(cpu_ratios),
                      "same_numbers_as_first": digests == {x["params_sha256"] for x in rows[base]}}
        s = summary[n]
        print(f"{n:22s} {s['examples_per_s']:9,.0f} ex/s  speed x{s['speed_vs_first']:.3f} of {base} "
              f"(rounds {s['lowest_round']:.3f}-{s['highest_round']:.3f}), by CPU time x{s['cpu_speed_vs_first']:.3f}  same numbers: {s['same_numbers_as_first']}")
    out = {"machine": common.machine_description(), "subset": args.subset, "epochs": args.epochs,
           "batch_size": args.batch_size, "rounds": rows, "summary": summary}
    print("saved", common.save_result("xla_flags_ab", out))


if __name__ == "__main__":
    main()
