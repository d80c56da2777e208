"""Training throughput of our trainer beside the reference loops, and MFU, measured in one run.

    python bench/train_throughput.py [--data_dir DIR] [--rounds 7] [--torch_python PYTHON_WITH_TORCH]

Each round runs, one after another in fresh processes: our scan epoch at batch 128
(bench/our_loop.py), the flax-example-style loop (../shared/bench/anchor_flax_example.py) and, when a
Python with torch is given or found, the PyTorch example loop at width 500. Ratios are taken within
a round (the machine is shared: only interleaved measurements compare) and reported as medians,
with their lowest and highest round beside them: single rounds scatter by ±20% here, so the
default is 7 rounds.
Then MFU: a jitted 4096² f32 matmul (bench/flops.py) before and after our epochs at batch 512 and
2048 (``--mfu_batch_sizes``); MFU = model FLOPs per example × examples/s ÷ the median peak of the two.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# A Python with torch in a side environment: $VAE_JAX_TORCH_PYTHON, else ../torchenv beside the checkout.
TORCH_PYTHONS = (os.environ.get("VAE_JAX_TORCH_PYTHON", ""), os.path.join(common.ROOT, "..", "torchenv", "bin", "python"))


def _torch_python(arg):
    for p in ((arg,) if arg else TORCH_PYTHONS):
        if p and os.path.exists(p):
            return p
    return None


def throughput_rounds(data_dir, rounds, torch_py, batch_size=128):
    flax_anchor = common.shared_bench("anchor_flax_example.py")
    torch_anchor = common.shared_bench("anchor_pytorch_example.py")
    rows = []
    for r in range(rounds):
        row = {"load_avg": common.load_avg()[0]}
        ours = common.run_json([common.python(), os.path.join(HERE, "our_loop.py"), "--data_dir", data_dir,
                                "--batch_size", str(batch_size), "--epochs", "1"])
        row["ours"], row["compile_s"] = ours["examples_per_s"], ours["lower_s"] + ours["compile_s"]
        if flax_anchor:
            row["flax"] = common.run_rate([common.python(), flax_anchor, data_dir])
        if torch_py and torch_anchor:
            # PASSIVE: idle OpenMP threads sleep instead of spinning. On a shared, oversubscribed
            # machine spinning made the PyTorch loop ~50x slower; this setting favours the reference.
            row["torch500"] = common.run_rate([torch_py, torch_anchor, data_dir, "500"],
                                              env={"OMP_WAIT_POLICY": "PASSIVE"})
        rows.append(row)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v:,.2f}" for k, v in row.items()), flush=True)
    return rows


def mfu(data_dir, batch_sizes=(512, 2048)):
    """Our epoch at each batch size between two peak measurements; MFU against their median."""
    peak1 = common.run_json([common.python(), os.path.join(HERE, "flops.py")])
    runs = [common.run_json([common.python(), os.path.join(HERE, "our_loop.py"), "--data_dir", data_dir,
                             "--batch_size", str(b), "--epochs", "2"]) for b in batch_sizes]
    peak2 = common.run_json([common.python(), os.path.join(HERE, "flops.py")])
    peak = common.median([peak1["median_flops"], peak2["median_flops"]])
    out = {"peak_flops": peak, "peak_flops_each": [peak1["median_flops"], peak2["median_flops"]], "by_batch": {}}
    for b, ours in zip(batch_sizes, runs):
        achieved = ours["flops_per_example"] * ours["examples_per_s"]
        out["by_batch"][str(b)] = {"examples_per_s": ours["examples_per_s"],
                                   "flops_per_example": ours["flops_per_example"],
                                   "achieved_flops": achieved, "mfu": achieved / peak}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--rounds", type=int, default=7, help="0: MFU only")
    p.add_argument("--torch_python", default=None)
    p.add_argument("--skip_mfu", action="store_true")
    p.add_argument("--mfu_batch_sizes", default="512,2048", help="batch sizes (≥ 512) for the MFU rows")
    args = p.parse_args(argv)
    data_dir = common.data_dir(args.data_dir)

    rows = throughput_rounds(data_dir, args.rounds, _torch_python(args.torch_python))
    result = {"machine": common.machine_description(), "rounds": rows}
    summary = {"ours_examples_per_s": common.median([r["ours"] for r in rows]),
               "compile_s": common.median([r["compile_s"] for r in rows])} if rows else {}
    for ref in ("flax", "torch500"):
        if rows and all(ref in r for r in rows):
            summary[f"{ref}_examples_per_s"] = common.median([r[ref] for r in rows])
            ratios = [r["ours"] / r[ref] for r in rows]
            summary[f"ratio_vs_{ref}"] = common.median(ratios)
            summary[f"ratio_vs_{ref}_lowest_round"] = min(ratios)
            summary[f"ratio_vs_{ref}_highest_round"] = max(ratios)
    if not args.skip_mfu:
        result["mfu"] = mfu(data_dir, [int(b) for b in args.mfu_batch_sizes.split(",")])
        for b, row in result["mfu"]["by_batch"].items():
            summary[f"mfu_batch{b}"] = row["mfu"]
        summary["peak_gflops"] = result["mfu"]["peak_flops"] / 1e9
    result["summary"] = summary
    print("summary: " + ", ".join(f"{k} {v:,.3f}" for k, v in summary.items()))
    print("saved", common.save_result("train_throughput", result))


if __name__ == "__main__":
    main()
