"""Objectives of vae_jax/objectives/: schedules, free bits, IWAE (k=1 == ELBO), denoising and
sparse AEs, the registry, their config checks, and that each trains end-to-end on a tiny config."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from vae_jax import config as config_lib
from vae_jax import data
from vae_jax import models
from vae_jax import objectives
from vae_jax.errors import ConfigError
from vae_jax.objectives import autoencoder as ae_objectives
from vae_jax.objectives import elbo as elbo_objectives
from vae_jax.objectives import iwae as iwae_objectives
from vae_jax.training import runs

KEY = jax.random.PRNGKey(7)


def _model_params_batch(config_name="vae_mnist", **model_overrides):
    c = load_config(config_name)
    for k, v in model_overrides.items():
        c.model[k] = v
    ds = data.load(c.data)
    model = models.build_model(c.model, ds.image_shape)
    params = models.init_params(model, jax.random.PRNGKey(0), ds.image_shape)
    x = data.to_float(jnp.asarray(ds.train_images[:32]), c.data.binarization, jax.random.PRNGKey(1))
    return c, model, params, x


# ---------------------------------------------------------------------------- end to end
END_TO_END = [
    ("vae_mnist", {"objective.name": "elbo", "objective.kl_weight": 4.0}),
    ("vae_mnist", {"objective.name": "elbo_warmup", "objective.warmup_steps": 10}),
    ("vae_mnist", {"objective.name": "elbo_cyclical", "objective.anneal_steps": 12, "objective.cycles": 3}),
    ("vae_mnist", {"objective.name": "elbo_free_bits", "objective.free_bits": 0.5}),
    ("vae_mnist", {"objective.name": "iwae", "objective.iwae_k": 4}),
    ("vae_mnist", {"objective.name": "miwae", "objective.iwae_m": 2, "objective.iwae_k": 2}),
    ("vae_mnist", {"objective.name": "piwae", "objective.iwae_m": 2, "objective.iwae_k": 2}),
    ("vae_mnist", {"objective.name": "ciwae", "objective.ciwae_beta": 0.5, "objective.iwae_k": 4}),
    ("ae_mnist", {"objective.name": "ae"}),
    ("ae_mnist", {"objective.name": "denoising_ae", "objective.noise_type": "gaussian"}),
    ("ae_mnist", {"objective.name": "denoising_ae", "objective.noise_type": "masking"}),
    ("ae_mnist", {"objective.name": "sparse_ae", "objective.l1_weight": 0.01}),
]


@pytest.mark.parametrize("config_name,overrides", END_TO_END,
                         ids=[f"{o['objective.name']}-{o.get('objective.noise_type', '')}" for _, o in END_TO_END])
def test_objective_trains_end_to_end(tmp_path, config_name, overrides):
    c = load_config(config_name)
    for path, v in overrides.items():
        section, field = path.split(".")
        c[section][field] = v
    c.train.tensorboard = False
    final = runs.train_and_evaluate(c, str(tmp_path))
    rows = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.jsonl"))]
    assert len(rows) == c.train.epochs
    losses = [r["train/loss"] for r in rows]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses          # it learned something in 16 steps
    main = "neg_elbo" if c.model.kind == "vae" else "mse"
    assert np.isfinite(final[main])
    if overrides["objective.name"] == "iwae":
        assert 0.0 <= rows[-1]["train/log_ess"] <= math.log(4) + 1e-5
        assert rows[-1]["train/neg_iwae"] <= rows[-1]["train/neg_elbo"] + 1e-3


def test_registry_lists_every_objective_with_its_model_kinds():
    assert set(objectives.OBJECTIVES) == {o["objective.name"] for _, o in END_TO_END}  # each trained above
    for name in ("elbo", "elbo_warmup", "elbo_cyclical", "elbo_free_bits", "iwae", "miwae", "piwae", "ciwae"):
        kinds = objectives.OBJECTIVES[name].model_kinds
        assert "vae" in kinds and not {"ae", "linear_ae", "linear_ae_orth"} & set(kinds), (name, kinds)
    for name in ("ae", "denoising_ae", "sparse_ae"):
        kinds = objectives.OBJECTIVES[name].model_kinds
        assert "ae" in kinds and "vae" not in kinds, (name, kinds)
    assert objectives.get_objective("iwae") is iwae_objectives.iwae
    with pytest.raises(ConfigError, match="objective.name: 'elbow' is not one of"):
        objectives.get_objective("elbow")


def test_registered_fields_are_base_config_fields():
    """Every field an objective declares exists in the base config (validate reads its default)."""
    defaults = config_lib.base_config().objective
    for name, obj in objectives.OBJECTIVES.items():
        assert set(obj.fields) <= set(defaults), name


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="'elbo' registered twice"):
        objectives.register("elbo")(lambda *a: None)


# ---------------------------------------------------------------------------- IWAE
def test_iwae_k1_equals_elbo_with_the_same_key():
    c, model, params, x = _model_params_batch()
    c.objective.iwae_k = 1
    step = jnp.asarray(0)
    (l_elbo, m_elbo), g_elbo = jax.value_and_grad(elbo_objectives.elbo, argnums=1, has_aux=True)(
        model, params, x, KEY, step, c.objective)
    (l_iwae, m_iwae), g_iwae = jax.value_and_grad(iwae_objectives.iwae, argnums=1, has_aux=True)(
        model, params, x, KEY, step, c.objective)
    np.testing.assert_allclose(float(l_iwae), float(l_elbo), rtol=1e-6)
    assert float(m_iwae["iwae_gap"]) == 0.0 and float(m_iwae["log_ess"]) == 0.0
    for a, b in zip(jax.tree.leaves(g_iwae), jax.tree.leaves(g_elbo)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    # A different key gives a different single-sample value (the test could fail).
    l_other, _ = iwae_objectives.iwae(model, params, x, jax.random.PRNGKey(8), step, c.objective)
    assert abs(float(l_other) - float(l_elbo)) > 1e-3


def test_iwae_bound_tightens_with_k_and_ess_is_in_range():
    c, model, params, x = _model_params_batch()
    log_w, _, _, _ = objectives.iwae_log_weights(model, params, x, KEY, 64)
    bounds = [float(objectives.log_mean_exp(log_w[:k]).mean()) for k in (1, 4, 64)]
    assert bounds[0] <= bounds[1] <= bounds[2]
    log_ess = np.asarray(objectives.log_effective_sample_size(log_w))
    assert np.all(log_ess >= -1e-5) and np.all(log_ess <= math.log(64) + 1e-5)
    # ESS of equal weights is k; of one dominant weight is 1.
    np.testing.assert_allclose(objectives.log_effective_sample_size(jnp.zeros(8)), math.log(8), rtol=1e-6)
    np.testing.assert_allclose(objectives.log_effective_sample_size(jnp.array([0.0, -80.0, -80.0])),
                               0.0, atol=1e-6)


def test_iwae_mc_estimate_matches_loss_in_expectation():
    """The loss (ELBO with closed-form KL + Jensen gap) and the plain estimate −log mean w agree
    on average over many keys (same expectation, different estimators)."""
    c, model, params, x = _model_params_batch()
    c.objective.iwae_k = 8
    keys = jax.random.split(KEY, 64)
    f = jax.jit(jax.vmap(lambda k: iwae_objectives.iwae(model, params, x, k, 0, c.objective)))
    loss, metrics = f(keys)
    diff = np.asarray(loss - metrics["neg_iwae"])
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(len(diff)) + 1e-3


# ---------------------------------------------------------------------------- schedules, free bits
def test_warmup_factor():
    f = lambda s: float(objectives.warmup_factor(jnp.asarray(s), 100))
    assert [f(0), f(50), f(100), f(1000)] == [0.0, 0.5, 1.0, 1.0]


def test_cyclical_factor():
    # 4 cycles over 400 steps (period 100), rising over the first half of each period.
    f = lambda s: float(objectives.cyclical_factor(jnp.asarray(s), 400, 4, 0.5))
    np.testing.assert_allclose([f(0), f(25), f(50), f(99), f(100), f(125), f(399), f(400), f(10_000)],
                               [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 1.0])


def test_warmup_objective_scales_kl_by_schedule():
    c, model, params, x = _model_params_batch()
    c.objective.warmup_steps, c.objective.kl_weight = 100, 2.0
    loss, m = elbo_objectives.elbo_warmup(model, params, x, KEY, jnp.asarray(25), c.objective)
    np.testing.assert_allclose(float(m["kl_weight"]), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(loss), float(m["rec_loss"] + 0.5 * m["kl"]), rtol=1e-5)


def test_free_bits_floors_each_dimension():
    c, model, params, x = _model_params_batch()
    c.objective.kl_weight = 1.0
    # λ far above every unit's KL: the KL term is the constant n·λ (no gradient to the encoder from it).
    c.objective.free_bits = 100.0
    loss, m = elbo_objectives.elbo_free_bits(model, params, x, KEY, 0, c.objective)
    n = c.model.latent_dim
    np.testing.assert_allclose(float(loss), float(m["rec_loss"]) + n * 100.0, rtol=1e-6)
    assert float(m["dims_below_floor"]) == n
    # λ = 0 is the plain ELBO.
    c.objective.free_bits = 0.0
    loss0, _ = elbo_objectives.elbo_free_bits(model, params, x, KEY, 0, c.objective)
    loss_elbo, _ = elbo_objectives.elbo(model, params, x, KEY, 0, c.objective)
    np.testing.assert_allclose(float(loss0), float(loss_elbo), rtol=1e-6)


# ---------------------------------------------------------------------------- regularized AEs
def test_denoising_and_sparse_reduce_to_ae_without_regularization():
    c, model, params, x = _model_params_batch("ae_mnist")
    base, _ = ae_objectives.ae(model, params, x, KEY, 0, c.objective)
    for noise_type, field in (("gaussian", "noise_std"), ("masking", "mask_prob")):
        c.objective.noise_type = noise_type
        c.objective[field] = 0.0
        loss, _ = ae_objectives.denoising_ae(model, params, x, KEY, 0, c.objective)
        np.testing.assert_allclose(float(loss), float(base), rtol=1e-6)
    c.objective.l1_weight = 0.0
    np.testing.assert_allclose(float(ae_objectives.sparse_ae(model, params, x, KEY, 0, c.objective)[0]),
                               float(base), rtol=1e-6)
    c.objective.l1_weight = 0.1
    loss, m = ae_objectives.sparse_ae(model, params, x, KEY, 0, c.objective)
    np.testing.assert_allclose(float(loss - base), 0.1 * float(m["code_l1"]), atol=2e-4)  # ~730-nat terms in float32


def test_corruption_statistics():
    x = jnp.full((200, 28, 28, 1), 0.5)
    noisy = objectives.corrupt(KEY, x, "gaussian", 0.3, 0.0)
    np.testing.assert_allclose(float(jnp.std(noisy - x)), 0.3, rtol=0.02)
    masked = objectives.corrupt(KEY, x, "masking", 0.0, 0.25)
    np.testing.assert_allclose(float(jnp.mean(masked == 0)), 0.25, atol=0.01)


# ---------------------------------------------------------------------------- config checks
@pytest.mark.parametrize("name,field,value,message", [
    ("denoising_ae", "noise_type", "salt", "objective.noise_type: 'salt' is not allowed; choose one of ['gaussian', 'masking']"),
    ("denoising_ae", "mask_prob", 1.0, "objective.mask_prob"),
    ("elbo_warmup", "warmup_steps", 0, "objective.warmup_steps"),
    ("elbo_cyclical", "cycle_ratio", 0.0, "objective.cycle_ratio"),
    ("elbo_cyclical", "anneal_steps", 2, "objective.anneal_steps"),
    ("elbo_free_bits", "free_bits", -1.0, "objective.free_bits"),
    ("iwae", "iwae_k", 0, "objective.iwae_k"),
    ("sparse_ae", "l1_weight", -0.1, "objective.l1_weight"),
])
def test_config_errors_name_the_field(name, field, value, message):
    c = load_config("ae_mnist" if name.endswith("_ae") else "vae_mnist")
    c.objective.name = name
    c.objective[field] = value
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_lib.validate(c)


def test_ae_objective_on_vae_is_rejected():
    c = load_config("vae_mnist")
    c.objective.name = "sparse_ae"
    with pytest.raises(ConfigError, match="objective.name: 'sparse_ae' does not apply to model.kind='vae'"):
        config_lib.validate(c)
