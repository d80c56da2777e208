"""Sweeps: a config file's ``get_sweep(arg)`` beside its ``get_config(arg)``, expanded into points,
each trained in its own folder; resumable, shardable over job arrays, vmapped where it pays.

In a config file::

    from vae_jax.sweep import axis, product, zip_

    def get_sweep(arg=None):
        return product(axis("model.latent_dim", [2, 20]),
                       zip_(axis("model.likelihood", ["bernoulli", "gaussian"]),
                            axis("data.binarization", ["dynamic", "none"])),
                       axis("objective.kl_weight", [0.5, 1.0]),
                       axis("seed", [0, 1, 2]))

Run, then merge results (collect runs by itself at the end of an unsharded run)::

    python -m vae_jax.sweep --config=configs/vae_sweep.py:tiny --workdir=runs/sweep [--shard=0/4]
    python -m vae_jax.sweep --config=configs/vae_sweep.py:tiny --workdir=runs/sweep collect

Layout: ``WORKDIR/sweep.json`` (the expanded points), ``WORKDIR/points/<name>/`` (a normal run
folder; ``done.json`` marks it finished), ``results.csv/json``, plots and ``report.html``.
A point without ``done.json`` resumes from its own checkpoint.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import os
import sys
import time

from vae_jax.config_validation import ConfigError

# Fields that change no array shape: points differing only in these can share one compiled,
# vmapped program (sweep_vmap.py). ``seed`` changes keys; the others are traced scalars.
VMAP_FIELDS = ("seed", "objective.kl_weight", "optim.learning_rate")
DONE_FILE = "done.json"


class SweepError(ConfigError):
    """A sweep point names a missing field or a value the config rejects."""


# ---------------------------------------------------------------------------- sweep specs
def axis(path: str, values) -> list[dict]:
    """One dotted config path over ``values``: [{path: v0}, {path: v1}, ...]."""
    values = list(values)
    if not values:
        raise SweepError(f"sweep axis {path!r}: no values")
    return [{path: v} for v in values]


def product(*parts: list[dict]) -> list[dict]:
    """Cartesian product of axes/sub-sweeps (the last part varies fastest)."""
    out = []
    for combo in itertools.product(*parts):
        merged = {}
        for d in combo:
            clash = set(merged) & set(d)
            if clash:
                raise SweepError(f"sweep: field(s) {sorted(clash)} appear in two parts of a product")
            merged.update(d)
        out.append(merged)
    return out


def zip_(*parts: list[dict]) -> list[dict]:
    """Element-wise combination of equally long axes/sub-sweeps (vary together)."""
    lengths = {len(p) for p in parts}
    if len(lengths) > 1:
        raise SweepError(f"sweep: zip_ needs equally long parts, got lengths {[len(p) for p in parts]}")
    out = []
    for row in zip(*parts):
        merged = {}
        for d in row:
            merged.update(d)
        out.append(merged)
    return out


# ---------------------------------------------------------------------------- points
@dataclasses.dataclass
class Point:
    index: int
    name: str
    overrides: dict
    config: object  # ml_collections.ConfigDict


def _short(path: str, all_paths) -> str:
    last = path.split(".")[-1]
    return last if sum(p.split(".")[-1] == last for p in all_paths) == 1 else path


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "-".join(_fmt(x) for x in v)
    return str(v)


def point_name(overrides: dict) -> str:
    """Folder name from the values alone (stable when points are added or reordered)."""
    if not overrides:
        return "base"
    return ",".join(f"{_short(k, overrides)}={_fmt(v)}" for k, v in overrides.items()).replace("/", "_")


def apply_overrides(base, overrides: dict, where: str):
    """A copy of ``base`` with dotted ``overrides`` set; errors name ``where`` and the field."""
    cfg = base.copy_and_resolve_references()
    cfg.unlock()
    for path, value in overrides.items():
        node, parts = cfg, path.split(".")
        for i, part in enumerate(parts[:-1]):
            if part not in node or not hasattr(node[part], "keys"):
                raise SweepError(f"{where}: {path}: no such config field ({'.'.join(parts[:i + 1])} "
                                 "is not a group of the config)")
            node = node[part]
        if parts[-1] not in node:
            raise SweepError(f"{where}: {path}: no such config field; fields of "
                             f"{'.'.join(parts[:-1]) or 'the config'}: {sorted(node.keys())}")
        try:
            node[parts[-1]] = value
        except (TypeError, ValueError) as e:
            raise SweepError(f"{where}: {path}: {value!r} has the wrong type ({e})") from None
    return cfg


def expand(base, sweep: list[dict]) -> list[Point]:
    """Validates every point before anything runs; a bad one raises SweepError naming it."""
    from vae_jax import config_validation

    points, seen = [], {}
    for i, overrides in enumerate(sweep):
        name = point_name(overrides)
        where = f"sweep point {i} ({name})"
        cfg = apply_overrides(base, overrides, where)
        try:
            config_validation.validate(cfg)
        except ConfigError as e:
            raise SweepError(f"{where}: {e}") from None
        if name in seen:
            raise SweepError(f"{where}: same values as point {seen[name]}")
        seen[name] = i
        points.append(Point(i, name, dict(overrides), cfg))
    return points


def load_sweep(config_spec: str) -> list[dict]:
    """``get_sweep(arg)`` of ``path[:arg]`` (the same arg as get_config gets)."""
    path, _, arg = config_spec.partition(":")
    spec = importlib.util.spec_from_file_location("_sweep_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise SweepError(f"{path}: defines no get_sweep(arg); add one beside get_config")
    return list(module.get_sweep(arg or None))


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise SweepError(f"--shard: {text!r} must be i/n, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise SweepError(f"--shard: {text!r} needs 0 <= i < n")
    return i, n


def point_dir(workdir: str, point: Point) -> str:
    return os.path.join(workdir, "points", point.name)


def is_done(workdir: str, point: Point) -> bool:
    return os.path.exists(os.path.join(point_dir(workdir, point), DONE_FILE))


def mark_done(workdir: str, point: Point, metrics: dict, seconds: float, how: str) -> None:
    from vae_jax import run_meta

    run_meta._write_json_atomic(os.path.join(point_dir(workdir, point), DONE_FILE),
                                {"name": point.name, "overrides": point.overrides, "metrics": metrics,
                                 "seconds": seconds, "trained": how})


def vmap_groups(points: list[Point]) -> list[list[Point]]:
    """Points whose configs agree on everything but VMAP_FIELDS (same shapes, one program)."""
    from vae_jax import run_meta

    groups: dict[str, list[Point]] = {}
    for p in points:
        d = run_meta.config_to_dict(p.config)
        for path in VMAP_FIELDS:
            node, parts = d, path.split(".")
            for part in parts[:-1]:
                node = node[part]
            node.pop(parts[-1], None)
        groups.setdefault(json.dumps(d, sort_keys=True), []).append(p)
    return list(groups.values())


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
    from vae_jax import data as data_lib
    from vae_jax import run_meta, sweep_vmap, train

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
        how = sweep_vmap.choose(group, vmap)
        t0 = time.perf_counter()
        if how == "vmap":
            ds = data_lib.load(group[0].config.data)
            results = sweep_vmap.train_group([p.config for p in group], dirs, ds)
            for p, r in zip(group, results):
                mark_done(workdir, p, r, time.perf_counter() - t0, f"vmap x{len(group)}")
            progress.finished([p.name for p in group], time.perf_counter() - t0, f"vmap x{len(group)}")
            continue
        for p, d in zip(group, dirs):
            t1 = time.perf_counter()
            r = train.train_and_evaluate(p.config, d)
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

    from vae_jax import parallel, sweep_report
    from vae_jax import workdir as workdir_lib

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
    try:
        if action == "run":
            from ml_collections import config_flags
            spec = config_flags.get_config_filename(flags_["config"])
            shard = parse_shard(flags_.shard)
            run(spec, flags_.config, flags_.workdir, shard, flags_.vmap)
            if shard[1] > 1:
                print(f"shard {shard[0]}/{shard[1]} done; when all shards are, run: python -m "
                      f"vae_jax.sweep --workdir={flags_.workdir} collect")
                return
        out = sweep_report.collect(flags_.workdir)
        print(f"results: {out['csv']}, report: {out['html']}")
    except (ConfigError, workdir_lib.WorkdirError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    from absl import app

    FLAGS = _define_flags()
    app.run(main)
