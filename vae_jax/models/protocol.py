"""The latent-variable-model protocol: what every model family gives, and the pure functions that
objectives, the evaluator, the diagnostics and the tasks build on (they never name a family).

A family is a Flax module with these methods (called through ``model.apply(..., method=name)``):

    posterior_sample(x, key, num_samples) -> (z, log_q)
        z ~ q(z|x) with a leading sample axis: a pytree (one array per stochastic layer, or one
        array) whose leaves are [S, B, ...]; log_q = log q(z|x) [S, B]. Keys for different layers
        are split from ``key``, never reused.
    log_prior(z) -> [S, B]
        log p(z): hierarchical families sum log p(z_l | z_{l+1}) over layers; a learned prior
        (VampPrior) evaluates its mixture. z as returned by posterior_sample.
    decode(z) -> likelihood parameters; z leaves [N, ...] (callers flatten S·B into N).
    prior_sample(key, n) -> z with leaves [n, ...] (ancestral sampling for hierarchies).
    posterior_mean(x) -> z, leaves [B, ...]: a deterministic code (means, top-down for ladders);
        used for reconstructions and interpolation. (Autoencoders give their code here too.)
    layer_kl(x, key) -> dict layer_name -> [B, n_l] per-unit KL(q || p) of that layer
        (analytic where a closed form exists given the sample; Monte-Carlo with one sample otherwise).
        Feeds kl_per_dim / active units per layer.
and these class attributes:
    is_vae = True            (AEs have False and implement only posterior_mean and decode)
    has_analytic_kl: bool    True when the family also gives
        analytic_kl(x) -> [B]                        KL(q(z|x) || p(z)) in closed form (a hierarchy
            takes a key too: the sum of per-layer closed-form KLs given sampled upper layers), and
        posterior_sample_kl(x, key, num_samples) -> (z, log_q, kl_units)
                             posterior_sample and the closed-form KL per unit (a dict like
                             layer_kl's, layer -> [B, n_l]) from ONE encoder pass: two separate
                             calls would run the encoder's backward pass twice in training (+21 %
                             FLOPs per step for the 784-500-20 VAE). The ELBO then uses the closed
                             form (lower variance).
    latent_layers: tuple[str, ...]   names of the stochastic layers, in the order of z's leaves.

``likelihood_of(model)`` gives the family's p(x|z) (its ``log_prob(x, params)`` sums over pixels);
every family has the fields ``likelihood`` and ``sigma``. ``observed_log_prob`` sums it over a
subset of the pixels (inpainting's masked ELBO and NLL), for every likelihood alike.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

import vae_jax.models.distributions as D


def likelihood_of(model):
    """The family's p(x|z), built as its decoder built it (``D.likelihood_for``); families without
    a ``num_mixtures`` field decode with the default K (their decoders do too)."""
    shape = getattr(model, "image_shape", None) or model.target_shape  # CVAEs model a target
    return D.likelihood_for(model.likelihood, shape, model.sigma,
                            getattr(model, "num_mixtures", D.DEFAULT_NUM_MIXTURES))


def observed_log_prob(likelihood, x, lik_params, observed):
    """log p of the observed pixels only, per example: ``observed`` [..., H, W, C] is 1 where a
    pixel is seen (the same value in all of a pixel's channels). The pixel is the unit because
    the mixture of logistics couples a pixel's channels (one mixture weight, channel-autoregressive
    means), so per-pixel is the finest log-prob every likelihood defines; with one channel it is
    the per-value log-prob. Leading axes of ``lik_params`` (samples) broadcast against ``x``."""
    lp = likelihood.log_prob(x, lik_params, event_ndim=1) * observed[..., 0]  # [..., H, W]
    return lp.reshape(lp.shape[:-2] + (-1,)).sum(-1)


def _apply(model, params, *args, method):
    return model.apply({"params": params}, *args, method=method)


def flatten_samples(z):
    """Leaves [S, B, ...] -> [S·B, ...] (and the (S, B) to undo it)."""
    leaves = jax.tree.leaves(z)
    s, b = leaves[0].shape[:2]
    return jax.tree.map(lambda a: a.reshape((s * b,) + a.shape[2:]), z), (s, b)


def posterior_and_kl(model, params, x, key, num_samples: int):
    """(z, log q(z|x) [S, B], closed-form per-unit KL {layer: [B, n_l]} or None where the family
    has none)."""
    if model.has_analytic_kl:
        return _apply(model, params, x, key, num_samples, method="posterior_sample_kl")
    z, log_q = _apply(model, params, x, key, num_samples, method="posterior_sample")
    return z, log_q, None


def total_kl(kl_units: dict):
    """{layer: [B, n_l]} -> [B]."""
    return sum(v.sum(-1) for v in kl_units.values())


def _log_joint(model, params, x, z):
    """(log p(x|z) [S, B], log p(z) [S, B], likelihood params [S, B, ...]) for z leaves [S, B, ...]."""
    flat, (s, b) = flatten_samples(z)
    lik_params = _apply(model, params, flat, method="decode")      # one decoder call for all S·B codes
    lik_params = lik_params.reshape((s, b) + lik_params.shape[1:])
    log_px_z = likelihood_of(model).log_prob(x, lik_params)        # x broadcasts over S
    return log_px_z, _apply(model, params, z, method="log_prior"), lik_params


def log_joint_terms(model, params, x, key, num_samples: int, inference_params=None):
    """For z_i ~ q(z|x), i = 1..S: (log p(x|z_i) [S, B], log p(z_i) [S, B], log q(z_i|x) [S, B],
    likelihood params of the samples [S, B, ...]).

    ``inference_params`` (default ``params``) are the parameters ``posterior_sample`` sees: an
    objective that trains the inference and generative roles on different targets (PIWAE) passes
    ``stop_gradient`` of one of them; the values do not change."""
    q_params = params if inference_params is None else inference_params
    z, log_q = _apply(model, q_params, x, key, num_samples, method="posterior_sample")
    log_px_z, log_pz, lik_params = _log_joint(model, params, x, z)
    return log_px_z, log_pz, log_q, lik_params


def log_weights(model, params, x, key, num_samples: int, inference_params=None):
    """log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x), [S, B]; and log p(x|z_i) [S, B]."""
    log_px_z, log_pz, log_q, _ = log_joint_terms(model, params, x, key, num_samples, inference_params)
    return log_px_z + log_pz - log_q, log_px_z


def log_weights_and_kl(model, params, x, key, num_samples: int):
    """(log w [S, B], log p(x|z) [S, B], KL [B], likelihood params [S, B, ...]) from one posterior
    pass. KL is the closed form where the family has one, else the S-sample mean of
    log q(z|x) − log p(z) (so rec + KL is then exactly −mean_i log w_i)."""
    z, log_q, kl_units = posterior_and_kl(model, params, x, key, num_samples)
    log_px_z, log_pz, lik_params = _log_joint(model, params, x, z)
    kl = jnp.mean(log_q - log_pz, axis=0) if kl_units is None else total_kl(kl_units)
    return log_px_z + log_pz - log_q, log_px_z, kl, lik_params


def log_mean_exp(a, axis=0):
    return jax.scipy.special.logsumexp(a, axis=axis) - jnp.log(a.shape[axis])


def elbo_terms(model, params, x, key):
    """Single-sample ELBO pieces per example: (rec = −log p(x|z) [B], kl [B], lik_params [B, ...]).
    The KL is the closed form where the family has one, else log q(z|x) − log p(z) on the sample."""
    _, log_px_z, kl, lik_params = log_weights_and_kl(model, params, x, key, 1)
    return -log_px_z[0], kl, lik_params[0]


def elbo_terms_per_unit(model, params, x, key):
    """``elbo_terms`` plus the per-unit KL {layer: [B, n_l]}: the closed form from the same pass
    where the family has one, else ``layer_kl`` (same key, so the same draw)."""
    z, log_q, kl_units = posterior_and_kl(model, params, x, key, 1)
    log_px_z, log_pz, lik_params = _log_joint(model, params, x, z)
    if kl_units is None:
        kl, kl_units = (log_q - log_pz)[0], layer_kl(model, params, x, key)
    else:
        kl = total_kl(kl_units)
    return -log_px_z[0], kl, lik_params[0], kl_units


def layer_kl(model, params, x, key) -> dict:
    """Per layer name: per-unit KL [B, n_l] (see the module docstring)."""
    return _apply(model, params, x, key, method="layer_kl")


def posterior_mean(model, params, x):
    return _apply(model, params, x, method="posterior_mean")


def prior_sample(model, params, key, n: int):
    return _apply(model, params, key, n, method="prior_sample")


def decode(model, params, z):
    return _apply(model, params, z, method="decode")


def reconstruct(model, params, x, key=None):
    """Mean of p(x|z) at the deterministic code z = posterior_mean(x) (E_q[z] for a one-layer VAE,
    the code for an AE)."""
    return likelihood_of(model).mean(decode(model, params, posterior_mean(model, params, x)))


def sample(model, params, key, n: int):
    """Means of p(x|z) for z ~ p(z) (ancestral for hierarchies; latent-variable families only)."""
    return likelihood_of(model).mean(decode(model, params, prior_sample(model, params, key, n)))
