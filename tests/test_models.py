"""Model shapes, linearity of the linear AE, sampling with explicit keys."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from vae_jax import models


def _mcfg(**kw):
    c = ConfigDict(dict(kind="vae", encoder_hidden=(16,), decoder_hidden=(16,), latent_dim=3,
                        activation="relu", likelihood="bernoulli", sigma=1.0, min_log_sigma=-4.6))
    c.update(kw)
    return c


@pytest.mark.parametrize("latent", [2, 64])  # under- and overcomplete for 6x6 inputs (D=36)
def test_ae_any_latent_size(latent):
    m = models.build_model(_mcfg(kind="ae", latent_dim=latent, likelihood="gaussian"), (6, 6, 1))
    p = models.init_params(m, jax.random.PRNGKey(0), (6, 6, 1))
    x = jnp.ones((5, 6, 6, 1))
    out, z = m.apply({"params": p}, x)
    assert z.shape == (5, latent) and out.shape == (5, 6, 6, 1, 1)


def test_linear_ae_is_affine():
    m = models.build_model(_mcfg(kind="linear_ae", latent_dim=4, likelihood="gaussian"), (5, 5, 1))
    p = models.init_params(m, jax.random.PRNGKey(1), (5, 5, 1))
    f = lambda x: models.reconstruct(m, p, x)
    a, b = jax.random.normal(jax.random.PRNGKey(2), (2, 1, 5, 5, 1))
    # An affine map satisfies f(a) + f(b) - f(0) == f(a + b).
    np.testing.assert_allclose(f(a) + f(b) - f(jnp.zeros_like(a)), f(a + b), atol=1e-5)
    assert len(jax.tree.leaves(p)) == 4  # two Dense layers, no hidden layers


def test_vae_sampling_uses_explicit_key():
    m = models.build_model(_mcfg(), (4, 4, 1))
    p = models.init_params(m, jax.random.PRNGKey(0), (4, 4, 1))
    x = jnp.full((3, 4, 4, 1), 0.5)
    o1 = m.apply({"params": p}, x, jax.random.PRNGKey(5))
    o2 = m.apply({"params": p}, x, jax.random.PRNGKey(5))
    o3 = m.apply({"params": p}, x, jax.random.PRNGKey(6))
    np.testing.assert_array_equal(o1[3], o2[3])
    assert not np.allclose(o1[3], o3[3])
    s = models.sample(m, p, jax.random.PRNGKey(0), 7)
    assert s.shape == (7, 4, 4, 1) and float(s.min()) >= 0 and float(s.max()) <= 1


def test_learned_sigma_is_a_parameter_with_floor():
    m = models.build_model(_mcfg(likelihood="gaussian_learned", min_log_sigma=-2.0), (4, 4, 1))
    p = models.init_params(m, jax.random.PRNGKey(0), (4, 4, 1))
    assert "log_sigma" in p["decoder"]
    p["decoder"]["log_sigma"] = jnp.array(-10.0)
    out = m.apply({"params": p}, jnp.zeros((1, 3)), method="decode")
    assert out.shape == (1, 4, 4, 1, 2)
    np.testing.assert_allclose(out[..., 1], -2.0)
