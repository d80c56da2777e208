"""Posterior, prior and likelihoods p(x|z).

All log-densities are in nats and summed over the data dimensions, one value per example.

Likelihood parameterization: the decoder emits ``params`` with shape ``x.shape + (n,)`` where
``n = likelihood_for(name, image_shape, ...).num_params`` (an instance attribute: the mixture of
logistics' count depends on its K and the channels).

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


import vae_jax.models.discretized as discretized

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
def _flatten(x, params, event_ndim):
    """x [..., *event] -> [..., D] and params [..., *event, n] -> [..., D, n].

    Log-probs are computed on these flat arrays: when x broadcasts against a leading sample axis
    (IWAE: params [S, B, 28, 28, 1, 1], x [B, 28, 28, 1]) XLA:CPU ran the image-shaped form ~40x
    slower than the flat one (1.06 s vs 0.026 s for S=500, B=100)."""
    xf = x.reshape(x.shape[: x.ndim - event_ndim] + (-1,))
    pf = params.reshape(params.shape[: params.ndim - 1 - event_ndim] + (-1, params.shape[-1]))
    return xf, pf


class Bernoulli:
    num_params = 1
    needs_8bit_data = False
    needs_binary_data = True

    def __init__(self, **_):
        pass

    def log_prob(self, x, params, event_ndim=3):
        x, params = _flatten(x, params, event_ndim)
        logits = params[..., 0]
        # -BCE = -softplus(-l)·x - softplus(l)·(1-x) (distrax's form) = x·l - softplus(l), since
        # softplus(-l) = softplus(l) - l: one softplus per pixel instead of two (the hottest
        # elementwise op of training); tests/test_distributions.py checks it against references.
        return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)

    def mean(self, params):
        return jax.nn.sigmoid(params[..., 0])


class Gaussian:
    num_params = 1
    needs_8bit_data = False
    needs_binary_data = False

    def __init__(self, sigma: float = 1.0, **_):
        self.sigma = float(sigma)

    def log_prob(self, x, params, event_ndim=3):
        x, params = _flatten(x, params, event_ndim)
        mu = params[..., 0]
        lp = -0.5 * ((x - mu) / self.sigma) ** 2 - 0.5 * LOG_2PI - math.log(self.sigma)
        return jnp.sum(lp, axis=-1)

    def mean(self, params):
        return params[..., 0]


class GaussianLearned:
    num_params = 2
    needs_8bit_data = False
    needs_binary_data = False

    def __init__(self, **_):
        pass

    def log_prob(self, x, params, event_ndim=3):
        x, params = _flatten(x, params, event_ndim)
        mu, log_sigma = params[..., 0], params[..., 1]
        lp = -0.5 * ((x - mu) * jnp.exp(-log_sigma)) ** 2 - 0.5 * LOG_2PI - log_sigma
        return jnp.sum(lp, axis=-1)

    def mean(self, params):
        return params[..., 0]


# Below |η| = _CB_TAYLOR_BELOW the closed forms of the continuous Bernoulli lose precision (0/0 at
# η = 0, cancellation of two ~1/η terms in the mean); there the Taylor series are exact to ~1e-10.
_CB_TAYLOR_BELOW = 0.1


def continuous_bernoulli_log_norm(logits):
    """log C(λ) of the continuous Bernoulli, λ = sigmoid(η), η = ``logits``.

    C(λ) = 2·artanh(1−2λ)/(1−2λ) for λ ≠ ½ and 2 at λ = ½. In terms of η, 1−2λ = −tanh(η/2) and
    artanh(1−2λ) = −η/2, so C = η / tanh(η/2): no subtraction of nearby numbers except at η → 0,
    where the series log C = log 2 + η²/12 − η⁴/1440 + η⁶/90720 is used (also keeps gradients
    finite: the unused branch sees a safe η). For large |η|, log tanh(a/2) = log1p(−e^{−a}) − log1p(e^{−a})."""
    a = jnp.abs(logits)
    small = a < _CB_TAYLOR_BELOW
    a_safe = jnp.where(small, 1.0, a)
    exact = jnp.log(a_safe) - (jnp.log1p(-jnp.exp(-a_safe)) - jnp.log1p(jnp.exp(-a_safe)))
    e2 = jnp.where(small, logits, 0.0) ** 2
    taylor = math.log(2.0) + e2 / 12.0 - e2**2 / 1440.0 + e2**3 / 90720.0
    return jnp.where(small, taylor, exact)


def continuous_bernoulli_mean(logits):
    """E[x] = λ/(2λ−1) + 1/(2·artanh(1−2λ)) = sigmoid(η)/tanh(η/2) − 1/η; ½ + η/12 − η³/720 + η⁵/30240 near 0."""
    small = jnp.abs(logits) < _CB_TAYLOR_BELOW
    eta = jnp.where(small, 1.0, logits)
    exact = jax.nn.sigmoid(eta) / jnp.tanh(eta / 2) - 1.0 / eta
    e = jnp.where(small, logits, 0.0)
    taylor = 0.5 + e / 12.0 - e**3 / 720.0 + e**5 / 30240.0
    return jnp.where(small, taylor, exact)


class ContinuousBernoulli:
    """p(x|λ) = C(λ)·λ^x·(1−λ)^(1−x) on x ∈ [0, 1] (Loaiza-Ganem & Cunningham 2019): the normalized
    version of the Bernoulli cross-entropy that is often (mis)used on grey-scale pixels."""
    num_params = 1
    needs_8bit_data = False
    needs_binary_data = False

    def __init__(self, **_):
        pass

    def log_prob(self, x, params, event_ndim=3):
        x, params = _flatten(x, params, event_ndim)
        logits = params[..., 0]
        lp = x * logits - jax.nn.softplus(logits)  # x·log λ + (1−x)·log(1−λ)
        return jnp.sum(lp + continuous_bernoulli_log_norm(logits), axis=-1)

    def mean(self, params):
        return continuous_bernoulli_mean(params[..., 0])


LIKELIHOODS = {
    "bernoulli": Bernoulli,
    "gaussian": Gaussian,
    "gaussian_learned": GaussianLearned,
    "continuous_bernoulli": ContinuousBernoulli,
    # 8-bit data (vae_jax/models/discretized.py); reported in nats and bits/dim.
    "discretized_logistic": discretized.DiscretizedLogistic,
    "discretized_mix_logistic": discretized.DiscretizedMixLogistic,
    "dequantized_gaussian": discretized.DequantizedGaussian,
}
# model.num_mixtures: mixture components K of 'discretized_mix_logistic' (PixelCNN++ uses 10).
DEFAULT_NUM_MIXTURES = 10


def get_likelihood(name: str, **kwargs):
    if name not in LIKELIHOODS:
        raise ValueError(f"model.likelihood: {name!r} is not one of {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[name](**kwargs)


def likelihood_for(name: str, image_shape, sigma: float = 1.0, num_mixtures: int = DEFAULT_NUM_MIXTURES):
    """The likelihood instance of a model on images of ``image_shape`` (H, W, C). Its
    ``num_params`` (what the decoder emits per value) can depend on the instance: the mixture of
    logistics has K·(3 + C − 1) per channel. The decoder and ``protocol.likelihood_of`` both call
    this, so the two always agree."""
    return get_likelihood(name, sigma=sigma, num_components=num_mixtures, channels=tuple(image_shape)[-1])
