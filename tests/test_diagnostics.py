"""Rate / distortion, per-unit KL, active units, mutual information and reconstruction quality."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.evaluation import diagnostics
from vae_jax import models
from vae_jax.models import distributions as D

SHAPE = (4, 4, 1)


def _linear_vae(active_scales):
    """A VAE whose encoder mean of unit u is scale_u · (x₀ − 0.5): Var_x(E_q[z_u]) is known."""
    n = len(active_scales)
    model = models.VAE((), (8,), n, SHAPE, likelihood="bernoulli", activation="relu")
    params = models.init_params(model, jax.random.PRNGKey(0), SHAPE)
    kernel = np.zeros((16, 2 * n), np.float32)
    kernel[0, :n] = active_scales
    bias = np.concatenate([-0.5 * np.asarray(active_scales), np.full(n, -1.0)]).astype(np.float32)
    params = dict(params)
    params["encoder"] = {"mlp": {"out": {"kernel": jnp.asarray(kernel), "bias": jnp.asarray(bias)}}}
    return model, params


def test_rate_distortion_active_units_and_kl_per_dim():
    scales = [2.0, 0.5, 0.1, 0.0]          # Var_x = scale² · Var(x₀) = scale²/4 for binary x₀ ~ Bern(½)
    model, params = _linear_vae(scales)
    rng = np.random.default_rng(0)
    images = (rng.random((333,) + SHAPE) < 0.5).astype(np.uint8) * 255   # 333: padding exercised
    out = diagnostics.evaluate_with_diagnostics(model, params, images, jax.random.PRNGKey(1), "none",
                                                batch_size=100)
    x0 = images[:, 0, 0, 0] / 255.0
    var = np.array(scales) ** 2 * x0.var()
    assert out["active_units"] == int(np.sum(var > 0.01)) == 2
    assert out["rate"] == pytest.approx(sum(out["kl_per_dim"]), rel=1e-5)
    assert out["rate"] + out["distortion"] == pytest.approx(out["neg_elbo"], rel=1e-5)
    # per-unit KL against the closed form on the exact encoder outputs
    mean = np.array(scales)[None] * (x0[:, None] - 0.5)
    kl = 0.5 * (np.exp(-1.0) + mean ** 2 - 1.0 + 1.0).mean(0)
    np.testing.assert_allclose(out["kl_per_dim"], kl, rtol=1e-4)
    assert {"mse", "psnr", "bce"} <= set(out)


def test_reconstruction_quality_numbers():
    x = jnp.asarray(np.random.default_rng(0).random((5, 4, 4, 1)), jnp.float32)
    r = jnp.clip(x + 0.1, 0.0, 1.0)
    q = diagnostics.reconstruction_quality(x, r)
    mse = np.mean((np.asarray(r) - np.asarray(x)) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(q["psnr"], 10 * np.log10(1.0 / mse), rtol=1e-4)
    p = np.clip(np.asarray(r), 1e-6, 1 - 1e-6)
    bce = -(np.asarray(x) * np.log(p) + (1 - np.asarray(x)) * np.log(1 - p)).sum((1, 2, 3))
    np.testing.assert_allclose(q["bce"], bce, rtol=1e-4)


def test_mutual_information_gaussian_channel():
    """x ~ N(0, 1), q(z|x) = N(x, v): I(x; z) = ½ log(1 + 1/v) exactly."""
    n, v = 4000, 0.25
    x = np.random.default_rng(0).normal(size=(n, 1)).astype(np.float32)
    out = diagnostics.mutual_information(x, np.full_like(x, np.log(v)), jax.random.PRNGKey(0))
    assert out["mutual_info"] == pytest.approx(0.5 * np.log(1 + 1 / v), abs=0.05)
    rate = float(np.mean(D.kl_diag_gaussian_std_normal(x, np.full_like(x, np.log(v))).sum(-1)))
    assert out["marginal_kl"] == pytest.approx(rate - out["mutual_info"], abs=1e-4)


def test_mutual_information_extremes():
    n = 2000
    same = diagnostics.mutual_information(np.zeros((n, 3), np.float32), np.zeros((n, 3), np.float32),
                                          jax.random.PRNGKey(0))
    assert abs(same["mutual_info"]) < 0.02            # collapsed posterior: no information
    means = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32) * 10
    apart = diagnostics.mutual_information(means, np.full((n, 3), -12.0, np.float32), jax.random.PRNGKey(0))
    assert apart["mutual_info"] == pytest.approx(np.log(n), abs=0.01)   # the log N ceiling
    assert apart["mutual_info_max"] == pytest.approx(np.log(n))
