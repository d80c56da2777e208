"""Discretized likelihoods for 8-bit data (vae_jax/models/discretized.py) against direct float64
computations: each pmf sums to one over the 256 values, edge bins take the tails, log-probs match
a direct CDF difference, gradients stay finite at the edges."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64
from scipy.special import expit, logsumexp

from vae_jax.models import discretized as DZ

VALUES = np.arange(256)


def _direct_log_pmf(v, mean, scale):
    """log P(v) from the logistic CDF in float64 with explicit edge bins."""
    y = 2 * v / 255 - 1
    a, b = (y + 1 / 255 - mean) / scale, (y - 1 / 255 - mean) / scale
    # Above the mean both CDF values are near 1 and their difference cancels: use the survival
    # function there, which is the same difference computed from the other side.
    by_cdf = np.where(v == 255, 1.0, expit(a)) - np.where(v == 0, 0.0, expit(b))
    by_sf = np.where(v == 0, 1.0, expit(-b)) - np.where(v == 255, 0.0, expit(-a))
    return np.log(np.where(y > mean, by_sf, by_cdf))


@pytest.mark.parametrize("mean,log_scale", [(0.0, -3.0), (0.9, -4.0), (-1.2, -2.0), (0.3, 0.5), (0.0, -6.5)])
def test_logistic_pmf_sums_to_one_and_matches_cdf(mean, log_scale):
    with enable_x64():
        x = jnp.asarray(VALUES / 255.0, jnp.float64)
        lp = np.asarray(DZ.discretized_logistic_log_pmf(DZ._to_centres(x), mean, log_scale))
    assert abs(np.exp(logsumexp(lp)) - 1.0) < 1e-5
    direct = _direct_log_pmf(VALUES, mean, np.exp(log_scale))
    ok = np.isfinite(direct)  # far-tail bins underflow in the direct form; ours stays finite there
    # the direct difference of two CDFs loses digits in the tails (cancellation); 1e-6 is still tight
    np.testing.assert_allclose(lp[ok], direct[ok], rtol=1e-6)
    assert np.all(np.isfinite(lp))


def test_edge_bins_take_the_tails():
    with enable_x64():
        lp0 = float(DZ.discretized_logistic_log_pmf(jnp.float64(-1.0), -5.0, -1.0))
        lp255 = float(DZ.discretized_logistic_log_pmf(jnp.float64(1.0), 5.0, -1.0))
    # A logistic centred far outside [-1, 1] puts almost all mass in the nearest edge bin.
    assert lp0 > -1e-3 and lp255 > -1e-3


def test_logistic_float32_log_prob_sums_over_pixels():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 256, (2, 4, 4, 3))
    params = rng.normal(size=(2, 4, 4, 3, 2)) * np.array([0.5, 0.3]) + np.array([0.0, -1.5])
    lp = np.asarray(DZ.DiscretizedLogistic().log_prob(jnp.asarray(v / 255.0, jnp.float32),
                                                      jnp.asarray(params, jnp.float32)))
    direct = _direct_log_pmf(v, params[..., 0], np.exp(params[..., 1])).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(lp, direct, rtol=1e-4)


def _mix_direct_log_pmf(v, p, k, c):
    """Per-pixel log pmf of the channel-autoregressive mixture, computed directly in float64."""
    logits = p[0, :k]
    logw = logits - logsumexp(logits)
    y = 2 * v / 255 - 1
    total = []
    for j in range(k):
        lp = logw[j]
        for ch in range(c):
            mean = p[ch, k + j] + sum(np.tanh(p[ch, 3 * k + i * k + j]) * y[i] for i in range(ch))
            scale = np.exp(max(p[ch, 2 * k + j], -7.0))
            lp = lp + _direct_log_pmf(v[ch], mean, scale)
        total.append(lp)
    return logsumexp(total)


@pytest.mark.parametrize("k,c", [(1, 1), (3, 1), (2, 2), (3, 3)])
def test_mixture_matches_direct_computation(k, c):
    lik = DZ.DiscretizedMixLogistic(num_components=k, channels=c)
    rng = np.random.default_rng(k * 10 + c)
    p = rng.normal(size=(c, lik.num_params)) * 0.5
    p[:, 2 * k:3 * k] -= 2.0
    vs = [rng.integers(0, 256, c) for _ in range(5)] + [np.zeros(c, int), np.full(c, 255)]
    with enable_x64():
        for v in vs:
            lp = float(lik.log_prob(jnp.asarray(v / 255.0).reshape(1, 1, 1, c), jnp.asarray(p).reshape(1, 1, 1, c, -1))[0])
            np.testing.assert_allclose(lp, _mix_direct_log_pmf(v, p, k, c), rtol=1e-6)


@pytest.mark.parametrize("k,c", [(2, 1), (3, 2)])
def test_mixture_pmf_sums_to_one(k, c):
    lik = DZ.DiscretizedMixLogistic(num_components=k, channels=c)
    rng = np.random.default_rng(7)
    p = rng.normal(size=(c, lik.num_params)) * 0.7
    grid = np.array(list(itertools.product(range(256), repeat=c)))        # every pixel value
    with enable_x64():
        x = jnp.asarray(grid / 255.0).reshape(len(grid), 1, 1, c)
        params = jnp.broadcast_to(jnp.asarray(p), (len(grid), 1, 1, c, lik.num_params))
        lp = np.asarray(lik.log_prob(x, params))
    assert abs(np.exp(logsumexp(lp)) - 1.0) < 1e-5


def test_gradients_finite_at_edges():
    def f(params, x):
        return DZ.DiscretizedMixLogistic(num_components=2, channels=3).log_prob(x, params).sum()

    lik = DZ.DiscretizedMixLogistic(num_components=2, channels=3)
    f = jax.jit(jax.grad(f))
    x = jnp.asarray(np.array([0, 255, 128]) / 255.0, jnp.float32).reshape(1, 1, 1, 3)
    for scale in (-7.0, 0.0, 3.0):
        params = jnp.zeros((1, 1, 1, 3, lik.num_params)).at[..., 4:6].set(scale)
        g = f(params, x)
        assert np.all(np.isfinite(np.asarray(g)))
    g = jax.grad(lambda m: DZ.discretized_logistic_log_pmf(jnp.array([-1.0, 1.0]), m, -6.0).sum())(0.0)
    assert np.isfinite(float(g))


def test_dequantized_gaussian_is_a_density_minus_log_256_per_dim():
    x = jnp.full((1, 2, 2, 1), 0.5)
    params = jnp.stack([jnp.full((1, 2, 2, 1), 0.5), jnp.full((1, 2, 2, 1), -2.0)], -1)
    lp = float(DZ.DequantizedGaussian().log_prob(x, params)[0])
    expected = 4 * (-0.5 * np.log(2 * np.pi) + 2.0 - np.log(256))
    np.testing.assert_allclose(lp, expected, rtol=1e-6)
    np.testing.assert_allclose(float(DZ.bits_per_dim(jnp.float32(-lp), 4)), -lp / (4 * np.log(2)), rtol=1e-6)
