"""The residual hierarchical VAE (vae_jax/models/families/hvae.py): its densities against direct
float64 diagonal-Gaussian computations per layer, the protocol's ELBO and log-weights against
log p(x|z) + log p(z) − log q(z|x), key use per layer, gradients, config refusals and the tiny
config trained end to end."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from conftest import load_config
from vae_jax import config as config_base
from vae_jax import models
from vae_jax.errors import ConfigError
from vae_jax.models import protocol
import vae_jax.models.families.hvae as hvae

IMAGE = (8, 8, 3)
S = 256       # posterior samples per example: enough for the Monte-Carlo check of the KL
B = 3


def _random_params(model, x, seed=0):
    """Every parameter random (scaled by 1/√fan-in), the zero-initialised heads included, so that
    q ≠ p in every layer; built in NumPy from the shapes, which skips compiling ``init``."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, jax.random.key(1)))["params"]
    rng = np.random.default_rng(seed)

    def draw(s):
        fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 4
        return jnp.asarray(rng.normal(size=s.shape) / math.sqrt(fan_in), jnp.float32)
    return jax.tree.map(draw, shapes)


def _q_equals_p(params, model):
    """Zeroes the posterior heads and the (μ, log σ²) outputs of the prior heads: q = p = N(0, I)
    in every layer while the top-down features stay random."""
    out = jax.tree.map(lambda a: a, params)
    for l in range(len(model.latent_layers)):
        head = out[f"posterior_nets_{l}"]["conv_out"]
        head["kernel"], head["bias"] = jnp.zeros_like(head["kernel"]), jnp.zeros_like(head["bias"])
        prior = out[f"prior_nets_{l}"]["conv_out"]
        c2 = 2 * model.latent_channels
        prior["kernel"] = prior["kernel"].at[..., :c2].set(0.0)
        prior["bias"] = prior["bias"].at[:c2].set(0.0)
    return out


def _terms(model):
    """One jitted function for every quantity the tests read (one compile for the module)."""
    lik = protocol.likelihood_of(model)

    def f(params, x, key):
        ap = lambda *a, method: model.apply({"params": params}, *a, method=method)
        many = ap(x, key, S, method="posterior_layers")
        z, log_q, kl_units = ap(x, key, S, method="posterior_sample_kl")
        one = ap(x, key, 1, method="posterior_layers")
        z1 = tuple(ly["z"] for ly in one)
        def loss(p):
            rec, kl, _ = protocol.elbo_terms(model, p, x, key)
            return jnp.mean(rec + kl), (rec, kl)
        (_, (rec, kl)), grads = jax.value_and_grad(loss, has_aux=True)(params)
        prior_z = ap(jax.random.fold_in(key, 1), 2, method="prior_sample")
        return dict(
            many=many, log_q=log_q, kl_units=kl_units, log_pz=ap(z, method="log_prior"),
            one=one, log_px1=lik.log_prob(x, ap(tuple(a[0] for a in z1), method="decode")),
            log_pz1=ap(z1, method="log_prior")[0], rec=rec, kl=kl,
            log_w=protocol.log_weights(model, params, x, key, 1)[0][0],
            grads=grads, prior_z=prior_z, samples=ap(prior_z, method="decode"),
            mean_z=ap(x, method="posterior_mean"))
    return jax.jit(f)


@pytest.fixture(scope="module")
def run():
    """Two 8×8 resolutions, two blocks each, a latent in every block: layers z4x4_1, z4x4_2,
    z8x8_1, z8x8_2 (two pairs of equal shape, for the key test)."""
    model = hvae.HVAE(IMAGE, num_resolutions=2, blocks=2, latent_resolutions=2, latent_channels=2, width=8,
                      num_mixtures=2)
    x = jnp.round(jax.random.uniform(jax.random.key(0), (B,) + IMAGE) * 255.0) / 255.0
    params = _random_params(model, x)
    f = _terms(model)
    key = jax.random.key(7)
    out = jax.tree.map(np.asarray, f(params, x, key))
    limit = jax.tree.map(np.asarray, f(_q_equals_p(params, model), x, key))
    return model, x, out, limit


def _f64(a):
    return np.asarray(a, np.float64)


def _kl_np(ly):
    mq, lq, mp, lp = (_f64(ly[k]) for k in ("mu_q", "logvar_q", "mu_p", "logvar_p"))
    return 0.5 * (lp - lq + (np.exp(lq) + (mq - mp) ** 2) * np.exp(-lp) - 1.0)


def _sum_units(a):
    return a.reshape(a.shape[:2] + (-1,)).sum(-1)


def test_shapes(run):
    model, x, out, _ = run
    assert model.latent_layers == ("z4x4_1", "z4x4_2", "z8x8_1", "z8x8_2")
    assert model.latent_shapes == ((4, 4, 2), (4, 4, 2), (8, 8, 2), (8, 8, 2))
    for ly, shape in zip(out["many"], model.latent_shapes):
        assert ly["z"].shape == (S, B) + shape and ly["mu_p"].shape == (S, B) + shape
    assert out["log_q"].shape == out["log_pz"].shape == (S, B)
    assert {k: v.shape for k, v in out["kl_units"].items()} == {
        n: (B, int(np.prod(s))) for n, s in zip(model.latent_layers, model.latent_shapes)}
    assert [a.shape for a in out["prior_z"]] == [(2,) + s for s in model.latent_shapes]
    assert [a.shape for a in out["mean_z"]] == [(B,) + s for s in model.latent_shapes]
    # discretized_mix_logistic with K = 2 on 3 channels: K·(3 + C − 1) = 10 parameters per value.
    assert out["samples"].shape == (2,) + IMAGE + (10,)
    assert np.all(np.isfinite(out["samples"]))


def test_log_q_and_log_p_are_sums_of_per_layer_diagonal_gaussians(run):
    """log q(z|x) = Σ_l log N(z_l; μ_q, σ_q²) and log p(z) = Σ_l log N(z_l; μ_p, σ_p²) with the
    parameters of the posterior pass, in float64 by SciPy. log_prior re-runs the top-down path from
    the given z, so this also checks that path reproduces the posterior pass's priors."""
    _, _, out, _ = run
    log_q = sum(_sum_units(stats.norm.logpdf(_f64(ly["z"]), _f64(ly["mu_q"]), np.exp(0.5 * _f64(ly["logvar_q"]))))
                for ly in out["many"])
    log_p = sum(_sum_units(stats.norm.logpdf(_f64(ly["z"]), _f64(ly["mu_p"]), np.exp(0.5 * _f64(ly["logvar_p"]))))
                for ly in out["many"])
    np.testing.assert_allclose(out["log_q"], log_q, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(out["log_pz"], log_p, rtol=1e-5, atol=1e-3)
    assert np.std(log_q - log_p) > 1.0  # q ≠ p here, so the two checks are not one check


def test_per_layer_kl_is_the_closed_form_and_matches_log_q_minus_log_p_in_mean(run):
    """The KL the ELBO uses (Σ_l closed-form KL of layer l given the layers above) equals the
    NumPy closed form per unit, and is an unbiased estimate of E_q[log q − log p]: over S draws
    their difference has mean 0 within 4 standard errors."""
    model, _, out, _ = run
    per_sample = []
    for name, ly in zip(model.latent_layers, out["many"]):
        kl = _kl_np(ly)
        np.testing.assert_allclose(out["kl_units"][name], kl.mean(0).reshape(B, -1), rtol=1e-4, atol=1e-4)
        per_sample.append(_sum_units(kl))
    d = (_f64(out["log_q"]) - _f64(out["log_pz"])) - sum(per_sample)
    assert np.all(np.abs(d.mean(0)) < 4 * d.std(0) / math.sqrt(S) + 1e-3), (d.mean(0), d.std(0))
    assert all(np.mean(v) > 0.1 for v in out["kl_units"].values())  # every layer has q ≠ p


def test_elbo_and_log_weight_equal_log_px_z_plus_log_pz_minus_log_q(run):
    """One sample: the protocol's log-weight is log p(x|z) + log p(z) − log q(z|x) computed
    directly (decode + likelihood, SciPy densities); its ELBO is −rec − Σ closed-form KL; and in
    the limit q = p in every layer the two are the same number, log p(x|z)."""
    _, _, out, limit = run
    for o in (out, limit):
        one = o["one"]
        log_q = sum(_sum_units(stats.norm.logpdf(_f64(ly["z"]), _f64(ly["mu_q"]),
                                                 np.exp(0.5 * _f64(ly["logvar_q"])))) for ly in one)[0]
        np.testing.assert_allclose(o["log_w"], _f64(o["log_px1"]) + _f64(o["log_pz1"]) - log_q, rtol=1e-5, atol=1e-2)
        np.testing.assert_allclose(o["rec"], -o["log_px1"], rtol=1e-6)
        np.testing.assert_allclose(o["kl"], sum(_sum_units(_kl_np(ly)) for ly in one)[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(limit["kl"], 0.0, atol=1e-6)
    np.testing.assert_allclose(-limit["rec"] - limit["kl"], limit["log_w"], rtol=1e-6, atol=1e-3)
    assert np.all(out["kl"] > 1.0)  # away from the limit the KL is real


def test_gradients_are_finite_and_reach_every_parameter(run):
    _, _, out, _ = run
    leaves = jax.tree_util.tree_leaves_with_path(out["grads"])
    assert all(np.all(np.isfinite(g)) for _, g in leaves)
    dead = [jax.tree_util.keystr(p) for p, g in leaves if not np.any(g != 0)]
    assert not dead, dead


def test_each_layer_draws_its_own_noise(run):
    """The standard-normal noise of the layers of equal shape is not shared (no key reuse): the
    layers' ε are uncorrelated, and ε of every layer is standard normal."""
    _, _, out, _ = run
    eps = [_f64(ly["eps"]) for ly in out["many"]]
    for a, b in ((eps[0], eps[1]), (eps[2], eps[3])):
        assert not np.allclose(a, b)
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05
    for e in eps:
        assert abs(e.mean()) < 0.05 and abs(e.std() - 1.0) < 0.05
    for ly in out["many"]:  # z is built from that noise
        np.testing.assert_allclose(ly["z"], ly["mu_q"] + np.exp(0.5 * ly["logvar_q"]) * ly["eps"], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- config
@pytest.mark.parametrize("fields,field", [
    ({"model.hvae.blocks": 0}, "model.hvae.blocks"),
    ({"model.hvae.width": 0}, "model.hvae.width"),
    ({"model.hvae.latent_channels": -1}, "model.hvae.latent_channels"),
    ({"model.hvae.num_resolutions": 2, "model.hvae.latent_resolutions": 3}, "model.hvae.latent_resolutions"),
])
def test_bad_fields_are_refused_naming_the_field(fields, field):
    c = load_config("hvae_photos")
    config_base.validate(c)
    for path, value in fields.items():
        section, name = path.rsplit(".", 1)
        c.model.hvae[name] = value
    with pytest.raises(ConfigError, match=f"^{field}:"):
        config_base.validate(c)


def test_hvae_fields_refused_for_another_kind_and_unhalvable_images_refused():
    c = load_config("vae_photos")
    c.model.hvae.width = 8
    with pytest.raises(ConfigError, match="^model.hvae.width:"):
        config_base.validate(c)
    c = load_config("hvae_photos")
    c.model.hvae.num_resolutions = 7   # 32 halved 6 times is 0.5
    c.model.hvae.latent_resolutions = 2
    config_base.validate(c)
    with pytest.raises(ConfigError, match="^model.hvae.num_resolutions: 7 .* 32x32"):
        models.build_model(c.model, (32, 32, 3))
    c.model.hvae.num_resolutions = 4
    with pytest.raises(ConfigError, match="^model.hvae.num_resolutions:"):
        models.build_model(c.model, (28, 28, 1))  # MNIST: 28 → 14 → 7 → 3.5
    c.model.hvae.num_resolutions = 3
    assert isinstance(models.build_model(c.model, (32, 32, 3)), hvae.HVAE)


# ---------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_tiny_config_trains_end_to_end(tmp_path):
    from vae_jax.training import runs
    c = load_config("hvae_photos")
    c.report.enabled = False
    final = runs.train_and_evaluate(c, str(tmp_path))
    ev = json.load(open(os.path.join(tmp_path, "eval.json")))
    assert ev["bits_per_dim"] == pytest.approx(final["bits_per_dim"])
    assert ev["epoch"] == 2 and ev["step"] == 2 * (512 // 64)
    # It learned (16 steps are too few for a number worth asserting), and bits/dim is −ELBO / (D ln 2).
    rows = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.jsonl"))]
    test_bpd = [r["test/bits_per_dim"] for r in rows if "test/bits_per_dim" in r]
    assert len(test_bpd) == 2 and test_bpd[1] < test_bpd[0] and test_bpd[1] == pytest.approx(ev["bits_per_dim"])
    assert ev["bits_per_dim"] > 0
    assert ev["bits_per_dim"] == pytest.approx(ev["neg_elbo"] / (32 * 32 * 3 * math.log(2)), rel=1e-5)
    assert ev["neg_elbo"] == pytest.approx(ev["rec_loss"] + ev["kl"], rel=1e-5)
    model = models.build_model(c.model, (32, 32, 3))
    assert model.latent_layers == ("z8x8_1", "z16x16_1")
    for name, (h, w, ch) in zip(model.latent_layers, model.latent_shapes):
        kl = ev[f"kl_per_dim/{name}"]
        assert len(kl) == h * w * ch and min(kl) >= 0
        assert ev[f"rate/{name}"] == pytest.approx(sum(kl), rel=1e-4)
        assert 0 <= ev[f"active_units/{name}"] <= h * w * ch
    # The test-set KL is the sum of the per-layer rates (same draw, same closed forms).
    assert ev["kl"] == pytest.approx(sum(ev[f"rate/{n}"] for n in model.latent_layers), rel=1e-3, abs=1e-3)
    assert ev["active_units"] == sum(ev[f"active_units/{n}"] for n in model.latent_layers)
