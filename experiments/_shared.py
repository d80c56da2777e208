"""Helpers shared by ``experiments/*/run.py``: command-line flags, one training point (trained, or
resumed/re-used from its workdir), restoring a trained model, Markdown tables and the README block
that each ``run.py`` regenerates.

Each experiment's README holds its results between ``<!-- results:begin -->`` and
``<!-- results:end -->``; ``update_readme`` rewrites exactly that block, so the numbers in the README
are always the ones the last run of the command produced.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def parser(name: str, description: str, epochs: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    default_dir = os.environ.get("VAE_JAX_DATA_DIR") or os.path.join(os.path.dirname(REPO), "shared", "data", "mnist")
    p.add_argument("--data-dir", default=default_dir, help="MNIST IDX directory (default $VAE_JAX_DATA_DIR)")
    p.add_argument("--runs", default=None,
                   help="where the training runs (checkpoints) go")
    p.add_argument("--epochs", type=int, default=epochs, help=f"training epochs per point (default {epochs})")
    p.add_argument("--tiny", action="store_true",
                   help="smoke test: bundled 5k-digit subset, tiny nets, 1 epoch; results are not written "
                        "into the README")
    p.name = name
    return p


def parse(p: argparse.ArgumentParser):
    args = p.parse_args()
    if args.runs is None:
        args.runs = os.path.join(REPO, "runs", "experiments", p.name + ("_tiny" if args.tiny else ""))
    return args


def load_config(config_file: str, overrides: dict, args):
    """``configs/<config_file>``'s config with dotted-path ``overrides``, pointed at the data."""
    spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, "configs", config_file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config("tiny" if args.tiny else None)
    if not args.tiny:
        c.data.source, c.data.dir = "idx", args.data_dir
    c.train.epochs = 1 if args.tiny else args.epochs
    c.train.progress = False
    c.train.tensorboard = False
    c.train.eval_every = c.train.epochs
    c.train.checkpoint_every = c.train.epochs
    for path, value in overrides.items():
        node = c
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    if args.tiny:  # keep tiny runs tiny whatever the overrides say
        c.model.encoder_hidden = tuple(min(h, 32) for h in c.model.encoder_hidden)
        c.model.decoder_hidden = tuple(min(h, 32) for h in c.model.decoder_hidden)
    return c


def train_point(config, workdir: str) -> dict:
    """Trains ``config`` in ``workdir`` and returns eval.json's metrics plus ``train_seconds`` (the
    summed epoch times of metrics.jsonl). A run that already finished all ``train.epochs`` is not
    touched: its eval.json is read back (so defaults added to the config since do not block it)."""
    from vae_jax.training import trainer as train

    eval_path = os.path.join(workdir, "eval.json")
    finished = os.path.exists(eval_path) and json.load(open(eval_path)).get("epoch") == config.train.epochs
    if not finished:
        train.train_and_evaluate(config, workdir)
    else:
        print(f"re-using the finished run in {workdir}", flush=True)
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl")) if line.strip()]
    return dict(json.load(open(eval_path)), train_seconds=sum(r.get("epoch_time_s", 0.0) for r in rows))


def load_trained(workdir: str, ds=None):
    """(model, params, dataset) of a trained run, from its config.json and latest checkpoint."""
    from vae_jax.tasks.common import load_run

    run = load_run(workdir, ds=ds)
    return run.model, run.params, run.ds


def last_train_metrics(workdir: str) -> dict:
    """The ``train/*`` means of the last epoch in metrics.jsonl (without the prefix)."""
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl")) if line.strip()]
    return {k.split("/", 1)[1]: v for k, v in rows[-1].items() if k.startswith("train/")}


def fmt(v, spec: str) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    return format(v, spec)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """columns: (key, header, format spec)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k), f) for k, _, f in columns) + " |")
    return "\n".join(lines)


def write_results(exp_dir: str, args, rows: list[dict], table: str, protocol: dict) -> None:
    """results.json (all numbers + protocol) and results.md; the README block unless ``--tiny``."""
    out_dir = output_dir(exp_dir, args)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"protocol": protocol, "rows": rows}, f, indent=1, default=float)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    if not args.tiny:
        update_readme(os.path.join(exp_dir, "README.md"), table)
    print(table)


def update_readme(readme: str, block: str) -> None:
    text = open(readme).read()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme}: no {BEGIN} ... {END} block to fill")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(readme, "w") as f:
        f.write(head + BEGIN + "\n" + block.strip() + "\n" + END + tail)


def output_dir(exp_dir: str, args) -> str:
    """Where results and figures go: the experiment folder, or under --runs for --tiny smoke runs."""
    d = exp_dir if not args.tiny else os.path.join(args.runs, "tiny_outputs")
    os.makedirs(d, exist_ok=True)
    return d
