"""The objective registry: ``name -> fn(model, params, x, key, step, cfg)``.

``x`` is a preprocessed float batch [B, H, W, C]; ``key`` is this step's PRNG key; ``step`` the
global step (a traced int, for schedules); ``cfg`` the ``objective`` ConfigDict (inside a vmapped
sweep group ``cfg.kl_weight`` is a traced per-member scalar). Each returns ``(loss, metrics)``:
``loss`` is the scalar to minimize and ``metrics`` a dict of scalars (batch means, nats per
example). Metrics every VAE objective reports: ``rec_loss`` (-E_q log p(x|z)), ``kl``
(KL(q(z|x)||p(z))), ``neg_elbo`` (their sum).

A new objective family is one new file in ``vae_jax/objectives/`` (listed in ``__init__.py``):

    @register("my_objective", model_kinds=("vae",), fields=("my_weight",), check=_check)
    def my_objective(model, params, x, key, step, cfg):
        ...
        return loss, {"neg_elbo": ..., ...}

``fields`` are the ``objective.<field>`` entries it reads; ``check(cfg)`` validates them (raise
``vae_jax.errors.ConfigError`` naming the field). A field that no objective in use reads and that
differs from its default is refused by ``validate``, so nothing is silently ignored.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp

from vae_jax import checks
from vae_jax.errors import ConfigError
import vae_jax.models.distributions as D
from vae_jax.models import likelihood_of


@dataclasses.dataclass(frozen=True)
class Objective:
    fn: Callable
    model_kinds: tuple[str, ...]
    fields: tuple[str, ...]
    check: Callable | None


OBJECTIVES: dict[str, Objective] = {}
# Fields every objective may read (the trainer passes them through).
COMMON_FIELDS = ("name", "kl_weight")


def register(name: str, model_kinds=("vae",), fields=(), check=None):
    def deco(fn):
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} registered twice")
        OBJECTIVES[name] = Objective(fn, tuple(model_kinds), tuple(fields), check)
        return fn
    return deco


def get_objective(name: str) -> Callable:
    if name not in OBJECTIVES:
        raise ConfigError(f"objective.name: {name!r} is not one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name].fn


def validate(cfg, defaults) -> None:
    """``objective.*``: the name, the model kinds it supports, its own fields, and no field set
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
    """Single-sample ELBO pieces per example: (rec_loss [B], kl per dim [B, n], aux dict)."""
    lik_params, mean, logvar, z = model.apply({"params": params}, x, key)
    rec = -likelihood_of(model).log_prob(x, lik_params)
    kl_dims = D.kl_diag_gaussian_std_normal(mean, logvar)
    return rec, kl_dims, {"mean": mean, "logvar": logvar, "z": z, "lik_params": lik_params}


def mse(model, x, lik_params):
    """Mean squared error of the likelihood's mean, per pixel (on flat [B, D] arrays: the
    image-shaped form cost a layout copy on CPU)."""
    xf, pf = D._flatten(x, lik_params, x.ndim - 1)
    d = likelihood_of(model).mean(pf) - xf
    return jnp.mean(jnp.sum(d * d, axis=-1)) / d.shape[-1]


def vae_metrics(loss, rec, kl, lik_params, model, x, **extra):
    return dict({"loss": loss, "rec_loss": rec.mean(), "kl": kl.mean(), "neg_elbo": (rec + kl).mean(),
                 "mse": mse(model, x, lik_params)}, **extra)
