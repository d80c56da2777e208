"""PCA by SVD, principal angles, and linear AEs (constrained and unconstrained) against PCA."""
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax import config as config_base
from vae_jax import models
from vae_jax import objectives
from vae_jax.errors import ConfigError
from vae_jax.sweeps import vmap_group
from vae_jax.tasks import pca as pca_lib
from vae_jax.training import trainer

SHAPE = (4, 4, 1)   # D = 16


def _data(n=2000, seed=0):
    """Gaussian data in R^16 with a clear spectrum: variances 9, 6, 4, then ≤ 0.3."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    scales = np.concatenate([[3.0, 2.45, 2.0], np.linspace(0.55, 0.1, 13)])
    x = (rng.normal(size=(n, 16)) * scales) @ basis.T + 0.5
    return x.astype(np.float32).reshape((n,) + SHAPE)


def test_fit_pca_matches_covariance_eigendecomposition():
    x = _data()
    p = pca_lib.fit_pca(x)
    flat = x.reshape(len(x), -1).astype(np.float64)
    cov = np.cov(flat, rowvar=False, bias=True)
    w, v = np.linalg.eigh(cov)
    np.testing.assert_allclose(p.eigenvalues, w[::-1], rtol=1e-6, atol=1e-9)
    assert pca_lib.principal_angles(p.components[:, :3], v[:, ::-1][:, :3])[-1] < 1e-6
    # Σ_{i>n} λ_i is the mean squared error of projecting onto the top-n components.
    u = p.components[:, :3]
    proj = (flat - p.mean) @ u @ u.T + p.mean
    assert np.mean(np.sum((proj - flat) ** 2, -1)) == pytest.approx(p.discarded_variance(3), rel=1e-9)


@pytest.mark.parametrize("t", [1e-5, 0.3, 1.2])
def test_principal_angles_known_planes(t):
    e = np.eye(4)
    a = e[:, :2]
    b = np.stack([e[:, 0], np.cos(t) * e[:, 1] + np.sin(t) * e[:, 2]], 1) @ np.array([[2.0, 1.0], [0.0, 3.0]])
    angles = pca_lib.principal_angles(a, b)
    np.testing.assert_allclose(angles, [0.0, t], atol=1e-10, rtol=1e-7)


def _model(kind, n):
    c = config_base.base_config()
    c.model.kind, c.model.latent_dim, c.model.likelihood = kind, n, "gaussian"
    return models.build_model(c.model, SHAPE)


def test_orth_linear_ae_is_orthonormal_and_set_to_pca_is_optimal():
    x = _data()
    p = pca_lib.fit_pca(x)
    model = _model("linear_ae_orth", 3)
    params = models.init_params(model, jax.random.PRNGKey(0), SHAPE)
    u = model.apply({"params": params}, method="basis")
    np.testing.assert_allclose(u.T @ u, np.eye(3), atol=1e-5)
    params = {"u_raw": jnp.asarray(p.components[:, :3], jnp.float32) @ jnp.asarray([[2.0, 1, 0], [0, 1, 0], [0, 0, 3]]),
              "offset": jnp.asarray(p.mean, jnp.float32)}
    out = pca_lib.compare(model, params, x, p)
    assert out["max_principal_angle"] < 1e-3
    assert abs(out["excess_error_ratio"]) < 1e-4


@pytest.mark.parametrize("kind", ["linear_ae_orth", "linear_ae"])
def test_minibatch_adam_training_recovers_principal_subspace(kind):
    """Trained (minibatch Adam on the 'ae' objective, decaying lr), not set: reaches PCA."""
    x = _data()
    p = pca_lib.fit_pca(x)
    model = _model(kind, 3)
    params = models.init_params(model, jax.random.PRNGKey(1), SHAPE)
    steps = 1500
    tx = optax.adam(optax.cosine_decay_schedule(3e-2, steps))
    opt = tx.init(params)
    cfg = config_base.base_config().objective
    loss_fn = objectives.get_objective("ae")

    @jax.jit
    def step(params, opt, idx):
        g = jax.grad(lambda q: loss_fn(model, q, jnp.asarray(x)[idx], None, 0, cfg)[0])(params)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt

    rng = np.random.default_rng(0)
    for _ in range(steps):
        params, opt = step(params, opt, rng.integers(0, len(x), 64))
    out = pca_lib.compare(model, params, x, p)
    assert out["max_principal_angle"] < 0.01, out
    assert out["excess_error_ratio"] < 0.01, out


def test_orth_model_needs_gaussian_likelihood():
    c = config_base.base_config()
    c.data.binarization = "none"
    c.model.kind, c.model.likelihood, c.objective.name = "linear_ae_orth", "bernoulli", "ae"
    c.data.binarization = "dynamic"
    with pytest.raises(ConfigError, match="linear_ae_orth"):
        config_base.validate(c)


def _uint8_data(n=2000, seed=0):
    """uint8 images [n, 4, 4, 1] centred at 0.5 (uncentred energy ≈ 4 ≫ the eigengap λ₃ − λ₄ ≈ 0.0024)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    scales = np.concatenate([[0.12, 0.09, 0.07, 0.05], np.linspace(0.03, 0.01, 12)])
    x = np.clip((rng.normal(size=(n, 16)) * scales) @ basis.T + 0.5, 0, 1)
    return np.round(x * 255).astype(np.uint8).reshape((n,) + SHAPE)


class _NoRetraction(models.OrthLinearAE):
    retract = None  # the trainer skips a model without a retraction


def _full_batch_trainer_run(images, retract: bool, steps=600):
    c = config_base.base_config()
    c.model.kind, c.model.latent_dim, c.model.likelihood = "linear_ae_orth", 3, "gaussian"
    c.objective.name, c.data.binarization = "ae", "none"
    c.optim.name, c.optim.learning_rate, c.optim.momentum = "sgd", 0.5, 0.95
    c.train.batch_size = len(images)
    config_base.validate(c)
    model = models.build_model(c.model, SHAPE)
    if not retract:
        model = _NoRetraction(**{f: getattr(model, f) for f in ("latent_dim", "image_shape", "likelihood")})
    state = trainer.init_model_state(c, model, jax.random.PRNGKey(0), SHAPE)
    step = jax.jit(trainer.make_train_step(model, c))
    batch, hparams = jnp.asarray(images), trainer.hparams_of(c)
    for _ in range(steps):
        state, _ = step(state, batch, jax.random.PRNGKey(1), hparams)
    return model, state.params


def test_trainer_full_batch_momentum_reaches_pca_and_retraction_keeps_scale():
    """The trainer's own step (sgd + heavy-ball momentum, the whole set as one batch) reaches the
    top-3 principal subspace despite a small eigengap, and retract() keeps ‖u_raw‖ at 1."""
    images = _uint8_data()
    x = images.astype(np.float32) / 255.0
    p = pca_lib.fit_pca(x)
    model, params = _full_batch_trainer_run(images, retract=True)
    np.testing.assert_allclose(np.linalg.norm(params["u_raw"], axis=0), 1.0, atol=1e-5)
    out = pca_lib.compare(model, params, x, p)
    assert out["max_principal_angle"] < 0.01, out
    assert out["excess_error_ratio"] < 0.01, out
    # Without the retraction the same run lets u_raw grow, and the slow direction lags behind.
    model, params = _full_batch_trainer_run(images, retract=False)
    assert np.linalg.norm(params["u_raw"], axis=0).min() > 1.5
    assert pca_lib.compare(model, params, x, p)["max_principal_angle"] > out["max_principal_angle"]


def test_offset_init_data_mean_in_trainer_and_vmapped_sweep():
    """model.offset_init='data_mean' starts b at the training mean in both training paths."""
    images = _uint8_data(200)
    c = config_base.base_config()
    c.model.kind, c.model.latent_dim, c.model.likelihood = "linear_ae_orth", 3, "gaussian"
    c.objective.name, c.data.binarization, c.model.offset_init = "ae", "none", "data_mean"
    config_base.validate(c)
    model = models.build_model(c.model, SHAPE)
    mean = images.reshape(len(images), -1).mean(0) / 255.0
    state = trainer.init_model_state(c, model, jax.random.PRNGKey(0), SHAPE, images)
    np.testing.assert_allclose(state.params["offset"], mean, rtol=1e-6)
    ds = SimpleNamespace(image_shape=SHAPE, train_images=images)
    _, states, _ = vmap_group._init_members([c, c], model, ds, 1)
    for s in states:
        np.testing.assert_allclose(s.params["offset"], mean, rtol=1e-6)
