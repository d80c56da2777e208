"""Autoencoder objectives: plain reconstruction, denoising, sparse.

============  ===============================================  =============================
name          loss (batch mean)                                  fields of ``objective``
============  ===============================================  =============================
ae            −log p(x | dec(enc(x)))                            –
denoising_ae  −log p(x | dec(enc(x̃))), x̃ = corrupt(x)          noise_type, noise_std, mask_prob
sparse_ae     −log p(x | dec(enc(x))) + α·Σ_d |z_d|              l1_weight
============  ===============================================  =============================
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from vae_jax import checks
from vae_jax.errors import ConfigError
from vae_jax.models import families, likelihood_of
from vae_jax.objectives.registry import mse, register

NOISE_TYPES = ("gaussian", "masking")
AE_ONLY = (families.AUTOENCODER,)


@register("ae", requires=AE_ONLY)
def ae(model, params, x, key, step, cfg):
    """Autoencoder reconstruction loss -log p(x|dec(enc(x))): MSE for the Gaussian likelihood
    (up to the constants in distributions.py), BCE for Bernoulli."""
    lik_params, _ = model.apply({"params": params}, x)
    rec = -likelihood_of(model).log_prob(x, lik_params)
    loss = rec.mean()
    return loss, {"loss": loss, "rec_loss": loss, "mse": mse(model, x, lik_params)}


def _check_denoising(cfg):
    checks.choice(cfg, "objective.noise_type", NOISE_TYPES)
    checks.number(cfg, "objective.noise_std", low=0)
    checks.number(cfg, "objective.mask_prob", low=0, high=1)
    if cfg.objective.mask_prob >= 1:
        raise ConfigError(f"objective.mask_prob: {cfg.objective.mask_prob!r} must be < 1 (1 masks every pixel)")


def _check_sparse(cfg):
    checks.number(cfg, "objective.l1_weight", low=0)


def corrupt(key, x, noise_type: str, noise_std: float, mask_prob: float):
    """Input corruption of the denoising AE (Vincent et al. 2008): additive Gaussian noise of std
    ``noise_std`` or masking noise that zeroes each pixel with probability ``mask_prob``."""
    if noise_type == "gaussian":
        return x + noise_std * jax.random.normal(key, x.shape, x.dtype)
    if noise_type == "masking":
        return x * jax.random.bernoulli(key, 1.0 - mask_prob, x.shape).astype(x.dtype)
    raise ValueError(f"objective.noise_type: {noise_type!r} is not one of {list(NOISE_TYPES)}")


def _ae_reconstruction(model, params, x_in, x_target):
    lik_params, z = model.apply({"params": params}, x_in)
    rec = -likelihood_of(model).log_prob(x_target, lik_params)
    return rec, z, lik_params


@register("denoising_ae", requires=AE_ONLY, model_kinds=("ae", "linear_ae"), fields=("noise_type", "noise_std", "mask_prob"),
          check=_check_denoising)
def denoising_ae(model, params, x, key, step, cfg):
    """Reconstruct the clean x from a corrupted x̃ (``objective.noise_type``: 'gaussian' with
    ``noise_std`` or 'masking' with ``mask_prob``); the identity map no longer minimizes the loss."""
    x_noisy = corrupt(key, x, cfg.noise_type, cfg.noise_std, cfg.mask_prob)
    rec, _, lik_params = _ae_reconstruction(model, params, x_noisy, x)
    loss = rec.mean()
    return loss, {"loss": loss, "rec_loss": loss, "mse": mse(model, x, lik_params),
                  "input_noise_mse": jnp.mean((x_noisy - x) ** 2)}


@register("sparse_ae", requires=AE_ONLY, model_kinds=("ae", "linear_ae"), fields=("l1_weight",), check=_check_sparse)
def sparse_ae(model, params, x, key, step, cfg):
    """Reconstruction plus an L1 penalty α·Σ_d |z_d| on the code (α = ``objective.l1_weight``)."""
    rec, z, lik_params = _ae_reconstruction(model, params, x, x)
    code_l1 = jnp.abs(z).sum(-1).mean()
    loss = rec.mean() + cfg.l1_weight * code_l1
    return loss, {"loss": loss, "rec_loss": rec.mean(), "mse": mse(model, x, lik_params),
                  "code_l1": code_l1, "code_near_zero": jnp.mean(jnp.abs(z) < 1e-2)}


