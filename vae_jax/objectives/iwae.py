"""The importance-weighted bound (Burda et al. 2016) as a training objective.

``iwae``: −log (1/k) Σ_i p(x,z_i)/q(z_i|x), k = ``objective.iwae_k``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from vae_jax import checks
import vae_jax.models.protocol as protocol
from vae_jax.objectives.registry import register, vae_metrics


def iwae_log_weights(model, params, x, key, k: int):
    """log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x) for z_i ~ q(z|x), i = 1..k (any latent
    family, ``protocol.log_weights_and_kl``).

    Returns (log_w [k, B], rec [k, B], kl [B], lik_params of sample 0). ``kl`` is the closed form
    where the family has one (for k = 1 the samples are then the very ε the ``elbo`` objective
    draws from the same key), else the k-sample mean of log q − log p."""
    log_w, log_px_z, kl, lik_params = protocol.log_weights_and_kl(model, params, x, key, k)
    return log_w, -log_px_z, kl, lik_params[0]


log_mean_exp = protocol.log_mean_exp


def log_effective_sample_size(log_w, axis=0):
    """log ESS of self-normalized importance weights: ESS = (Σw)² / Σw² ∈ [1, k]."""
    return 2 * jax.scipy.special.logsumexp(log_w, axis=axis) - jax.scipy.special.logsumexp(2 * log_w, axis=axis)


def _check_iwae(cfg):
    checks.positive_int(cfg, "objective.iwae_k")


@register("iwae", fields=("iwae_k",), check=_check_iwae)
def iwae(model, params, x, key, step, cfg):
    """Importance-weighted bound with k = ``objective.iwae_k`` samples (Burda et al. 2016).

    The loss is written as ELBO + Jensen gap,
        L_k = [mean_i log p(x|z_i) − KL(q‖p)] + [log mean_i w_i − mean_i log w_i],
    whose expectation is exactly the IWAE bound (E_q[log w] equals the first bracket in expectation).
    Where the family has a closed-form KL, using it in the first bracket lowers variance and makes
    k = 1 *identical* to the ``elbo`` objective for the same key (the gap is exactly 0); otherwise
    the first bracket is mean_i log w_i and the loss is exactly −log mean_i w_i. ``neg_iwae`` reports the plain
    Monte-Carlo estimate −log mean_i w_i; ``log_ess`` is the log effective sample size (0 … log k):
    near 0 means one sample carries all the weight. ``objective.kl_weight`` is not used."""
    log_w, rec_k, kl, lik_params = iwae_log_weights(model, params, x, key, cfg.iwae_k)
    rec = rec_k.mean(0)
    log_mean_w = log_mean_exp(log_w)
    gap = log_mean_w - log_w.mean(0)
    loss = jnp.mean(rec + kl - gap)
    return loss, vae_metrics(loss, rec, kl, lik_params, model, x, neg_iwae=-log_mean_w.mean(),
                              iwae_gap=gap.mean(), log_ess=log_effective_sample_size(log_w).mean())


