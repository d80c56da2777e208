"""The training epoch with the one-pass Adam kernel (train.fused_adam='on') against optax's Adam
('off'), A/B in one process.

    python bench/fused_adam_ab.py [--data_dir DIR] [--rounds 8] [--subset 25600] [--batch_size 128]

Both epochs start from the same state and see the same batches and noise; the script reports how
far apart their parameters are after the first epoch (float32 rounding: the kernel divides
exactly where XLA:CPU's vectorized division may differ in the last bit), then times them
round-robin (bench/common.py) and prints ms per step, examples/s and the ratio.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--subset", type=int, default=25600)
    p.add_argument("--batch_size", type=int, default=128)
    args = p.parse_args(argv)

    import jax
    import numpy as np

    from vae_jax import train

    config, ds, model, keys, images = common.default_vae(args.data_dir, args.subset, args.batch_size)
    initial = train.create_state(config, model, keys["init"], ds.image_shape)
    fresh = lambda: jax.tree.map(lambda x: x.copy(), initial)  # noqa: E731
    epochs, states = {}, {}
    for mode in ("off", "on"):
        cfg = config.copy_and_resolve_references()
        cfg.train.fused_adam = mode
        epoch, steps = train.make_train_epoch(model, cfg, len(images))
        epochs[f"fused_{mode}"] = epoch.lower(fresh(), images, keys["data"], keys["noise"]).compile()
        states[f"fused_{mode}"] = fresh()
    first = {n: epochs[n](fresh(), images, keys["data"], keys["noise"]) for n in epochs}
    a, b = (jax.tree.leaves(first[n][0].params) for n in ("fused_off", "fused_on"))
    max_abs = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))
    max_rel = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)) / (np.abs(np.asarray(x)) + 1e-6)))
                  for x, y in zip(a, b))
    loss = {n: float(np.mean(np.asarray(first[n][1]["loss"]))) for n in epochs}
    print(f"after one epoch of {steps} steps: max |Δparam| {max_abs:.3g} (relative {max_rel:.3g}); "
          f"mean loss {loss['fused_off']:.6f} (optax) vs {loss['fused_on']:.6f} (kernel)")
    wall, cpu = common.time_epochs_round_robin(epochs, states, images, keys, args.rounds)
    base_w, base_c = common.median(wall["fused_off"]), common.median(cpu["fused_off"])
    out = {"machine": common.machine_description(), "steps_per_epoch": steps, "batch_size": args.batch_size,
           "rounds": args.rounds, "subset": args.subset, "max_abs_param_diff_epoch1": max_abs,
           "max_rel_param_diff_epoch1": max_rel, "mean_loss_epoch1": loss, "variants": {}}
    for n in epochs:
        w, c = common.median(wall[n]), common.median(cpu[n])
        per_round = common.median([x / y for x, y in zip(wall[n], wall["fused_off"])])
        out["variants"][n] = {"ms_per_step": 1e3 * w / steps, "examples_per_s": steps * args.batch_size / w,
                              "wall_vs_optax": w / base_w, "per_round_vs_optax": per_round,
                              "cpu_vs_optax": c / base_c, "wall_s": wall[n], "cpu_s": cpu[n]}
        print(f"{n:10s} {1e3 * w / steps:.3f} ms/step  {steps * args.batch_size / w:,.0f} ex/s  "
              f"wall x{w / base_w:.3f}  per-round x{per_round:.3f}  cpu x{c / base_c:.3f} of optax")
    print("saved", common.save_result("fused_adam_ab", out))


if __name__ == "__main__":
    main()
