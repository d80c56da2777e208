"""Log-probs and KL against SciPy / closed forms; reparameterized gradients vs finite differences."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vae_jax.models import distributions as D

jax.config.update("jax_enable_x64", False)
RNG = np.random.default_rng(0)


def test_kl_matches_monte_carlo_and_scipy_entropy():
    mean = RNG.normal(size=(3, 5)).astype(np.float32)
    logvar = RNG.normal(size=(3, 5)).astype(np.float32) * 0.5
    kl = np.asarray(D.kl_diag_gaussian_std_normal(mean, logvar))
    # KL(q||p) = -H(q) - E_q log p, with H from SciPy and E_q log N(0,1) in closed form.
    var = np.exp(logvar)
    h = stats.norm(mean, np.sqrt(var)).entropy()
    cross = 0.5 * np.log(2 * np.pi) + 0.5 * (var + mean**2)
    np.testing.assert_allclose(kl, cross - h, rtol=1e-5, atol=1e-5)
    assert np.all(kl >= 0)
    np.testing.assert_allclose(D.kl_diag_gaussian_std_normal(jnp.zeros(4), jnp.zeros(4)), 0.0, atol=1e-7)


def test_diag_gaussian_and_std_normal_log_prob_vs_scipy():
    z, m = RNG.normal(size=(4, 6)), RNG.normal(size=(4, 6))
    lv = RNG.normal(size=(4, 6)) * 0.3
    ref = stats.norm(m, np.exp(0.5 * lv)).logpdf(z).sum(-1)
    np.testing.assert_allclose(D.diag_gaussian_log_prob(z, m, lv), ref, rtol=1e-5)
    np.testing.assert_allclose(D.std_normal_log_prob(z), stats.norm().logpdf(z).sum(-1), rtol=1e-5)


def test_bernoulli_log_prob_vs_scipy():
    logits = RNG.normal(size=(2, 4, 4, 1, 1)).astype(np.float32) * 3
    x = (RNG.random((2, 4, 4, 1)) < 0.5).astype(np.float32)
    p = 1 / (1 + np.exp(-logits[..., 0].astype(np.float64)))
    ref = stats.bernoulli(p).logpmf(x).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(D.Bernoulli().log_prob(x, logits), ref, rtol=1e-5)


def test_bernoulli_log_prob_is_stable_for_extreme_logits():
    """log p = x·l − softplus(l) (jax.nn.softplus) against float64 log-sigmoids for |l| up to 1e4:
    finite everywhere and within 1e-6 of the reference (an overflowing log(1 + eˡ) gives inf)."""
    logits = np.concatenate([np.linspace(-100, 100, 2001), [-1e4, 1e4, 0.0]]).astype(np.float32)
    lp = {}
    for x in (0.0, 1.0):
        xs = np.full((len(logits), 1), x, np.float32)
        lp[x] = np.asarray(D.Bernoulli().log_prob(xs, logits.reshape(-1, 1, 1), event_ndim=1))
    l64 = logits.astype(np.float64)
    np.testing.assert_allclose(lp[1.0], -np.logaddexp(0.0, -l64), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lp[0.0], -np.logaddexp(0.0, l64), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 0.3])
def test_gaussian_fixed_sigma_vs_scipy_and_mse_constant(sigma):
    mu = RNG.random((2, 3, 3, 1, 1)).astype(np.float32)
    x = RNG.random((2, 3, 3, 1)).astype(np.float32)
    lp = np.asarray(D.Gaussian(sigma=sigma).log_prob(x, mu))
    ref = stats.norm(mu[..., 0], sigma).logpdf(x).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(lp, ref, rtol=1e-5)
    # The documented identity: -log p = D·MSE/(2σ²) + (D/2)·log(2πσ²).
    d = 9
    mse = ((x - mu[..., 0]) ** 2).reshape(2, -1).mean(-1)
    np.testing.assert_allclose(-lp, d * mse / (2 * sigma**2) + d / 2 * np.log(2 * np.pi * sigma**2), rtol=1e-5)


def test_gaussian_learned_sigma_vs_scipy():
    mu = RNG.random((2, 3, 3, 1)).astype(np.float32)
    log_sigma = np.full_like(mu, -1.3)
    params = np.stack([mu, log_sigma], -1)
    x = RNG.random((2, 3, 3, 1)).astype(np.float32)
    ref = stats.norm(mu, np.exp(log_sigma)).logpdf(x).reshape(2, -1).sum(-1)
    np.testing.assert_allclose(D.GaussianLearned().log_prob(x, params), ref, rtol=1e-5)


def test_reparameterized_gradient_matches_finite_differences():
    """d/dμ,dlogvar of E_ε[f(μ + σε)] with a fixed ε: autodiff vs central differences."""
    key = jax.random.PRNGKey(3)
    mean = jnp.array([0.3, -0.7, 1.1])
    logvar = jnp.array([-0.2, 0.4, 0.1])

    def f(params):
        z = D.reparameterize(key, params[0], params[1], num_samples=64)
        return jnp.mean(jnp.sum(jnp.sin(z) * z**2, -1))

    params = jnp.stack([mean, logvar]).astype(jnp.float32)
    g = np.asarray(jax.grad(f)(params))
    eps = 1e-2
    fd = np.zeros_like(g)
    for i in range(2):
        for j in range(3):
            d = np.zeros(g.shape, np.float32)
            d[i, j] = eps
            fd[i, j] = (f(params + d) - f(params - d)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=2e-2, atol=2e-3)


def test_reparameterize_moments():
    z = D.reparameterize(jax.random.PRNGKey(0), jnp.array([1.0, -2.0]), jnp.log(jnp.array([4.0, 0.25])),
                         num_samples=200_000)
    np.testing.assert_allclose(z.mean(0), [1.0, -2.0], atol=0.02)
    np.testing.assert_allclose(z.std(0), [2.0, 0.5], rtol=0.01)


def test_unknown_likelihood_names_field():
    with pytest.raises(ValueError, match="model.likelihood"):
        D.get_likelihood("poisson")
