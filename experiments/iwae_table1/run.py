"""Burda et al. (2015) Table 1, one stochastic layer: train (or resume) a config with the CLI, then
estimate the test NLL of its last checkpoint with the k=5000 importance-weighted bound
(``vae_jax.evaluation.iwae``) and merge the numbers into --out/results.json under --label.

    python experiments/iwae_table1/run.py --data_dir ../shared/data/mnist [--config configs/iwae_table1.py:cpu]
        [--workdir W] [--out O] [--nll_subset N] [--skip_train] [--config.<field>=<value> ...]

Training is ``python -m vae_jax.main --config=CONFIG --workdir=W --config.data.dir=DIR [overrides]``:
a finished run is not retrained (it resumes from its last checkpoint), so this also just
(re)evaluates a run trained earlier by the CLI; ``--skip_train`` only evaluates.
"""
from __future__ import annotations

import json
import os
import sys
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402
import vae_jax.evaluation.iwae as iwae  # noqa: E402
import vae_jax.training.run_meta as run_meta  # noqa: E402
import vae_jax.training.runs as runs  # noqa: E402
import vae_jax.training.trainer as trainer  # noqa: E402


def main():
    p = _shared.parser("iwae_table1", __doc__)
    p.add_argument("--config", default="configs/iwae_table1.py:cpu", help="config file[:variant] (see the file)")
    p.add_argument("--nll_k", type=int, default=5000, help="importance samples for the NLL estimate")
    p.add_argument("--nll_subset", type=int, default=0, help="evaluate the NLL on the first N test images only (0: all)")
    p.add_argument("--nll_batch", type=int, default=100, help="test images per NLL batch")
    p.add_argument("--skip_train", action="store_true", help="only evaluate the latest checkpoint (no training)")
    p.add_argument("--label", default=None, help="key in results.json (default: the workdir's name)")
    args = _shared.parse(p, overrides=True, default_workdir=lambda a: os.path.join(  # one per variant
        _shared.REPO, "runs", "experiments", "iwae_table1", a.config.partition(":")[2].replace(",", "_") or "full"))

    t0 = time.perf_counter()
    if not args.skip_train:
        _shared.cli("vae_jax.main", f"--config={args.config}", f"--workdir={args.workdir}",
                    f"--config.data.dir={args.data_dir}", *args.overrides)
    train_s = time.perf_counter() - t0
    path = os.path.join(args.workdir, "eval.json")  # absent when training was cut short
    final = json.load(open(path)) if os.path.exists(path) else {}
    run = runs.load_run(args.workdir, data_dir=args.data_dir)
    config = run.config
    keys = trainer.split_keys(config.seed)
    test = run.ds.test_images[: args.nll_subset or None]
    x = iwae.evaluation_inputs(test, keys["eval"], config.data.binarization, config.train.eval_batch_size)
    nll = iwae.iwae_dataset(run.model, run.params, x, jax.random.fold_in(keys["eval"], 5000), args.nll_k,
                            args.nll_batch, progress=False)
    nll["nll_test_images"] = len(test)
    run_meta.update_eval_json(args.workdir, nll)
    label = args.label or os.path.basename(os.path.normpath(args.workdir))
    row = {"config": args.config, "overrides": args.overrides, "objective": config.objective.name,
           "trained_epochs": run.epoch, "epochs": config.train.epochs,
           "iwae_k_train": config.objective.iwae_k if config.objective.name == "iwae" else 1,
           "test_neg_elbo": final.get("neg_elbo"), "test_nll_iwae": nll["nll_iwae"],
           "nll_k": args.nll_k, "nll_test_images": len(test), "nll_seconds": nll["iwae_seconds"],
           "active_units": final.get("active_units"),
           "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
           "wall_s_this_call": time.perf_counter() - t0, "train_s_this_call": train_s}
    results_path = os.path.join(args.out, "results.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    results[label] = row
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print(json.dumps({label: row}, indent=1))


if __name__ == "__main__":
    main()
