"""Bounds between the ELBO and IWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018,
"Tighter Variational Bounds are Not Necessarily Better"). A tighter bound helps the generative
network but starves the inference network's gradient of signal (its SNR falls as K grows); these
trade the two off.

=======  ====================================================================  ====================
name     bound (per example; log w_{m,k} = log p(x, z_{m,k}) − log q(z_{m,k}|x))  ``objective`` fields
=======  ====================================================================  ====================
miwae    (1/M) Σ_m log (1/K) Σ_k w_{m,k}       M·K samples                       iwae_m, iwae_k
piwae    θ (generative role): IWAE over all M·K samples;                         iwae_m, iwae_k
         φ (inference role): MIWAE(M, K) on the same samples
ciwae    β·(1/K) Σ_k log w_k + (1 − β)·log (1/K) Σ_k w_k    K samples            ciwae_beta, iwae_k
=======  ====================================================================  ====================

All three are functions of ``protocol.log_weights`` only, so they work for every latent family
(plain Monte-Carlo log-weights: no closed-form KL even where the family has one). Special cases:
MIWAE(1, K) = IWAE_K, MIWAE(M, 1) = the M-sample ELBO, CIWAE(1) = the K-sample ELBO,
CIWAE(0) = IWAE_K. The M·K samples are one ``posterior_sample(x, key, M·K)`` call reshaped to
[M, K, B], so MIWAE(1, K) sees the very samples of the ``iwae`` objective for the same key.

PIWAE's roles: the posterior is evaluated with ``stop_gradient(params)`` for the IWAE term and the
joint with ``stop_gradient(params)`` for the MIWAE term (forward values identical, XLA computes
them once). Parameters used only by q(z|x) thus get the MIWAE gradient, those used only by p(x, z)
the IWAE gradient; a parameter a family uses in both roles (a ladder's top-down path) gets both.
The reported loss is −IWAE_{MK}.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from vae_jax import checks
import vae_jax.models.protocol as protocol
from vae_jax.objectives.registry import register, vae_metrics


# ---------------------------------------------------------------------------- bounds of log-weights
def miwae_bound(log_w, m: int):
    """log_w [M·K, B] (M groups of K consecutive samples) -> (1/M) Σ_m log mean_k w_{m,k}, [B]."""
    grouped = log_w.reshape((m, log_w.shape[0] // m) + log_w.shape[1:])
    return protocol.log_mean_exp(grouped, axis=1).mean(0)


def iwae_bound(log_w):
    return protocol.log_mean_exp(log_w, axis=0)


def ciwae_bound(log_w, beta):
    """β·ELBO_K + (1 − β)·IWAE_K on the same K log-weights [K, B] -> [B]."""
    return beta * log_w.mean(0) + (1.0 - beta) * iwae_bound(log_w)


# ---------------------------------------------------------------------------- objectives
def _terms(model, params, x, key, n, inference_params=None):
    """(log w [n, B], rec [B], MC KL [B], likelihood params of sample 0) for n posterior samples."""
    log_px_z, log_pz, log_q, lik_params = protocol.log_joint_terms(model, params, x, key, n, inference_params)
    return log_px_z + log_pz - log_q, -log_px_z.mean(0), (log_q - log_pz).mean(0), lik_params[0]


def _check_mk(cfg):
    checks.positive_int(cfg, "objective.iwae_m")
    checks.positive_int(cfg, "objective.iwae_k")


def _check_ciwae(cfg):
    checks.number(cfg, "objective.ciwae_beta", low=0, high=1)
    checks.positive_int(cfg, "objective.iwae_k")


@register("miwae", fields=("iwae_m", "iwae_k"), check=_check_mk)
def miwae(model, params, x, key, step, cfg):
    """−MIWAE(M, K): M independent K-sample IWAE bounds averaged (M = ``objective.iwae_m``,
    K = ``objective.iwae_k``)."""
    log_w, rec, kl, lik_params = _terms(model, params, x, key, cfg.iwae_m * cfg.iwae_k)
    bound = miwae_bound(log_w, cfg.iwae_m)
    loss = -bound.mean()
    return loss, vae_metrics(loss, rec, kl, lik_params, model, x, neg_miwae=loss,
                             neg_iwae=-iwae_bound(log_w).mean())


@register("piwae", fields=("iwae_m", "iwae_k"), check=_check_mk)
def piwae(model, params, x, key, step, cfg):
    """Generative role trained on IWAE over all M·K samples, inference role on MIWAE(M, K)."""
    n, frozen = cfg.iwae_m * cfg.iwae_k, jax.lax.stop_gradient(params)
    log_w_gen, rec, kl, lik_params = _terms(model, params, x, key, n, inference_params=frozen)
    log_w_inf, *_ = _terms(model, frozen, x, key, n, inference_params=params)
    neg_iwae = -iwae_bound(log_w_gen).mean()
    neg_miwae = -miwae_bound(log_w_inf, cfg.iwae_m).mean()
    # Value −IWAE_{MK}; gradient: IWAE's for the generative role, MIWAE's for the inference role.
    loss = neg_iwae + neg_miwae - jax.lax.stop_gradient(neg_miwae)
    return loss, vae_metrics(loss, rec, kl, lik_params, model, x, neg_iwae=neg_iwae,
                             neg_miwae=jax.lax.stop_gradient(neg_miwae))


@register("ciwae", fields=("ciwae_beta", "iwae_k"), check=_check_ciwae)
def ciwae(model, params, x, key, step, cfg):
    """−CIWAE(β) = −[β·ELBO_K + (1 − β)·IWAE_K] on the same K samples (β = ``objective.ciwae_beta``,
    K = ``objective.iwae_k``)."""
    log_w, rec, kl, lik_params = _terms(model, params, x, key, cfg.iwae_k)
    loss = -ciwae_bound(log_w, jnp.asarray(cfg.ciwae_beta, log_w.dtype)).mean()
    return loss, vae_metrics(loss, rec, kl, lik_params, model, x, neg_iwae=-iwae_bound(log_w).mean())
