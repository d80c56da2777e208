"""Posterior, prior and likelihoods p(x|z).

All log-densities are in nats and summed over the data dimensions, one value per example.

Likelihood parameterization: the decoder emits ``params`` with shape ``x.shape + (n,)`` where
``n = LIKELIHOODS[name].num_params``.

* ``bernoulli``            params[..., 0] = logits. For x ∈ {0,1}: log p = -BCE(logits, x).
* ``gaussian``             fixed σ = ``sigma`` (config ``model.sigma``, default 1), params = mean.
                           log p = -||x-μ||²/(2σ²) - (D/2)·log(2πσ²)
                           i.e. -log p = D·MSE/(2σ²) + (D/2)·log(2πσ²); with σ=1 the constant is
                           (D/2)·log 2π = 720.4 nats for D=784.
* ``gaussian_learned``     params[..., 0] = mean, params[..., 1] = log σ (the model supplies a
                           learned log σ shared over pixels, clipped below at ``min_log_sigma``).
* ``continuous_bernoulli`` params[..., 0] = logits of λ; x ∈ [0,1] (Loaiza-Ganem & Cunningham 2019).

A new likelihood is one class with ``log_prob`` and ``mean`` plus one entry in ``LIKELIHOODS``.
"""
from __future__ import annotations

import math

import distrax
import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------- Gaussian q(z|x), prior
def kl_diag_gaussian_std_normal(mean, logvar):
    """KL(N(mean, diag exp(logvar)) || N(0, I)) per dimension (closed form)."""
    return 0.5 * (jnp.exp(logvar) + mean**2 - 1.0 - logvar)


def diag_gaussian_log_prob(z, mean, logvar):
    """log N(z; mean, diag exp(logvar)), summed over the last axis."""
    return jnp.sum(-0.5 * (LOG_2PI + logvar + (z - mean) ** 2 * jnp.exp(-logvar)), axis=-1)


def std_normal_log_prob(z):
    return jnp.sum(-0.5 * (LOG_2PI + z**2), axis=-1)


def reparameterize(key, mean, logvar, num_samples: int | None = None):
    """z = μ + σ·ε with ε ~ N(0, I) drawn from ``key``; optional leading sample axis."""
    shape = mean.shape if num_samples is None else (num_samples,) + mean.shape
    eps = jax.random.normal(key, shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


def posterior(mean, logvar) -> distrax.MultivariateNormalDiag:
    """q(z|x) as a distrax distribution (for users; the hot path uses the closed forms above)."""
    return distrax.MultivariateNormalDiag(mean, jnp.exp(0.5 * logvar))


# ---------------------------------------------------------------------------- likelihoods
def _flat_sum(v, ndim_event):
    return jnp.sum(v.reshape(v.shape[: v.ndim - ndim_event] + (-1,)), axis=-1)


class Bernoulli:
    num_params = 1
    needs_binary_data = True

    def __init__(self, **_):
        pass

    def log_prob(self, x, params, event_ndim=3):
        logits = params[..., 0]
        # distrax's Bernoulli log_prob is -softplus(-l)·x - softplus(l)·(1-x), i.e. -BCE.
        return _flat_sum(distrax.Bernoulli(logits=logits).log_prob(x), event_ndim)

    def mean(self, params):
        return jax.nn.sigmoid(params[..., 0])


class Gaussian:
    num_params = 1
    needs_binary_data = False

    def __init__(self, sigma: float = 1.0, **_):
        self.sigma = float(sigma)

    def log_prob(self, x, params, event_ndim=3):
        mu = params[..., 0]
        lp = -0.5 * ((x - mu) / self.sigma) ** 2 - 0.5 * LOG_2PI - math.log(self.sigma)
        return _flat_sum(lp, event_ndim)

    def mean(self, params):
        return params[..., 0]


class GaussianLearned:
    num_params = 2
    needs_binary_data = False

    def __init__(self, **_):
        pass

    def log_prob(self, x, params, event_ndim=3):
        mu, log_sigma = params[..., 0], params[..., 1]
        lp = -0.5 * ((x - mu) * jnp.exp(-log_sigma)) ** 2 - 0.5 * LOG_2PI - log_sigma
        return _flat_sum(lp, event_ndim)

    def mean(self, params):
        return params[..., 0]


LIKELIHOODS = {
    "bernoulli": Bernoulli,
    "gaussian": Gaussian,
    "gaussian_learned": GaussianLearned,
}


def get_likelihood(name: str, **kwargs):
    if name not in LIKELIHOODS:
        raise ValueError(f"model.likelihood: {name!r} is not one of {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[name](**kwargs)
