"""MIWAE, PIWAE and CIWAE (Rainforth et al. 2018, objectives/tighter.py): their special cases on
the same log-weights, the objectives against protocol.log_weights for every latent family, PIWAE's
separate targets for the inference and generative parameters, finite gradients, config checks."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import special

from conftest import load_config
from vae_jax import config as config_base
from vae_jax import models, objectives
from vae_jax.errors import ConfigError
from vae_jax.models import protocol
from vae_jax.objectives import tighter

SHAPE = (4, 4, 1)
KEY = jax.random.PRNGKey(11)


def _cfg(**fields):
    return ml_collections.ConfigDict(dict({"name": "x", "kl_weight": 1.0, "iwae_k": 4, "iwae_m": 3,
                                           "ciwae_beta": 0.5, "free_bits": 0.1}, **fields))


def _family(kind):
    c = config_base.base_config()
    c.model.kind = kind
    config_base.tiny(c)
    model = models.build_model(c.model, SHAPE)
    params = jax.jit(lambda k: models.init_params(model, k, SHAPE))(jax.random.PRNGKey(0))
    x = (jax.random.uniform(jax.random.PRNGKey(1), (6,) + SHAPE) > 0.5).astype(jnp.float32)
    return model, params, x


# ---------------------------------------------------------------------------- the bounds
def test_special_cases_on_the_same_log_weights():
    log_w = jnp.asarray(np.random.default_rng(0).normal(size=(12, 5)) * 3.0, jnp.float32)
    b = jax.jit(lambda lw: {"m1": tighter.miwae_bound(lw, 1), "m12": tighter.miwae_bound(lw, 12),
                            "m3": tighter.miwae_bound(lw, 3), "c1": tighter.ciwae_bound(lw, 1.0),
                            "c0": tighter.ciwae_bound(lw, 0.0), "c3": tighter.ciwae_bound(lw, 0.3)})(log_w)
    lw = np.asarray(log_w, np.float64)
    iwae = special.logsumexp(lw, axis=0) - np.log(12)
    elbo = lw.mean(0)
    np.testing.assert_allclose(b["m1"], iwae, rtol=1e-6)          # MIWAE(1, K) = IWAE_K
    np.testing.assert_allclose(b["m12"], elbo, rtol=1e-6)         # MIWAE(M, 1) = ELBO over M samples
    np.testing.assert_allclose(b["c1"], elbo, rtol=1e-6)          # CIWAE(1) = ELBO
    np.testing.assert_allclose(b["c0"], iwae, rtol=1e-6)          # CIWAE(0) = IWAE
    # MIWAE(3, 4): groups of 4 consecutive samples, averaged.
    miwae = (special.logsumexp(lw.reshape(3, 4, 5), axis=1) - np.log(4)).mean(0)
    np.testing.assert_allclose(b["m3"], miwae, rtol=1e-6)
    assert np.all(elbo <= miwae + 1e-5) and np.all(miwae <= iwae + 1e-5)   # Jensen, twice
    np.testing.assert_allclose(b["c3"], 0.3 * elbo + 0.7 * iwae, rtol=1e-5)


@pytest.mark.parametrize("kind", ["vae", "two_layer", pytest.param("iaf", marks=pytest.mark.slow)])
def test_objectives_equal_their_bounds_on_protocol_log_weights_and_have_finite_gradients(kind):
    """For the same key: MIWAE(1, K) is the IWAE objective's bound on the very same samples,
    MIWAE(M, 1) and CIWAE(1) the sample-average ELBO, CIWAE(0) IWAE_K; PIWAE reports IWAE_{MK}.
    The new objectives and the ELBO have finite, non-zero gradients (one compiled program per
    family; compile time is what this test costs)."""
    model, params, x = _family(kind)
    runs = {"miwae_1_4": ("miwae", dict(iwae_m=1, iwae_k=4)), "iwae_4": ("iwae", dict(iwae_k=4)),
            "miwae_5_1": ("miwae", dict(iwae_m=5, iwae_k=1)), "miwae_3_4": ("miwae", dict(iwae_m=3, iwae_k=4)),
            "piwae_3_4": ("piwae", dict(iwae_m=3, iwae_k=4)), "ciwae_1": ("ciwae", dict(ciwae_beta=1.0)),
            "ciwae_0": ("ciwae", dict(ciwae_beta=0.0)), "elbo": ("elbo", {}), "free_bits": ("elbo_free_bits", {})}
    with_grad = ("miwae_3_4", "piwae_3_4", "ciwae_0", "elbo")

    @jax.jit
    def values(params):
        lw = {n: protocol.log_weights(model, params, x, KEY, n)[0] for n in (4, 5, 12)}
        out, grads = {}, {}
        for label, (name, fields) in runs.items():
            loss = lambda p: objectives.get_objective(name)(model, p, x, KEY, 3, _cfg(**fields))
            if label in with_grad:
                (out[label], metrics), grads[label] = jax.value_and_grad(loss, has_aux=True)(params)
            else:
                out[label], metrics = loss(params)
            if label == "iwae_4":  # its loss uses the closed-form KL where there is one
                out[label] = metrics["neg_iwae"]
        return lw, out, grads

    lw, v, grads = values(params)
    lw = {n: np.asarray(a, np.float64) for n, a in lw.items()}
    iwae = lambda a: np.mean(special.logsumexp(a, axis=0) - np.log(a.shape[0]))
    close = lambda a, b: np.testing.assert_allclose(float(a), b, rtol=2e-6, atol=2e-4)
    close(v["miwae_1_4"], -iwae(lw[4]))
    close(v["iwae_4"], -iwae(lw[4]))
    close(v["miwae_5_1"], -lw[5].mean())
    close(v["miwae_3_4"], -np.mean([iwae(lw[12][4 * m:4 * m + 4]) for m in range(3)]))
    close(v["piwae_3_4"], -iwae(lw[12]))
    close(v["ciwae_1"], -lw[4].mean())
    close(v["ciwae_0"], -iwae(lw[4]))
    for label, g in grads.items():
        leaves = jax.tree.leaves(g)
        assert all(bool(jnp.all(jnp.isfinite(a))) for a in leaves), label
        assert any(float(jnp.abs(a).max()) > 0 for a in leaves), label


def test_piwae_trains_the_decoder_on_iwae_and_the_encoder_on_miwae():
    model, params, x = _family("vae")
    grad = lambda fn, **f: jax.jit(jax.grad(lambda p: fn(model, p, x, KEY, 0, _cfg(**f))[0]))(params)
    g_piwae = grad(tighter.piwae, iwae_m=3, iwae_k=4)
    g_iwae = grad(tighter.miwae, iwae_m=1, iwae_k=12)     # IWAE over all M·K = 12 samples
    g_miwae = grad(tighter.miwae, iwae_m=3, iwae_k=4)
    for part, ref, other in (("decoder", g_iwae, g_miwae), ("encoder", g_miwae, g_iwae)):
        for a, b, c in zip(jax.tree.leaves(g_piwae[part]), jax.tree.leaves(ref[part]), jax.tree.leaves(other[part])):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        assert max(float(jnp.abs(a - c).max()) for a, c in
                   zip(jax.tree.leaves(g_piwae[part]), jax.tree.leaves(other[part]))) > 1e-4  # could fail


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize("fields,bad", [
    ({"objective.name": "miwae", "objective.iwae_m": 0}, "objective.iwae_m"),
    ({"objective.name": "piwae", "objective.iwae_k": 0}, "objective.iwae_k"),
    ({"objective.name": "ciwae", "objective.ciwae_beta": 1.5}, "objective.ciwae_beta"),
    ({"objective.name": "iwae", "objective.ciwae_beta": 0.2}, "objective.ciwae_beta"),   # not read by iwae
    ({"objective.name": "elbo", "objective.iwae_m": 4}, "objective.iwae_m"),             # not read by elbo
])
def test_bad_fields_are_refused(fields, bad):
    c = load_config("vae_mnist")
    for path, value in fields.items():
        section, field = path.split(".")
        c[section][field] = value
    with pytest.raises(ConfigError) as err:
        config_base.validate(c)
    assert str(err.value).startswith(bad + ":"), str(err.value)


def test_tighter_bounds_apply_to_every_latent_family_and_no_autoencoder():
    for name in ("miwae", "piwae", "ciwae"):
        kinds = objectives.OBJECTIVES[name].model_kinds
        assert {"vae", "two_layer", "iaf"} <= set(kinds) and not {"ae", "linear_ae"} & set(kinds)
    c = load_config("ae_mnist")
    c.objective.name = "miwae"
    with pytest.raises(ConfigError, match=r"^objective.name: 'miwae' does not apply to model.kind='ae'"):
        config_base.validate(c)
