"""Sweeps: a config file's ``get_sweep(arg)`` beside its ``get_config(arg)``, expanded into points,
each trained in its own folder; resumable, shardable over job arrays, vmapped where it pays.

In a config file::

    from vae_jax.sweeps import axis, product, zip_

    def get_sweep(arg=None):
        return product(axis("model.latent_dim", [2, 20]),
                       zip_(axis("model.likelihood", ["bernoulli", "gaussian"]),
                            axis("data.binarization", ["dynamic", "none"])),
                       axis("objective.kl_weight", [0.5, 1.0]),
                       axis("seed", [0, 1, 2]))

Run, then merge results (collect runs by itself at the end of an unsharded run)::

    python -m vae_jax.sweeps --config=configs/vae_sweep.py:tiny --workdir=runs/sweep [--shard=0/4]
    python -m vae_jax.sweeps --config=configs/vae_sweep.py:tiny --workdir=runs/sweep collect

Layout: ``WORKDIR/sweep.json`` (the expanded points), ``WORKDIR/points/<name>/`` (a normal run
folder; ``done.json`` marks it finished), ``results.csv/json``, plots and ``report.html``.
A point without ``done.json`` resumes from its own checkpoint.
"""
from __future__ import annotations

import os
import sys
import time

from vae_jax import data as data_lib
from vae_jax.errors import ConfigError, WorkdirError
import vae_jax.report.run_report as run_report
import vae_jax.sweeps.collect as sweep_collect
import vae_jax.sweeps.vmap_group as vmap_group
from vae_jax.sweeps.expand import (DONE_FILE, Point, SweepError, expand, is_done, load_sweep,  # noqa: F401
                                   parse_shard, point_dir, vmap_groups)
import vae_jax.training.parallel as parallel
import vae_jax.training.run_meta as run_meta
import vae_jax.training.runs as runs


def mark_done(workdir: str, point: Point, metrics: dict, seconds: float, how: str) -> None:
    run_meta._write_json_atomic(os.path.join(point_dir(workdir, point), DONE_FILE),
                                {"name": point.name, "overrides": point.overrides, "metrics": metrics,
                                 "seconds": seconds, "trained": how})


# ---------------------------------------------------------------------------- running
class Progress:
    """One line per finished point: count, elapsed, ETA over the points this process trains."""

    def __init__(self, total: int):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()

    def finished(self, names: list[str], seconds: float, how: str):
        self.done += len(names)
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        for n in names:
            print(f"[sweep {self.done}/{self.total}] {n}: done ({how}, {seconds:.0f}s); "
                  f"elapsed {elapsed:.0f}s, ETA {eta:.0f}s", flush=True)


def run(config_spec: str, base, workdir: str, shard=(0, 1), vmap: str = "auto") -> list[Point]:
    """Trains this shard's unfinished points; returns all points of the sweep."""
    points = expand(base, load_sweep(config_spec))
    os.makedirs(workdir, exist_ok=True)
    run_meta._write_json_atomic(os.path.join(workdir, "sweep.json"), {
        "config": config_spec, "points": [{"index": p.index, "name": p.name, "overrides": p.overrides}
                                          for p in points]})
    i, n = shard
    mine = points[i::n]
    todo = [p for p in mine if not is_done(workdir, p)]
    print(f"sweep: {len(points)} points; shard {i}/{n} holds {len(mine)}, {len(mine) - len(todo)} already "
          f"finished, {len(todo)} to train", flush=True)
    progress = Progress(len(todo))
    for group in vmap_groups(todo):
        dirs = [point_dir(workdir, p) for p in group]
        how = vmap_group.choose(group, vmap)
        t0 = time.perf_counter()
        if how == "vmap":
            ds = data_lib.load(group[0].config.data)
            results = vmap_group.train_group([p.config for p in group], dirs, ds)
            for p, d in zip(group, dirs):
                if p.config.report.enabled:
                    run_report.write(d)
            for p, r in zip(group, results):
                mark_done(workdir, p, r, time.perf_counter() - t0, f"vmap x{len(group)}")
            progress.finished([p.name for p in group], time.perf_counter() - t0, f"vmap x{len(group)}")
            continue
        for p, d in zip(group, dirs):
            t1 = time.perf_counter()
            r = runs.train_and_evaluate(p.config, d)
            if p.config.report.enabled:
                run_report.write(d)
            mark_done(workdir, p, r, time.perf_counter() - t1, "sequential")
            progress.finished([p.name], time.perf_counter() - t1, "sequential")
    return points


# ---------------------------------------------------------------------------- CLI
def _define_flags():
    from absl import flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "Config file with get_config and get_sweep, "
                                    "optionally ':arg'.", lock_config=True)
    flags.DEFINE_string("workdir", None, "Sweep directory (one folder per point under points/).")
    flags.DEFINE_string("shard", "0/1", "i/n: train points i, i+n, i+2n, ... (job arrays).")
    flags.DEFINE_enum("vmap", "auto", ["auto", "on", "off"],
                      "auto: a short timed probe per group of same-shape points decides; on/off: force.")
    return flags.FLAGS


def main(argv):
    from absl import logging

    logging.set_verbosity(logging.WARNING)
    flags_ = sys.modules[__name__].FLAGS
    action = argv[1] if len(argv) > 1 else "run"
    if action not in ("run", "collect") or len(argv) > 2:
        print(f"error: unexpected arguments {argv[1:]}; the only positional argument is 'run' or "
              "'collect'", file=sys.stderr)
        sys.exit(2)
    if not flags_.workdir:
        print("error: --workdir: required (the sweep directory)", file=sys.stderr)
        sys.exit(2)
    parallel.maybe_initialize_distributed()
    import jax
    if jax.process_count() > 1:
        print("error: VAE_JAX_DISTRIBUTED: a sweep runs as independent one-process jobs (--shard=i/n, "
              "scripts/slurm_array.sh), not as one multi-process group; unset it", file=sys.stderr)
        sys.exit(2)
    try:
        if action == "run":
            from ml_collections import config_flags
            spec = config_flags.get_config_filename(flags_["config"])
            shard = parse_shard(flags_.shard)
            run(spec, flags_.config, flags_.workdir, shard, flags_.vmap)
            if shard[1] > 1:
                print(f"shard {shard[0]}/{shard[1]} done; when all shards are, run: python -m "
                      f"vae_jax.sweeps --workdir={flags_.workdir} collect")
                return
        out = sweep_collect.collect(flags_.workdir)
        print(f"results: {out['csv']}, report: {out['html']}")
    except (ConfigError, WorkdirError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def entry():
    from absl import app

    global FLAGS
    FLAGS = _define_flags()
    app.run(main)


if __name__ == "__main__":
    entry()
