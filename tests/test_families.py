"""The model-family registry and the two-layer and IAF families: dispatch and config sections, a
family added in one file (tests/family_example.py, the README's example), the paper's two-layer
architecture, IAF log-determinants against a numerical Jacobian, refused configs, and the
two-layer model trained through the CLI with per-layer diagnostics in eval.json."""
import importlib.util
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import CliRun, ROOT, cli_run, job, load_config
from vae_jax import config as config_base
from vae_jax import models, objectives
from vae_jax.errors import ConfigError
from vae_jax.models import families, protocol
from vae_jax.models.families import iaf
from vae_jax.models.families.two_layer import StackedVAE

SHAPE = (4, 4, 1)


def _init(model, shape=SHAPE, seed=0):
    return jax.jit(lambda k: models.init_params(model, k, shape))(jax.random.PRNGKey(seed))


def _binary(key, b, shape=SHAPE):
    return (jax.random.uniform(key, (b,) + shape) > 0.5).astype(jnp.float32)


# ---------------------------------------------------------------------------- registry
def test_build_model_dispatches_on_kind_and_each_family_has_its_config_section():
    c = config_base.base_config()
    for name, family in families.FAMILIES.items():
        if family.defaults:
            assert dict(c.model[name]) == family.defaults
    for kind, cls in (("vae", models.VAE), ("two_layer", StackedVAE), ("iaf", iaf.IAFVAE)):
        c = config_base.base_config()
        c.model.kind = kind
        config_base.validate(c)
        assert type(models.build_model(c.model, SHAPE)) is cls
    with pytest.raises(ConfigError, match="model.kind: 'gan' is not one of"):
        families.get_family("gan")
    with pytest.raises(ValueError, match="registered twice"):
        families.register_family("vae", build=lambda cfg, shape: None)


@pytest.fixture
def example_family():
    """tests/family_example.py loaded (it registers 'learned_prior'), unregistered afterwards."""
    path = os.path.join(ROOT, "tests", "family_example.py")
    spec = importlib.util.spec_from_file_location("family_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # flax's dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        families.FAMILIES.pop("learned_prior", None)
        sys.modules.pop(spec.name, None)


def test_a_family_added_in_one_file_is_configured_validated_and_trained(example_family):
    c = config_base.base_config()
    c.model.kind = "learned_prior"
    config_base.tiny(c)
    assert c.model.learned_prior.hidden == (32,) and c.model.latent_dim == 8
    config_base.validate(c)
    c.model.learned_prior.init_log_scale = 9.0
    with pytest.raises(ConfigError, match=r"^model.learned_prior.init_log_scale: 9.0 must be <= 5.0"):
        config_base.validate(c)
    other = config_base.base_config()
    other.model.learned_prior.hidden = (16,)          # its fields are refused for another kind
    with pytest.raises(ConfigError, match=r"^model.learned_prior.hidden: set to \(16,\) but it is read only "
                                          r"with model.kind='learned_prior'"):
        config_base.validate(other)

    c.model.learned_prior.init_log_scale = 0.0
    model = models.build_model(c.model, SHAPE)
    params = _init(model)
    x = _binary(jax.random.PRNGKey(1), 32)
    elbo, iwae = objectives.get_objective("elbo"), objectives.get_objective("iwae")
    c.objective.iwae_k = 1
    opt = optax.adam(3e-2)

    @jax.jit
    def train(params):
        def step(carry, i):
            params, state = carry
            (loss, _), g = jax.value_and_grad(elbo, argnums=1, has_aux=True)(
                model, params, x, jax.random.PRNGKey(i), i, c.objective)
            updates, state = opt.update(g, state)
            return (optax.apply_updates(params, updates), state), loss
        return jax.lax.scan(step, (params, opt.init(params)), jnp.arange(60))

    (trained, _), losses = train(params)
    assert np.all(np.isfinite(losses)) and losses[-10:].mean() < losses[:10].mean() - 0.5, losses
    assert float(jnp.abs(trained["prior_mean"]).max()) > 0  # the prior is learned
    key = jax.random.PRNGKey(3)
    l_elbo, _ = jax.jit(lambda p: elbo(model, p, x, key, 0, c.objective))(trained)
    l_iwae, _ = jax.jit(lambda p: iwae(model, p, x, key, 0, c.objective))(trained)
    assert float(l_iwae) == pytest.approx(float(l_elbo), rel=1e-6)  # its closed-form KL is used


# ---------------------------------------------------------------------------- two layers
def test_two_layer_defaults_are_burdas_architecture():
    c = config_base.base_config()
    c.model.kind = "two_layer"
    model = models.build_model(c.model, (28, 28, 1))
    shapes = jax.eval_shape(lambda: models.init_params(model, jax.random.PRNGKey(0), (28, 28, 1)))
    kernels = lambda net: [v["kernel"].shape for k, v in sorted(net.items())]  # hidden_0, hidden_1, out
    assert kernels(shapes["up_0"]) == [(784, 200), (200, 200), (200, 200)]      # x → 200, 200 → (μ, log σ²) of 100
    assert kernels(shapes["up_1"]) == [(100, 100), (100, 100), (100, 100)]      # z1 → 100, 100 → 2 × 50
    assert kernels(shapes["down_0"]) == [(50, 100), (100, 100), (100, 200)]     # z2 → 100, 100 → p(z1|z2)
    assert kernels(shapes["decoder"]["net"]["mlp"]) == [(100, 200), (200, 200), (200, 784)]
    assert model.activation == "tanh" and model.latent_layers == ("z1", "z2") and not model.has_analytic_kl


# ---------------------------------------------------------------------------- IAF
def _iaf_model(steps=2, n=5):
    model = iaf.IAFVAE((16,), (16,), n, SHAPE, steps=steps, flow_hidden=(24, 24))
    params = _init(model, seed=1)
    # Random, not initial, flow weights: the masks must hold for any parameters.
    params = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.PRNGKey(a.size), a.shape), params)
    return model, params


def test_made_masks_make_each_step_autoregressive():
    """∂z_t/∂z_{t-1} is triangular (order reversed on odd steps) with diagonal σ_t."""
    model, params = _iaf_model(steps=2)
    h = jax.random.normal(jax.random.PRNGKey(2), (5,))
    z0 = jax.random.normal(jax.random.PRNGKey(3), (5,))

    @jax.jit
    def jacobians(params):
        out = []
        for t in range(2):
            step = lambda z: model.apply({"params": params}, z, h, method=lambda m, z, h: m.flow_steps[t](z, h))
            out.append((jax.jacfwd(lambda z: step(z)[0])(z0), step(z0)[1]))
        return out

    for (jac, log_sig), tri in zip(jacobians(params), (np.tril, np.triu)):
        jac = np.asarray(jac)
        np.testing.assert_allclose(jac, tri(jac), atol=1e-7)
        np.testing.assert_allclose(np.diag(jac), np.exp(np.asarray(log_sig)), rtol=1e-5)
        assert np.abs(jac - np.diag(np.diag(jac))).max() > 1e-3   # it is not just diagonal


def test_iaf_log_q_is_base_density_minus_log_det_of_a_numerical_jacobian():
    model, params = _iaf_model(steps=3)
    x = _binary(jax.random.PRNGKey(4), 2)
    key = jax.random.PRNGKey(5)

    @jax.jit
    def parts(params):
        apply = lambda *a, method: model.apply({"params": params}, *a, method=method)
        z, log_q = apply(x, key, 1, method="posterior_sample")
        mean, logvar, h = apply(x, method=lambda m, x: m.encoder(x))
        eps = jax.random.normal(key, (1,) + mean.shape)[0]             # the draw posterior_sample made
        to_z = lambda e, b: apply(mean[b] + jnp.exp(0.5 * logvar[b]) * e, h[b], method="flow")[0]
        jac = jnp.stack([jax.jacfwd(to_z)(eps[b], b) for b in range(2)])
        z_again = jnp.stack([to_z(eps[b], b) for b in range(2)])
        kl = apply(x, key, method="layer_kl")["z"]
        return z[0], log_q[0], eps, jac, z_again, kl, apply(z, method="log_prior")[0]

    z, log_q, eps, jac, z_again, kl, log_p = (np.asarray(a, np.float64) for a in parts(params))
    np.testing.assert_allclose(z_again, z, rtol=1e-5, atol=1e-6)
    log_det = np.linalg.slogdet(jac)[1]
    base = -0.5 * np.sum(np.log(2 * np.pi) + eps ** 2, axis=-1)
    np.testing.assert_allclose(log_q, base - log_det, atol=1e-4)
    # layer_kl is log q − log p per unit on the same draw: its sum is exactly that sample's KL.
    np.testing.assert_allclose(kl.sum(-1), log_q - log_p, rtol=1e-5, atol=1e-5)


def test_iaf_steps_zero_and_other_bad_fields_are_refused():
    c = load_config("iaf_mnist")
    config_base.validate(c)
    c.model.iaf.steps = 0
    with pytest.raises(ConfigError, match=r"^model.iaf.steps: 0 flow steps is the plain"):
        config_base.validate(c)
    c = load_config("iaf_mnist")
    c.model.iaf.hidden = (0,)
    with pytest.raises(ConfigError, match=r"^model.iaf.hidden:"):
        config_base.validate(c)


@pytest.mark.parametrize("change,field", [
    ({"model.two_layer.hidden": (200,)}, "model.two_layer.hidden"),           # one width for two layers
    ({"model.latent_dim": 3}, "model.latent_dim"),                             # not read by two_layer
    ({"model.iaf.steps": 3}, "model.iaf.steps"),                               # another family's field
    ({"objective.name": "ae"}, "objective.name"),                              # an autoencoder objective
    ({"model.kind": "ae", "model.likelihood": "gaussian", "objective.name": "ciwae"}, "objective.name"),
    ({"objective.name": "miwae", "objective.iwae_m": 0}, "objective.iwae_m"),
])
def test_bad_family_configs_are_refused_naming_the_field(change, field):
    c = load_config("iwae_two_layer")
    if c.model.kind != change.get("model.kind", c.model.kind):  # an AE: drop the two-layer section
        c.model = config_base.base_config().model
    for path, value in change.items():
        section, *rest = path.split(".")
        node = c[section]
        for part in rest[:-1]:
            node = node[part]
        node[rest[-1]] = value
    with pytest.raises(ConfigError) as err:
        config_base.validate(c)
    assert str(err.value).startswith(field + ":"), str(err.value)
    if field == "objective.name":
        assert "does not apply to model.kind" in str(err.value)


# ---------------------------------------------------------------------------- end to end
@job
def tiny_two_layer_run(directory) -> CliRun:
    """``configs/iwae_two_layer.py:tiny`` trained by the CLI."""
    return cli_run(os.path.join(directory, "iwae_two_layer"), ["--config=configs/iwae_two_layer.py:tiny"])


def test_two_layer_trains_through_the_cli_with_per_layer_diagnostics(tiny_two_layer_run):
    r = tiny_two_layer_run
    assert r.returncode == 0, r.stderr[-3000:]
    ev = r.eval
    assert np.isfinite(ev["neg_elbo"]) and 0 < ev["neg_elbo"] < 784 * np.log(2)  # better than coin flips
    rows = [json.loads(line) for line in open(os.path.join(r.workdir, "metrics.jsonl"))]
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    dims = load_config("iwae_two_layer").model.two_layer.latent_dims
    for name, d in zip(("z1", "z2"), dims):
        assert len(ev[f"kl_per_dim/{name}"]) == d
        assert 0 <= ev[f"active_units/{name}"] <= d
        assert ev[f"rate/{name}"] == pytest.approx(sum(ev[f"kl_per_dim/{name}"]), abs=1e-4)
    assert min(ev["kl_per_dim/z2"]) >= -1e-6  # the top layer's KL is the closed form
    assert ev["active_units"] == ev["active_units/z1"] + ev["active_units/z2"]
    assert "kl_per_dim" not in ev  # several layers: only the per-layer lists
    # Σ of the layers' rates and the ELBO's Monte-Carlo KL estimate the same KL.
    assert abs(ev["rate/z1"] + ev["rate/z2"] - ev["kl"]) < 0.1 * ev["kl"] + 0.5, ev
