"""Wall time from launching the CLI to the first test evaluation with -ELBO ≤ a target, and the
run's peak memory (RSS).

    python bench/time_to_nats.py [--data_dir DIR] [--config configs/vae_mnist_fast.py] [--target 99]
    python bench/time_to_nats.py --config configs/vae_mnist.py --epochs 2 --target 0   # peak RSS of the default VAE

Runs ``python -m vae_jax.main`` in a child process (imports, data loading, compilation, evaluation
and checkpoints all count; the report is switched off), time-stamps each line it prints and reports
when the first 'test <neg_elbo>' at or below the target appeared. Peak RSS comes from the child's
rusage (wait4).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

_TEST = re.compile(r"epoch (\d+)/(\d+):.*test ([\d.]+)")


def run(config, data_dir, target, epochs=None, extra=()):
    workdir = tempfile.mkdtemp(prefix="vae_jax_bench_")
    cmd = [common.python(), "-m", "vae_jax.main", f"--config={config}", f"--workdir={workdir}",
           f"--config.data.dir={data_dir}", "--config.train.progress=False", "--config.report.enabled=False",
           *([f"--config.train.epochs={epochs}"] if epochs else []), *extra]
    evals, log = {}, []

    def on_line(t, line):
        log.append(line)
        m = _TEST.search(line)
        if m and int(m.group(1)) not in evals:
            evals[int(m.group(1))] = {"epoch": int(m.group(1)), "seconds": t, "test_neg_elbo": float(m.group(3))}
            print(f"  {t:7.1f} s  epoch {m.group(1)}/{m.group(2)}  test neg_elbo {m.group(3)}", flush=True)

    load0 = common.load_avg()
    rc, wall, rss_mib = common.run_timed(cmd, on_line, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    evals = list(evals.values())
    shutil.rmtree(workdir, ignore_errors=True)
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {rc}):\n" + "\n".join(log[-30:]))
    hit = next((e for e in evals if e["test_neg_elbo"] <= target), None)
    return {"command": " ".join(cmd[1:]), "target": target, "reached": hit, "evals": evals,
            "wall_s": wall, "peak_rss_mib": rss_mib, "load_avg_start": load0, "load_avg_end": common.load_avg()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--config", default="configs/vae_mnist_fast.py")
    p.add_argument("--target", type=float, default=99.0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--name", default=None, help="results file name (bench/results/<name>.json)")
    args = p.parse_args(argv)
    r = run(args.config, common.data_dir(args.data_dir), args.target, args.epochs)
    hit = r["reached"]
    print(f"{args.config}: " + (f"test neg_elbo {hit['test_neg_elbo']:.2f} ≤ {args.target} at epoch {hit['epoch']} "
                                f"after {hit['seconds']:.1f} s wall" if hit else f"never reached ≤ {args.target}")
          + f"; whole run {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB, load avg {r['load_avg_start']:.1f}")
    name = args.name or ("time_to_nats" if args.target > 0 else "train_rss")
    print("saved", common.save_result(name, dict(r, machine=common.machine_description())))


if __name__ == "__main__":
    main()
