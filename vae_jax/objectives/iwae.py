"""The importance-weighted bound (Burda et al. 2016) as a training objective.

``iwae``: −log (1/k) Σ_i p(x,z_i)/q(z_i|x), k = ``objective.iwae_k``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from vae_jax import checks
import vae_jax.models.distributions as D
from vae_jax.models import likelihood_of
from vae_jax.objectives.registry import register, vae_metrics


def iwae_log_weights(model, params, x, key, k: int):
    """log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x) for z_i ~ q(z|x), i = 1..k.

    Returns (log_w [k, B], rec [k, B], kl [B] analytic, lik_params of sample 0). The samples are
    ``reparameterize(key, μ, log σ², k)``; for k = 1 they are the very ε the ``elbo`` objective
    draws from the same key."""
    mean, logvar = model.apply({"params": params}, x, method="encode")
    z = D.reparameterize(key, mean, logvar, k)                                  # [k, B, n]
    lik_params = model.apply({"params": params}, z.reshape((-1, z.shape[-1])), method="decode")
    lik_params = lik_params.reshape((k, x.shape[0]) + lik_params.shape[1:])
    log_px_z = likelihood_of(model).log_prob(x, lik_params)                      # [k, B]
    log_w = log_px_z + D.std_normal_log_prob(z) - D.diag_gaussian_log_prob(z, mean, logvar)
    kl = D.kl_diag_gaussian_std_normal(mean, logvar).sum(-1)
    return log_w, -log_px_z, kl, lik_params[0]


def log_mean_exp(a, axis=0):
    return jax.scipy.special.logsumexp(a, axis=axis) - jnp.log(a.shape[axis])


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
    Using the closed-form KL in the first bracket lowers variance and makes k = 1 *identical* to the
    ``elbo`` objective for the same key (the gap is exactly 0). ``neg_iwae`` reports the plain
    Monte-Carlo estimate −log mean_i w_i; ``log_ess`` is the log effective sample size (0 … log k):
    near 0 means one sample carries all the weight. ``objective.kl_weight`` is not used."""
    log_w, rec_k, kl, lik_params = iwae_log_weights(model, params, x, key, cfg.iwae_k)
    rec = rec_k.mean(0)
    log_mean_w = log_mean_exp(log_w)
    gap = log_mean_w - log_w.mean(0)
    loss = jnp.mean(rec + kl - gap)
    return loss, vae_metrics(loss, rec, kl, lik_params, model, x, neg_iwae=-log_mean_w.mean(),
                              iwae_gap=gap.mean(), log_ess=log_effective_sample_size(log_w).mean())


