"""Field checks shared by every room's ``validate(cfg)``; each raises ConfigError naming the field."""
from __future__ import annotations

from vae_jax.errors import ConfigError


def get(cfg, path):
    node = cfg
    for part in path.split("."):
        if part not in node:
            raise ConfigError(f"{path}: missing field")
        node = node[part]
    return node


def choice(cfg, path, allowed):
    v = get(cfg, path)
    if v not in allowed:
        raise ConfigError(f"{path}: {v!r} is not allowed; choose one of {sorted(allowed)}")


def positive_int(cfg, path, allow_zero=False):
    v = get(cfg, path)
    if isinstance(v, bool) or not isinstance(v, int) or v < (0 if allow_zero else 1):
        raise ConfigError(f"{path}: {v!r} must be an integer {'>= 0' if allow_zero else '>= 1'}")


def number(cfg, path, low=None, low_inclusive=True, high=None):
    v = get(cfg, path)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{path}: {v!r} must be a number")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        raise ConfigError(f"{path}: {v!r} must be {'>=' if low_inclusive else '>'} {low}")
    if high is not None and v > high:
        raise ConfigError(f"{path}: {v!r} must be <= {high}")


def int_tuple(cfg, path, allow_empty=True):
    v = get(cfg, path)
    if (not isinstance(v, (tuple, list)) or (not v and not allow_empty)
            or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in v)):
        raise ConfigError(f"{path}: {v!r} must be a tuple of positive integers, e.g. (500,)")


def boolean(cfg, path):
    v = get(cfg, path)
    if not isinstance(v, bool):
        raise ConfigError(f"{path}: {v!r} must be True or False")
