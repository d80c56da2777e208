"""Training objectives: a registry of ``name -> fn(model, params, x, key, step, cfg)``.

``x`` is a preprocessed float batch [B, H, W, C]; ``key`` is this step's PRNG key; ``step`` the
global step (a traced int, for schedules); ``cfg`` the ``objective`` ConfigDict. Each returns
``(loss, metrics)`` where ``loss`` is the scalar to minimize and ``metrics`` a dict of scalars
(batch means, in nats per example). Metrics every VAE objective reports: ``rec_loss``
(-E_q log p(x|z)), ``kl`` (KL(q(z|x)||p(z))), ``neg_elbo`` (their sum).

Adding an objective is one decorated function here plus ``--config.objective.name=<name>``:

    @register("my_objective")
    def my_objective(model, params, x, key, step, cfg):
        ...
        return loss, {"neg_elbo": ..., ...}
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp

from vae_jax import distributions as D
from vae_jax.models import likelihood_of

OBJECTIVES: dict[str, Callable] = {}
# Which model kinds each objective accepts (checked when the config is validated).
OBJECTIVE_MODEL_KINDS: dict[str, tuple[str, ...]] = {}


def register(name: str, model_kinds=("vae",)):
    def deco(fn):
        OBJECTIVES[name] = fn
        OBJECTIVE_MODEL_KINDS[name] = tuple(model_kinds)
        return fn
    return deco


def get_objective(name: str) -> Callable:
    if name not in OBJECTIVES:
        raise ValueError(f"objective.name: {name!r} is not one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


def vae_terms(model, params, x, key):
    """Single-sample ELBO pieces per example: (rec_loss [B], kl per dim [B, n], aux dict)."""
    lik_params, mean, logvar, z = model.apply({"params": params}, x, key)
    rec = -likelihood_of(model).log_prob(x, lik_params)
    kl_dims = D.kl_diag_gaussian_std_normal(mean, logvar)
    return rec, kl_dims, {"mean": mean, "logvar": logvar, "z": z, "lik_params": lik_params}


def _mse(model, x, lik_params):
    # On flat [B, D] arrays and as row sums, like the log-likelihood: the image-shaped form cost
    # a layout copy and a separate whole-array reduce; this form removes about two thirds of the
    # metric's cost on CPU (python bench/mse_metric_ab.py).
    xf, pf = D._flatten(x, lik_params, x.ndim - 1)
    d = likelihood_of(model).mean(pf) - xf
    return jnp.mean(jnp.sum(d * d, axis=-1)) / d.shape[-1]


@register("elbo")
def elbo(model, params, x, key, step, cfg):
    """-ELBO with KL weight β (``objective.kl_weight``; β=1 is the ELBO, β≠1 the β-VAE)."""
    rec, kl_dims, aux = vae_terms(model, params, x, key)
    kl = kl_dims.sum(-1)
    loss = jnp.mean(rec + cfg.kl_weight * kl)
    return loss, {"loss": loss, "rec_loss": rec.mean(), "kl": kl.mean(),
                  "neg_elbo": (rec + kl).mean(), "mse": _mse(model, x, aux["lik_params"])}


@register("ae", model_kinds=("ae", "linear_ae", "linear_ae_orth"))
def ae(model, params, x, key, step, cfg):
    """Autoencoder reconstruction loss -log p(x|dec(enc(x))): MSE for the Gaussian likelihood
    (up to the constants in distributions.py), BCE for Bernoulli."""
    lik_params, _ = model.apply({"params": params}, x)
    rec = -likelihood_of(model).log_prob(x, lik_params)
    loss = rec.mean()
    return loss, {"loss": loss, "rec_loss": loss, "mse": _mse(model, x, lik_params)}


# The schedules, free bits, IWAE and regularized AEs live in their own module; importing it here
# registers them, so OBJECTIVES is complete whoever imports this module.
from vae_jax import objectives_extra  # noqa: E402,F401
