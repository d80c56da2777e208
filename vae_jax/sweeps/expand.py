"""Sweep specs (``axis``, ``product``, ``zip_``) and their expansion into validated points.

In a config file, beside ``get_config``::

    from vae_jax.sweeps import axis, product, zip_

    def get_sweep(arg=None):
        return product(axis("model.latent_dim", [2, 20]),
                       zip_(axis("model.likelihood", ["bernoulli", "gaussian"]),
                            axis("data.binarization", ["dynamic", "none"])),
                       axis("objective.kl_weight", [0.5, 1.0]),
                       axis("seed", [0, 1, 2]))
"""
from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import os

from vae_jax import config as config_lib
from vae_jax.errors import ConfigError
import vae_jax.training.run_meta as run_meta

# Fields that change no array shape: points differing only in these can share one compiled,
# vmapped program (vmap_group.py). ``seed`` changes keys; the others are per-member arguments.
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
    points, seen = [], {}
    for i, overrides in enumerate(sweep):
        name = point_name(overrides)
        where = f"sweep point {i} ({name})"
        cfg = apply_overrides(base, overrides, where)
        try:
            config_lib.validate(cfg)
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


def vmap_groups(points: list[Point]) -> list[list[Point]]:
    """Points whose configs agree on everything but VMAP_FIELDS (same shapes, one program)."""
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
