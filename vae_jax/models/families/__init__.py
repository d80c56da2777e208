"""Model families by name: each family registers itself next to its definition, and
``build_model(cfg.model, image_shape)`` dispatches on ``cfg.model.kind`` through this table (no
if-chains anywhere else).

A family is one file in ``vae_jax/models/families/`` (plus its module name in the import list of
``vae_jax/models/__init__.py``, which is what registers it):

    register_family("my_vae", build=_build, validate=_validate,
                    defaults={"hidden": (200, 200), "z": 50},        # -> cfg.model.my_vae.*
                    shared_fields=("likelihood",), shrink=_shrink)

- ``build(model_cfg, image_shape) -> flax module`` speaking the protocol (vae_jax/models/protocol.py).
- ``defaults``: the family's own fields; they live in the sub-section ``cfg.model.<name>`` of
  ``vae_jax.config.base_config`` and are refused (changed away from their default) for any other
  ``model.kind``.
- ``validate(cfg)``: checks ``cfg.model.<name>`` (called only when model.kind is this family);
  raise ``vae_jax.errors.ConfigError`` naming the field.
- ``shared_fields``: the top-level ``model.*`` fields the family reads besides ``kind`` (e.g.
  ``latent_dim``, ``encoder_hidden``, ``likelihood``); the others are refused when changed.
- ``shrink(model_cfg)``: what ``vae_jax.config.tiny`` does to this family's fields for tests.
- ``capabilities``: what objectives may ask for (``vae_jax.objectives.registry.register(requires=)``):
  ``"latent"`` = speaks the latent-variable protocol, ``"autoencoder"`` = deterministic
  ``encode``/``decode``, ``"gaussian_encoder"`` = ``encode(x) -> (mean, logvar)`` of one Gaussian
  layer (read by the tasks that optimise codes directly).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from vae_jax.errors import ConfigError

LATENT = "latent"
AUTOENCODER = "autoencoder"
GAUSSIAN_ENCODER = "gaussian_encoder"


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    build: Callable
    validate: Callable | None = None
    defaults: dict | None = None
    shared_fields: tuple[str, ...] = ()
    shrink: Callable | None = None
    capabilities: frozenset[str] = frozenset({LATENT})

    @property
    def is_vae(self) -> bool:
        return LATENT in self.capabilities


FAMILIES: dict[str, Family] = {}


def register_family(name: str, build: Callable, validate: Callable | None = None, defaults: dict | None = None,
                    shared_fields=(), shrink: Callable | None = None, capabilities=(LATENT,)) -> Family:
    if name in FAMILIES:
        raise ValueError(f"model family {name!r} registered twice")
    family = Family(name, build, validate, dict(defaults) if defaults else None, tuple(shared_fields), shrink,
                    frozenset(capabilities))
    FAMILIES[name] = family
    return family


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"model.kind: {name!r} is not one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def build_model(cfg, image_shape):
    """``cfg`` is the ``model`` section; returns the family's Flax module."""
    return get_family(cfg.kind).build(cfg, tuple(image_shape))


def supporting(capabilities) -> list[str]:
    """The registered families that have every capability in ``capabilities``."""
    need = set(capabilities)
    return sorted(n for n, f in FAMILIES.items() if need <= f.capabilities)
