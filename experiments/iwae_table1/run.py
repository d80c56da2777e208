"""Burda et al. (2015) Table 1: train (or resume) a config with the CLI, then estimate the test NLL
of its last checkpoint with the k=5000 importance-weighted bound (``vae_jax.evaluation.iwae``) and
merge the numbers into --out/results.json under --label.

    python experiments/iwae_table1/run.py --data_dir ../shared/data/mnist [--config configs/iwae_table1.py:cpu]
        [--workdir W] [--out O] [--nll_subset N] [--skip_train] [--config.<field>=<value> ...]

``--table``: all 12 cells (1 and 2 stochastic layers x VAE and IWAE x k in {1, 5, 50}), each one
call of this script in its own process, ``--parallel`` of them at a time (on one GPU several
latency-bound batch-20 runs share the card), then the table with the paper's numbers beside ours
(``table.md``, and the README block when --out is this folder). A "VAE with k samples" trains the
k-sample average ELBO (``objective.name=miwae`` with M=k, K=1), an IWAE the k-sample bound; at
k = 1 both are the ELBO, so one run (``objective.name=elbo``) fills both rows, as in the paper.
``--budget_epochs E`` trains every cell E epochs at the paper's first learning rate (the CPU
budget); without it every cell runs the config's full 3,280-epoch schedule.

Training is ``python -m vae_jax.main --config=CONFIG --workdir=W --config.data.dir=DIR [overrides]``:
a finished run is not retrained (it resumes from its last checkpoint), so this also just
(re)evaluates a run trained earlier by the CLI; ``--skip_train`` only evaluates.
"""
from __future__ import annotations

import concurrent.futures
import fcntl
import json
import os
import subprocess
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
    p.add_argument("--table", action="store_true", help="all 12 cells of Table 1, then table.md")
    p.add_argument("--budget_epochs", type=int, default=0,
                   help="with --table: E epochs per cell at lr 1e-3 (0: the config's full schedule)")
    p.add_argument("--parallel", type=int, default=1, help="with --table: cells trained at once")
    p.add_argument("--tag", default="", help="with --table: the suffix of the cells' labels and the README block "
                   "(default: the budget, e.g. 3ep; another tag keeps an earlier table beside the new one)")
    args = _shared.parse(p, overrides=True, default_workdir=lambda a: os.path.join(  # one per variant
        _shared.REPO, "runs", "experiments", "iwae_table1",
        "table" if a.table else a.config.partition(":")[2].replace(",", "_") or "full"))
    if args.table:
        return table(args)

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
           "decoder_bias_init": config.model.get("decoder_bias_init", "zeros"),
           "test_neg_elbo": final.get("neg_elbo"), "test_nll_iwae": nll["nll_iwae"],
           "nll_k": args.nll_k, "nll_test_images": len(test), "nll_seconds": nll["iwae_seconds"],
           "active_units": final.get("active_units"),
           "active_units_per_layer": {k.split("/", 1)[1]: v for k, v in final.items() if k.startswith("active_units/")},
           "epoch_seconds_median": _median_epoch_seconds(args.workdir),
           "steps_per_epoch": len(run.ds.train_images) // config.train.batch_size,
           "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
           "wall_s_this_call": time.perf_counter() - t0, "train_s_this_call": train_s}
    results_path = os.path.join(args.out, "results.json")
    with open(results_path + ".lock", "w") as lock:  # cells of --table --parallel finish side by side
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.load(open(results_path)) if os.path.exists(results_path) else {}
        results[label] = row
        with open(results_path + ".tmp", "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
        os.replace(results_path + ".tmp", results_path)
    print(json.dumps({label: row}, indent=1))


def _median_epoch_seconds(workdir):
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl")) if line.strip()]
    times = sorted(r["epoch_time_s"] for r in rows[1:] if "epoch_time_s" in r)  # epoch 1 compiles
    return times[len(times) // 2] if times else None


# ---------------------------------------------------------------------------- the 12 cells
CONFIGS = {1: "configs/iwae_table1.py", 2: "configs/iwae_two_layer.py"}
# Burda, Grosse & Salakhutdinov (2015), Table 1, MNIST test NLL (k = 5000), nats.
PAPER = {(1, "vae", 1): 86.76, (1, "vae", 5): 86.47, (1, "vae", 50): 86.35,
         (1, "iwae", 1): 86.76, (1, "iwae", 5): 85.54, (1, "iwae", 50): 84.78,
         (2, "vae", 1): 85.33, (2, "vae", 5): 85.01, (2, "vae", 50): 84.78,
         (2, "iwae", 1): 85.33, (2, "iwae", 5): 83.89, (2, "iwae", 50): 82.90}
CELLS = sorted(PAPER)


def budget_tag(args):
    return args.tag or (f"{args.budget_epochs}ep" if args.budget_epochs else "full")


def cell_label(cell, args):
    layers, kind, k = cell
    if k == 1:  # with one sample the two objectives are the same ELBO: one run serves both rows
        return f"{layers}layer_k1_{budget_tag(args)}"
    return f"{layers}layer_{kind}_k{k}_{budget_tag(args)}"


def cell_overrides(args, cell):
    """The --config.* flags of one cell: its objective and the budget."""
    _, kind, k = cell
    if k == 1:
        objective = ["--config.objective.name=elbo"]
    elif kind == "vae":
        objective = ["--config.objective.name=miwae", f"--config.objective.iwae_m={k}", "--config.objective.iwae_k=1"]
    else:
        objective = ["--config.objective.name=iwae", f"--config.objective.iwae_k={k}"]
    budget = ([f"--config.train.epochs={args.budget_epochs}", f"--config.optim.stage_epochs=({args.budget_epochs},)",
               f"--config.train.eval_every={args.budget_epochs}", f"--config.train.checkpoint_every={args.budget_epochs}"]
              if args.budget_epochs else [])
    return objective + budget + list(args.overrides)


def cell_command(args, cell):
    layers = cell[0]
    return [sys.executable, os.path.abspath(__file__), "--data_dir", args.data_dir, "--config", CONFIGS[layers],
            "--workdir", os.path.join(args.workdir, cell_label(cell, args)), "--out", args.out, "--label", cell_label(cell, args),
            "--nll_k", str(args.nll_k), "--nll_subset", str(args.nll_subset), *cell_overrides(args, cell)]


def table(args):
    """Runs the cells not yet in results.json with this budget, then writes table.md."""
    results_path = os.path.join(args.out, "results.json")
    done = json.load(open(results_path)) if os.path.exists(results_path) else {}
    todo = [c for c in CELLS if not (c[2] == 1 and c[1] == "iwae") and [done.get(cell_label(c, args), {}).get(k) for k in ("overrides", "nll_k", "nll_test_images")]
            != [cell_overrides(args, c), args.nll_k, args.nll_subset or 10000]]

    def run_cell(cell):
        log = os.path.join(args.workdir, cell_label(cell, args) + ".log")
        os.makedirs(args.workdir, exist_ok=True)
        with open(log, "a") as f:
            print(" ".join(cell_command(args, cell)), flush=True)
            subprocess.run(cell_command(args, cell), check=True, stdout=f, stderr=subprocess.STDOUT, cwd=_shared.REPO)
    # One writer of results.json at a time: cells run in parallel, each merges its row when done.
    with concurrent.futures.ThreadPoolExecutor(max(1, args.parallel)) as pool:
        list(pool.map(run_cell, todo))
    rows = json.load(open(results_path))
    text = table_markdown(args, rows)
    with open(os.path.join(args.out, f"table_{budget_tag(args)}.md"), "w") as f:
        f.write(text + "\n")
    if os.path.realpath(args.out) == os.path.realpath(os.path.dirname(os.path.abspath(__file__))):
        _update_readme_table(os.path.join(args.out, "README.md"), budget_tag(args), text)
    print(text)


def _update_readme_table(readme, tag, text):
    """Rewrites the README's block of this budget (appends a section the first time)."""
    begin, end = f"<!-- table:{tag}:begin -->", f"<!-- table:{tag}:end -->"
    body = open(readme).read()
    if begin in body and end in body:
        head, rest = body.split(begin, 1)
        body = head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1]
    else:
        body = body.rstrip("\n") + f"\n\n## Table 1, all 12 cells ({tag})\n\n{begin}\n{text}\n{end}\n"
    with open(readme, "w") as f:
        f.write(body)


def table_markdown(args, rows):
    get = {c: rows.get(cell_label(c, args)) for c in CELLS}
    lines = ["| layers | objective | k | test NLL, ours | paper | test −ELBO | active units | s/epoch | ms/step | epochs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in CELLS:
        r = get[c] or {}
        units = r.get("active_units_per_layer") or ({"z": r["active_units"]} if r.get("active_units") is not None else {})
        step_ms = (1e3 * r["epoch_seconds_median"] / r["steps_per_epoch"]
                   if r.get("epoch_seconds_median") and r.get("steps_per_epoch") else None)
        lines.append("| " + " | ".join([str(c[0]), c[1].upper(), str(c[2]), _shared.fmt(r.get("test_nll_iwae"), ".2f"),
                                         f"{PAPER[c]:.2f}", _shared.fmt(r.get("test_neg_elbo"), ".2f"),
                                         " + ".join(str(v) for v in units.values()) or "–",
                                         _shared.fmt(r.get("epoch_seconds_median"), ".1f"), _shared.fmt(step_ms, ".2f"),
                                         str(r.get("trained_epochs", "–"))]) + " |")
    nll = {c: (get[c] or {}).get("test_nll_iwae") for c in CELLS}
    checks = []
    if all(v is not None for v in nll.values()):
        two = sum(nll[(2, o, k)] < nll[(1, o, k)] for _, o, k in CELLS if _ == 1)
        iw = sum(nll[(l, "iwae", k)] < nll[(l, "vae", k)] for l in (1, 2) for k in (5, 50))
        kk = sum(nll[(l, o, 50)] < nll[(l, o, 5)] < nll[(l, o, 1)] for l in (1, 2) for o in ("vae", "iwae"))
        checks = [f"- 2 layers better than 1: {two} of 6 cells (paper: 6 of 6)",
                  f"- IWAE better than VAE at k > 1: {iw} of 4 (paper: 4 of 4)",
                  f"- NLL falls as k grows (k = 1 > 5 > 50): {kk} of 4 rows (paper: 4 of 4)"]
    first = next((r for r in rows.values() if r.get("nll_test_images")), {})
    budget = (f"{args.budget_epochs} epochs per cell at lr 1e-3, batch 20" if args.budget_epochs
              else "the paper's 3,280-epoch schedule")
    mine = [r for r in get.values() if r]
    first = mine[0] if mine else first
    bias = sorted({r.get("decoder_bias_init", "zeros") for r in mine}) or ["?"]
    head = [f"Budget: {budget}; decoder output bias at init: {' / '.join(bias)}; NLL by k = "
            f"{first.get('nll_k', args.nll_k)} importance samples on {first.get('nll_test_images', '?')} test "
            f"images; device: {first.get('device', '?')}.", ""]
    return "\n".join(head + lines + [""] + checks)


if __name__ == "__main__":
    main()
