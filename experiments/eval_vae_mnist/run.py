"""Trains the 784-500-20 VAE of configs/vae_mnist.py for 10 epochs on full MNIST (resumed if the
workdir holds it), then runs the full evaluation (IWAE k=5000 over the 10,000 test images,
diagnostics, Fréchet distance) and writes the headline numbers, the evaluation's wall time and
its peak RSS to --out/results.json.

    python experiments/eval_vae_mnist/run.py --data_dir ../shared/data/mnist [--workdir W] [--out O] [--iwae_k 5000]
    python experiments/eval_vae_mnist/run.py --time_iwae_subset 200   # only time L_k on the first 200 test images of W

= python -m vae_jax.main --config=configs/vae_mnist.py --workdir=W --config.data.dir=DIR --config.train.progress=False
  python -m vae_jax.main --mode=evaluate --workdir=W --iwae_k=5000
Everything the evaluation computes lands in W/eval.json and W/report.html.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402
import vae_jax.evaluation.iwae as iwae  # noqa: E402
import vae_jax.training.runs as runs  # noqa: E402
import vae_jax.training.trainer as trainer  # noqa: E402

KEYS = ["neg_elbo", "nll_iwae", "iwae_k", "nll_iwae_bits_per_dim", "neg_elbo_iwae_samples", "rate", "distortion",
        "active_units", "mutual_info", "mse", "psnr", "bce", "fid", "fid_recon", "fid_floor",
        "classifier_test_accuracy", "iwae_seconds", "eval_seconds"]


def timed_cli(*args: str) -> tuple[float, float]:
    """``python -m <args>`` from the repository root: (wall seconds, peak RSS in MiB from wait4)."""
    print(" ".join(args), flush=True)
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=_shared.REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(args)}")
    return time.perf_counter() - t, usage.ru_maxrss / 1024.0


def time_iwae_subset(workdir: str, data_dir: str, n: int, k: int) -> dict:
    """L_k on the first n test images of the trained run (the same inputs and key as a full run's
    first n images), with the seconds it took, compilation included."""
    run = runs.load_run(workdir, data_dir=data_dir)
    keys = trainer.split_keys(run.config.seed)
    x = iwae.evaluation_inputs(run.ds.test_images, keys["eval"], run.config.data.binarization,
                               run.config.train.eval_batch_size)
    out = iwae.iwae_dataset(run.model, run.params, x[:n], jax.random.fold_in(keys["eval"], 2), k, progress=False)
    return dict(out, test_images=n, load_average=os.getloadavg())


def main():
    p = _shared.parser("eval_vae_mnist", __doc__)
    p.add_argument("--iwae_k", type=int, default=5000)
    p.add_argument("--time_iwae_subset", type=int, default=0,
                   help="N > 0: only time the bound on the first N test images of the trained run in --workdir")
    args = _shared.parse(p)
    if args.time_iwae_subset:
        print(json.dumps(time_iwae_subset(args.workdir, args.data_dir, args.time_iwae_subset, args.iwae_k)))
        return
    train_s, train_rss = timed_cli("vae_jax.main", "--config=configs/vae_mnist.py", f"--workdir={args.workdir}",
                                   f"--config.data.dir={args.data_dir}", "--config.train.progress=False")
    eval_s, eval_rss = timed_cli("vae_jax.main", "--mode=evaluate", f"--workdir={args.workdir}",
                                 f"--iwae_k={args.iwae_k}")
    e = json.load(open(os.path.join(args.workdir, "eval.json")))
    result = {k: e.get(k) for k in KEYS}
    result.update(train_wall_s=train_s, train_peak_rss_mib=train_rss, evaluate_wall_s=eval_s,
                  evaluate_peak_rss_mib=eval_rss, load_average=os.getloadavg(),
                  date_utc=time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
