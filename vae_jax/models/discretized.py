"""Likelihoods for 8-bit data: discretized logistic, discretized mixture of logistics, and a
dequantized Gaussian. Log-probs are in nats, summed over pixels, one value per example; divided by
D·ln 2 they are bits per dimension.

The data arrive as x = v/255 for 8-bit values v (``data.binarization='none'``), or, for the
dequantized Gaussian, as (v + u)/256 with u ~ U[0, 1) (``data.binarization='dequantize'``).

Discretized logistic (Salimans et al. 2017, PixelCNN++): pixel values are rescaled to y = 2v/255 − 1
in [−1, 1]; bin v covers [y − 1/255, y + 1/255], the first bin extends to −∞ and the last to +∞, so
the 256 probabilities sum to one exactly:

    P(v) = σ((y + 1/255 − μ)/s) − σ((y − 1/255 − μ)/s)

computed in log space as log σ(a) + log σ(−b) + log(1 − e^{b−a}) (an identity), which is exact and
stable where the bin is far in a tail — no midpoint-density approximation is needed.

Parameter layout (the decoder emits ``x.shape + (num_params,)``, one block per channel):
  * ``discretized_logistic``: [μ, log s] per channel.
  * ``discretized_mix_logistic`` with K components and C channels: per channel c the block is
    [mixture logits (K; read from channel 0 only), μ (K), log s (K), coefficients (K·(C−1))];
    channel c's mean is μ_c + Σ_{j<c} coeff_{c,j}·y_j (the channel-autoregressive form of PixelCNN++
    and VDVAE, with coefficients through tanh). The mixture weights are shared by the channels of
    a pixel, so the pmf of a pixel is Σ_k π_k Π_c P_k(v_c | v_{<c}).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_HALF_BIN = 1.0 / 255.0
LOG_256 = math.log(256.0)


def _to_centres(x):
    """x = v/255 in [0, 1] -> bin centres y = 2v/255 − 1, snapped to the 8-bit grid."""
    return 2.0 * jnp.round(x * 255.0) / 255.0 - 1.0


def _log_sigmoid(a):
    return -jax.nn.softplus(-a)


def discretized_logistic_log_pmf(y, mean, log_scale):
    """log P(bin centred at y) for a logistic(mean, e^log_scale) discretized to the 256 bins of
    [−1, 1], elementwise. Edge bins take the whole tail."""
    inv_s = jnp.exp(-log_scale)
    a = (y + _HALF_BIN - mean) * inv_s      # upper edge
    b = (y - _HALF_BIN - mean) * inv_s      # lower edge
    log_cdf_upper = _log_sigmoid(a)          # log σ(a): the first bin, (−∞, upper]
    log_sf_lower = _log_sigmoid(-b)          # log(1 − σ(b)): the last bin, [lower, ∞)
    # Interior bins: log(σ(a) − σ(b)) = log σ(a) + log σ(−b) + log(1 − e^{b − a}).
    interior = log_cdf_upper + log_sf_lower + jnp.log(-jnp.expm1(b - a))
    return jnp.where(y < -0.999, log_cdf_upper, jnp.where(y > 0.999, log_sf_lower, interior))


def _flat_pixels(x, params, event_ndim):
    """x [..., H, W, C] -> [..., P, C]; params [..., H, W, C, n] -> [..., P, C, n]."""
    lead = x.shape[: x.ndim - event_ndim]
    c = x.shape[-1]
    xf = x.reshape(lead + (-1, c))
    pf = params.reshape(params.shape[: params.ndim - 1 - event_ndim] + (-1, c, params.shape[-1]))
    return xf, pf


class DiscretizedLogistic:
    num_params = 2
    needs_binary_data = False
    needs_8bit_data = True

    def __init__(self, **_):
        pass

    def log_prob(self, x, params, event_ndim=3):
        y = _to_centres(x)
        lp = discretized_logistic_log_pmf(y, params[..., 0], params[..., 1])
        return jnp.sum(lp.reshape(lp.shape[: lp.ndim - event_ndim] + (-1,)), axis=-1)

    def mean(self, params):
        return jnp.clip((params[..., 0] + 1.0) / 2.0, 0.0, 1.0)


class DiscretizedMixLogistic:
    needs_binary_data = False
    needs_8bit_data = True

    def __init__(self, num_components: int = 10, channels: int = 3, **_):
        if num_components < 1:
            raise ValueError(f"model.num_mixtures: {num_components!r} must be >= 1")
        self.k, self.c = int(num_components), int(channels)
        self.num_params = self.k * (3 + self.c - 1)

    def _split(self, p):
        """p [..., C, n] -> logits [..., K], means [..., C, K], log_scales [..., C, K], coeffs [..., C, C−1, K]."""
        k, c = self.k, self.c
        logits = p[..., 0, :k]
        means = p[..., k:2 * k]
        log_scales = jnp.maximum(p[..., 2 * k:3 * k], -7.0)
        coeffs = jnp.tanh(p[..., 3 * k:].reshape(p.shape[:-1] + (c - 1, k)))
        return logits, means, log_scales, coeffs

    def _channel_means(self, y, means, coeffs):
        """μ_c + Σ_{j<c} coeff_{c,j}·y_j for every channel c; y [..., C]."""
        out = [means[..., 0, :]]
        for ch in range(1, self.c):
            m = means[..., ch, :]
            for j in range(ch):
                m = m + coeffs[..., ch, j, :] * y[..., j, None]
            out.append(m)
        return jnp.stack(out, axis=-2)

    def log_prob(self, x, params, event_ndim=3):
        xf, pf = _flat_pixels(x, params, event_ndim)
        y = _to_centres(xf)                                           # [..., P, C]
        logits, means, log_scales, coeffs = self._split(pf)
        mu = self._channel_means(y, means, coeffs)                    # [..., P, C, K]
        lp = discretized_logistic_log_pmf(y[..., None], mu, log_scales).sum(-2)  # [..., P, K]
        per_pixel = jax.scipy.special.logsumexp(lp + jax.nn.log_softmax(logits, -1), axis=-1)
        return jnp.sum(per_pixel, axis=-1)

    def mean(self, params):
        """E[x] in [0, 1] per channel, channel by channel (each conditioned on the previous
        channels' means). ``params`` is [..., C, n] (image-shaped), or [..., D, n] with the
        channels fastest (``distributions._flatten``'s layout: the training metrics use it);
        the result has the same leading shape."""
        if params.shape[-2] != self.c:
            flat = params.reshape(params.shape[:-2] + (-1, self.c, params.shape[-1]))
            return self.mean(flat).reshape(params.shape[:-1])
        logits, means, _, coeffs = self._split(params)
        w = jax.nn.softmax(logits, -1)[..., None, :]
        ys = []
        for ch in range(self.c):
            m = means[..., ch, :]
            for j in range(ch):
                m = m + coeffs[..., ch, j, :] * ys[j][..., None]
            ys.append(jnp.clip(jnp.sum(w[..., 0, :] * m, -1), -1.0, 1.0))
        return (jnp.stack(ys, -1) + 1.0) / 2.0


class DequantizedGaussian:
    """Gaussian with a learned per-pixel log σ on dequantized pixels (v + u)/256, u ~ U[0, 1):
    E_u[log p(x̃)] − D·log 256 is a lower bound on the log-pmf of the 8-bit data (Theis et al.
    2016), so it is reported on the same nats / bits-per-dim scale as the discretized likelihoods."""
    num_params = 2
    needs_binary_data = False
    needs_8bit_data = True

    def __init__(self, **_):
        pass

    def log_prob(self, x, params, event_ndim=3):
        mu, log_sigma = params[..., 0], params[..., 1]
        lp = -0.5 * ((x - mu) * jnp.exp(-log_sigma)) ** 2 - 0.5 * math.log(2 * math.pi) - log_sigma - LOG_256
        return jnp.sum(lp.reshape(lp.shape[: lp.ndim - event_ndim] + (-1,)), axis=-1)

    def mean(self, params):
        return params[..., 0]


def bits_per_dim(nll_nats, num_dims: int):
    """Negative log-likelihood in nats per example -> bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))
