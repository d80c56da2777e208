"""IWAE estimator against the exact log-likelihood of probabilistic PCA.

A VAE with no hidden layers, identity activation and a fixed-σ Gaussian likelihood *is* pPCA:
z ~ N(0, I), x | z ~ N(Wz + b, σ²I), so log p(x) = log N(x; b, WWᵀ + σ²I) exactly. Its encoder is
set to a diagonal Gaussian around the exact posterior mean (the exact posterior has a full
covariance, so the ELBO is strictly below log p(x) and L_k has something to converge over).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from vae_jax.models import distributions as D
from vae_jax.evaluation import iwae
from vae_jax import models

D_X, N_Z, SIGMA = 6, 3, 0.5


def _ppca(seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(D_X, N_Z))              # non-orthogonal columns: correlated posterior
    b = rng.normal(size=D_X) * 0.3
    model = models.VAE((), (), N_Z, (D_X, 1, 1), likelihood="gaussian", activation="identity", sigma=SIGMA)
    params = models.init_params(model, jax.random.PRNGKey(0), (D_X, 1, 1))
    m_inv = np.linalg.inv(w.T @ w + SIGMA ** 2 * np.eye(N_Z))
    enc_kernel = w @ m_inv                          # posterior mean = M⁻¹Wᵀ(x − b)
    post_var = np.diag(SIGMA ** 2 * m_inv)
    kernel = np.concatenate([enc_kernel, np.zeros((D_X, N_Z))], 1)
    bias = np.concatenate([-b @ enc_kernel, np.log(1.5 * post_var)])   # a slightly wide proposal
    params = jax.tree.map(jnp.asarray, {
        "encoder": {"mlp": {"out": {"kernel": kernel, "bias": bias}}},
        "decoder": {"net": {"mlp": {"out": {"kernel": w.T, "bias": b}}}},
    })
    x = rng.multivariate_normal(b, w @ w.T + SIGMA ** 2 * np.eye(D_X), size=64)
    exact = multivariate_normal(b, w @ w.T + SIGMA ** 2 * np.eye(D_X)).logpdf(x)
    return model, params, jnp.asarray(x.reshape(-1, D_X, 1, 1), jnp.float32), exact


def test_params_match_model_structure():
    model, params, _, _ = _ppca()
    ref = models.init_params(model, jax.random.PRNGKey(1), (D_X, 1, 1))
    assert jax.tree.structure(ref) == jax.tree.structure(params)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(params)))


def test_iwae_converges_to_exact_ppca_log_likelihood():
    model, params, x, exact = _ppca()
    key = jax.random.PRNGKey(3)
    lk = {k: np.asarray(iwae.iwae_batch(model, params, x, key, k, min(k, 1000))[0]) for k in (1, 10, 5000)}
    _, elbo = iwae.iwae_batch(model, params, x, key, 5000, 1000)
    elbo = np.asarray(elbo)
    # The ELBO sits clearly below log p(x); L_k climbs towards it and at k=5000 is within 0.05 nats.
    assert np.mean(exact - elbo) > 0.1
    assert np.all(elbo < exact)
    assert np.mean(lk[1]) < np.mean(lk[10]) < np.mean(lk[5000])
    err = lk[5000] - exact
    assert np.mean(np.abs(err)) < 0.05, err             # nats per example, on average over examples
    assert abs(np.mean(err)) < 0.02 and np.max(np.abs(err)) < 0.15, err
    assert np.mean(exact - lk[10]) > np.mean(np.abs(err))  # large k is what closes the gap


def test_chunked_running_logsumexp_equals_one_logsumexp():
    model, params, x, _ = _ppca()
    key, k, chunk = jax.random.PRNGKey(5), 120, 40
    lk, elbo = iwae.iwae_batch(model, params, x, key, k, chunk)
    lw = jnp.concatenate([iwae.log_weights(model, params, x, jax.random.fold_in(key, c), chunk)
                          for c in range(k // chunk)])
    np.testing.assert_allclose(lk, jax.nn.logsumexp(lw, 0) - np.log(k), rtol=0, atol=1e-4)
    np.testing.assert_allclose(elbo, lw.mean(0), rtol=0, atol=1e-4)


def test_log_weights_match_direct_densities():
    model, params, x, _ = _ppca()
    mean, logvar = model.apply({"params": params}, x, method="encode")
    key = jax.random.PRNGKey(9)
    lw = iwae.log_weights(model, params, x, key, 4)
    # The same draw, by hand: z = μ + σ·ε with ε ~ N(0, I) [4, B, n] from the key.
    z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, (4,) + mean.shape)
    dec = jax.vmap(lambda zz: model.apply({"params": params}, zz, method="decode"))(z)
    lik = models.likelihood_of(model)
    direct = (jax.vmap(lambda p: lik.log_prob(x, p))(dec) + D.std_normal_log_prob(z)
              - D.diag_gaussian_log_prob(z, mean, logvar))
    np.testing.assert_allclose(lw, direct, rtol=1e-5, atol=1e-3)


def test_iwae_dataset_pads_and_reports_bits_per_dim():
    model, params, x, exact = _ppca()
    out = iwae.iwae_dataset(model, params, np.asarray(x[:50]), jax.random.PRNGKey(0), num_samples=200,
                            batch_size=16, progress=False)
    assert out["iwae_k"] == 200 and 200 % out["iwae_chunk"] == 0
    assert abs(out["nll_iwae"] + np.mean(exact[:50])) < 0.1
    assert out["nll_iwae"] < out["neg_elbo_iwae_samples"]
    assert out["nll_iwae_bits_per_dim"] == pytest.approx(out["nll_iwae"] / (D_X * np.log(2)))


def test_iwae_rejects_non_vae():
    model = models.AE((), (), 2, (4, 4, 1), activation="identity")
    with pytest.raises(ValueError, match="VAE"):
        iwae.iwae_dataset(model, {}, np.zeros((2, 4, 4, 1), np.float32), jax.random.PRNGKey(0), 4, progress=False)


def test_default_chunk_bounds_decoder_values_not_rows():
    """MNIST keeps its 10,000-row chunks; a 32×32×3 image gets as many values per chunk, not as
    many rows (memory flat in k and the same size for both)."""
    assert iwae.default_chunk(5000, 100, 784) == 100
    assert iwae.default_chunk(5000, 100, 32 * 32 * 3) == 25            # 2,552 rows → 25 samples of 100
    assert iwae.default_chunk(1000, 100, 32 * 32 * 3) == 25
    assert iwae.default_chunk(29, 100, 32 * 32 * 3) == 1                # a prime k above 25: one at a time
    assert iwae.default_chunk(5000, 20000, 784) == 1                    # batch above the budget: 1 sample
    for k, b, d in [(5000, 100, 3072), (1000, 64, 784), (64, 3, 12288)]:
        c = iwae.default_chunk(k, b, d)
        assert k % c == 0 and (c * b * d <= iwae.DECODER_VALUES or c == 1)
