"""The objective registry: ``name -> fn(model, params, x, key, step, cfg)``.

``x`` is a preprocessed float batch [B, H, W, C]; ``key`` is this step's PRNG key; ``step`` the
global step (a traced int, for schedules); ``cfg`` the ``objective`` ConfigDict (inside a vmapped
sweep group ``cfg.kl_weight`` is a traced per-member scalar). Each returns ``(loss, metrics)``:
``loss`` is the scalar to minimize and ``metrics`` a dict of scalars (batch means, nats per
example). Metrics every VAE objective reports: ``rec_loss`` (-E_q log p(x|z)), ``kl``
(KL(q(z|x)||p(z))), ``neg_elbo`` (their sum).

A new objective family is one new file in ``vae_jax/objectives/`` (listed in ``__init__.py``):

    @register("my_objective", fields=("my_weight",), check=_check)
    def my_objective(model, params, x, key, step, cfg):
        log_w, log_px_z = protocol.log_weights(model, params, x, key, 8)   # any latent family
        ...
        return loss, {"neg_elbo": ..., ...}

``requires`` names the family capabilities it needs (vae_jax/models/families: ``latent`` — the
latent-variable protocol, the default; ``autoencoder``); ``model_kinds`` optionally narrows it to
some families by name. Objectives written on the protocol (vae_jax/models/protocol.py) work for
every latent family. ``fields`` are the ``objective.<field>`` entries it reads; ``check(cfg)``
validates them (raise ``vae_jax.errors.ConfigError`` naming the field). A field that no objective
in use reads and that differs from its default is refused by ``validate``, so nothing is silently
ignored.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp

from vae_jax import checks
from vae_jax.errors import ConfigError
import vae_jax.models.distributions as D
import vae_jax.models.families as families
import vae_jax.models.protocol as protocol


@dataclasses.dataclass(frozen=True)
class Objective:
    fn: Callable
    requires: frozenset[str]                 # family capabilities (vae_jax.models.families)
    kinds: tuple[str, ...] | None            # None: every family with those capabilities
    fields: tuple[str, ...]
    check: Callable | None

    @property
    def model_kinds(self) -> tuple[str, ...]:
        """The registered families it applies to."""
        return tuple(k for k in families.supporting(self.requires) if self.kinds is None or k in self.kinds)


OBJECTIVES: dict[str, Objective] = {}
# Fields every objective may read (the trainer passes them through).
COMMON_FIELDS = ("name", "kl_weight")


def register(name: str, *, requires=(families.LATENT,), model_kinds=None, fields=(), check=None):
    def deco(fn):
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} registered twice")
        OBJECTIVES[name] = Objective(fn, frozenset(requires), None if model_kinds is None else tuple(model_kinds),
                                     tuple(fields), check)
        return fn
    return deco


def get_objective(name: str) -> Callable:
    if name not in OBJECTIVES:
        raise ConfigError(f"objective.name: {name!r} is not one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name].fn


def validate(cfg, defaults) -> None:
    """``objective.*``: the name, the model families it supports, its own fields, and no field set
    away from its default that the chosen objective does not read."""
    checks.choice(cfg, "objective.name", OBJECTIVES)
    obj = OBJECTIVES[cfg.objective.name]
    if cfg.model.kind not in obj.model_kinds:
        raise ConfigError(f"objective.name: {cfg.objective.name!r} does not apply to "
                          f"model.kind={cfg.model.kind!r}; it needs model.kind in {list(obj.model_kinds)}")
    checks.number(cfg, "objective.kl_weight", low=0)
    for field in obj.fields:
        checks.get(cfg, f"objective.{field}")
    if obj.check is not None:
        obj.check(cfg)
    used = set(obj.fields) | set(COMMON_FIELDS)
    for field in cfg.objective:
        if field in used or field not in defaults.objective:
            continue
        if cfg.objective[field] != defaults.objective[field]:
            readers = sorted(n for n, o in OBJECTIVES.items() if field in o.fields)
            raise ConfigError(f"objective.{field}: set to {cfg.objective[field]!r} but objective.name="
                              f"{cfg.objective.name!r} does not read it (it is read by {readers}); "
                              "remove the override or choose one of those objectives")


# ---------------------------------------------------------------------------- shared pieces
def vae_terms(model, params, x, key):
    """Single-sample ELBO pieces per example: (rec_loss [B], kl [B], lik_params [B, ...]) through the
    protocol (closed-form KL where the family has one, else log q − log p on the sample)."""
    return protocol.elbo_terms(model, params, x, key)


def mse(model, x, lik_params):
    """Mean squared error of the likelihood's mean, per pixel (on flat [B, D] arrays: the
    image-shaped form cost a layout copy on CPU)."""
    xf, pf = D._flatten(x, lik_params, x.ndim - 1)
    d = protocol.likelihood_of(model).mean(pf) - xf
    return jnp.mean(jnp.sum(d * d, axis=-1)) / d.shape[-1]


def vae_metrics(loss, rec, kl, lik_params, model, x, **extra):
    return dict({"loss": loss, "rec_loss": rec.mean(), "kl": kl.mean(), "neg_elbo": (rec + kl).mean(),
                 "mse": mse(model, x, lik_params)}, **extra)
