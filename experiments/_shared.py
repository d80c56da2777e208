"""Helpers shared by ``experiments/*/run.py``: the common flags (``--data_dir``, ``--workdir``,
``--out``), running the CLI, one training point (trained, or resumed/re-used from its workdir),
restoring a trained model, Markdown tables and the README block that each ``run.py`` regenerates.

Every experiment runs one way: ``python experiments/<name>/run.py --data_dir DIR [--workdir W]
[--out O] [...]`` from the repository root (``--help`` lists the rest).

Each experiment's README holds its results between ``<!-- results:begin -->`` and
``<!-- results:end -->``; ``update_readme`` rewrites exactly that block, so the numbers in the README
are always the ones the last run of the command produced.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # the checkout's vae_jax and configs/, whether or not it is installed
    sys.path.insert(0, REPO)
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def default_data_dir() -> str:
    return os.environ.get("VAE_JAX_DATA_DIR") or os.path.join(os.path.dirname(REPO), "shared", "data", "mnist")


def parser(name: str, description: str, epochs: int | None = None) -> argparse.ArgumentParser:
    """The flags every experiment has: --data_dir, --workdir (its training runs), --out (its results);
    with ``epochs`` also --epochs and --tiny."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=default_data_dir(),
                   help="MNIST IDX directory (default $VAE_JAX_DATA_DIR, else ../shared/data/mnist)")
    p.add_argument("--workdir", default=None,
                   help=f"where the training runs (checkpoints) go (default runs/experiments/{name})")
    p.add_argument("--out", default=None, help=f"where results and figures go (default experiments/{name}/)")
    if epochs is not None:
        p.add_argument("--epochs", type=int, default=epochs, help=f"training epochs per point (default {epochs})")
        p.add_argument("--tiny", action="store_true",
                       help="smoke test: bundled 5k-digit subset, tiny nets, 1 epoch; results go under "
                            "--workdir, not into this folder or its README")
    p.name = name
    return p


def parse(p: argparse.ArgumentParser, argv=None, overrides: bool = False, default_workdir=None,
          default_out=None):
    """The parsed flags, with --workdir and --out defaulted (``default_workdir(args)`` and
    ``default_out(args)``, when given, name the defaults). ``overrides``: further
    ``--config.<field>=<value>`` flags are collected in ``args.overrides`` for the CLI."""
    if overrides:
        args, rest = p.parse_known_args(argv)
        bad = [a for a in rest if not a.startswith("--config.")]
        if bad:
            p.error(f"unrecognized arguments: {' '.join(bad)} (only --config.<field>=<value> is passed on)")
        args.overrides = rest
    else:
        args = p.parse_args(argv)
    tiny = getattr(args, "tiny", False)
    if args.workdir is None:
        args.workdir = (default_workdir(args) if default_workdir else
                        os.path.join(REPO, "runs", "experiments", p.name + ("_tiny" if tiny else "")))
    if args.out is None:
        args.out = (default_out(args) if default_out else os.path.join(args.workdir, "tiny_outputs") if tiny
                    else os.path.join(REPO, "experiments", p.name))
    # Absolute: the CLI children run from the repository root, wherever this was started.
    args.data_dir, args.workdir, args.out = (os.path.abspath(d) for d in (args.data_dir, args.workdir, args.out))
    os.makedirs(args.out, exist_ok=True)
    return args


def cli(*args: str) -> None:
    """Runs ``python -m <args>`` (the project's command line) from the repository root; fails loudly."""
    cmd = [sys.executable, "-m", *args]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


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
    import vae_jax.training.runs as runs

    eval_path = os.path.join(workdir, "eval.json")
    finished = os.path.exists(eval_path) and json.load(open(eval_path)).get("epoch") == config.train.epochs
    if not finished:
        runs.train_and_evaluate(config, workdir)
    else:
        print(f"re-using the finished run in {workdir}", flush=True)
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl")) if line.strip()]
    return dict(json.load(open(eval_path)), train_seconds=sum(r.get("epoch_time_s", 0.0) for r in rows))


def load_trained(workdir: str, ds=None):
    """(model, params, dataset) of a trained run, from its config.json and latest checkpoint."""
    import vae_jax.training.runs as runs

    run = runs.load_run(workdir, ds=ds)
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
    """results.json (all numbers + protocol) and results.md in --out; when --out is the experiment's
    own folder (and not --tiny), also the README's results block."""
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"protocol": protocol, "rows": rows}, f, indent=1, default=float)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")
    if not getattr(args, "tiny", False) and os.path.realpath(args.out) == os.path.realpath(exp_dir):
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
