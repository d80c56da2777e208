"""Per-step cost of the trainer split into a part that grows with the batch and a part that does not.

    python bench/step_cost_model.py [--data_dir DIR] [--batch_sizes 8,16,32,64,128,256] [--rounds 2]

Times the trainer's scan epoch (bench/our_loop.py, fresh process per point, batch sizes in a
shuffled order each round) at several batch sizes and fits ``ms per step = fixed + per_example·B``
by least squares over the per-point medians. ``fixed`` is the work every step does whatever the
batch: the optimizer's passes over the parameters (Adam reads and writes parameters, two moments
and the gradient), the finite check, loop and dispatch overhead. ``per_example`` is dominated by
the matmuls. At batch 128 the fit says which share of the step no per-example speed-up can touch.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def fit_line(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return my - slope * mx, slope


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--batch_sizes", default="8,16,32,64,128,256")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--subset", type=int, default=12800)
    args = p.parse_args(argv)
    import random

    data_dir = common.data_dir(args.data_dir)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    ms = {b: [] for b in sizes}
    rng = random.Random(0)
    for r in range(args.rounds):
        order = sizes[:]
        rng.shuffle(order)
        for b in order:
            out = common.run_json([common.python(), os.path.join(HERE, "our_loop.py"), "--data_dir", data_dir,
                                   "--batch_size", str(b), "--epochs", "2", "--train_subset", str(args.subset)])
            ms[b].append(1000.0 * b / out["examples_per_s"])
            print(f"round {r + 1}: batch {b}: {ms[b][-1]:.3f} ms/step", flush=True)
    med = {b: common.median(v) for b, v in ms.items()}
    fixed, per_ex = fit_line(sizes, [med[b] for b in sizes])
    at128 = fixed + 128 * per_ex
    summary = {"fixed_ms_per_step": fixed, "per_example_ms": per_ex, "step_ms_at_128_fit": at128,
               "fixed_share_at_128": fixed / at128}
    print("per batch size (median ms/step): " + ", ".join(f"{b}: {med[b]:.3f}" for b in sizes))
    print(f"fit: {fixed:.3f} ms + {1000 * per_ex:.2f} us x batch; at batch 128 the fixed part is "
          f"{100 * fixed / at128:.0f}% of the step")
    print("saved", common.save_result("step_cost_model", {"machine": common.machine_description(),
                                                          "load_avg": common.load_avg(), "ms_per_step": ms,
                                                          "summary": summary}))


if __name__ == "__main__":
    main()
