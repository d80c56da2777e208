"""Ladder VAE and VampPrior families: their densities against direct float64 computations, the
ladder's merge against its closed form, an exactly solvable linear-Gaussian ladder, key use,
gradients, config refusals and a tiny end-to-end run of each through the CLI."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from conftest import load_config, run_cli
from vae_jax import config as config_base
from vae_jax.errors import ConfigError
from vae_jax.models import protocol
import vae_jax.models.families.ladder as ladder
import vae_jax.models.families.vamp as vamp

IMAGE = (2, 2, 1)  # four pixels: small enough for exact float64 references


def _binary(key, b, shape=IMAGE):
    return (jax.random.uniform(key, (b,) + shape) > 0.5).astype(jnp.float32)


# Everything runs under jit: op-by-op dispatch compiles each small op on its own, which made these
# tests several times slower than one compile per function.
def _init(model, x):
    return jax.jit(model.init)({"params": jax.random.key(1)}, x, jax.random.key(2))["params"]


def _apply(model, params, *args, method):
    """``model.apply(..., method=method)`` jitted; int arguments (sample counts, layer index) static."""
    static = tuple(i + 1 for i, a in enumerate(args) if isinstance(a, int))
    return jax.jit(lambda p, *a: model.apply({"params": p}, *a, method=method), static_argnums=static)(params, *args)


# ---------------------------------------------------------------------------- ladder
def test_precision_weighted_merge_matches_closed_form():
    rng = np.random.default_rng(0)
    mu_hat, mu_p = rng.normal(size=(2, 50)) * 3
    lv_hat, lv_p = rng.uniform(-6, 4, size=(2, 50))
    mu_q, lv_q = ladder.precision_weighted(*(jnp.asarray(a, jnp.float32) for a in (mu_hat, lv_hat, mu_p, lv_p)))
    var_q = 1.0 / (np.exp(-lv_hat) + np.exp(-lv_p))
    np.testing.assert_allclose(np.exp(np.asarray(lv_q, np.float64)), var_q, rtol=1e-5)
    np.testing.assert_allclose(mu_q, (mu_hat * np.exp(-lv_hat) + mu_p * np.exp(-lv_p)) * var_q, rtol=1e-5, atol=1e-5)
    # One side 40 nats of log-variance more confident: the merge is that side, nothing overflows.
    mu_q, lv_q = ladder.precision_weighted(jnp.float32(2.0), jnp.float32(-45.0), jnp.float32(-1.0), jnp.float32(-5.0))
    assert np.isfinite(mu_q) and abs(float(mu_q) - 2.0) < 1e-6 and abs(float(lv_q) + 45.0) < 1e-5


@pytest.fixture(scope="module")
def ladder_run():
    """One three-layer ladder shared by the tests below (z_1 and z_2 of equal size for the key test)."""
    model = ladder.Ladder((3, 3, 2), (16, 8, 8), IMAGE, activation="tanh")
    x = _binary(jax.random.key(0), 4)
    return model, _init(model, x), x


def test_ladder_log_prior_is_the_direct_sum_over_layers(ladder_run):
    """log p(z) against log N(z_3; 0, I) + Σ_l log N(z_l; μ_p(z_{l+1}), σ_p²), the top-down MLPs
    evaluated in NumPy float64 from the parameters."""
    model, params, x = ladder_run
    z, _ = _apply(model, params, x, jax.random.key(3), 5, method="posterior_sample")
    got = np.asarray(_apply(model, params, z, method="log_prior"), np.float64)

    def mlp(p, h):
        f = lambda d: (np.asarray(d["kernel"], np.float64), np.asarray(d["bias"], np.float64))
        (k0, b0), (k1, b1) = f(p["hidden_0"]), f(p["out"])
        return np.tanh(h @ k0 + b0) @ k1 + b1

    zs = [np.asarray(a, np.float64) for a in z]
    want = stats.norm.logpdf(zs[-1]).sum(-1)
    for l in range(len(zs) - 1):
        mu, lv = np.split(mlp(params[f"down_{l}"], zs[l + 1]), 2, axis=-1)
        want = want + stats.norm.logpdf(zs[l], mu, np.exp(0.5 * lv)).sum(-1)
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def _linear_mlp(in_dim, width, m, c):
    """Parameters of an identity-activation nets.MLP with one hidden layer computing h @ m + c."""
    out = m.shape[1]
    return {"hidden_0": {"kernel": np.eye(in_dim, width), "bias": np.zeros(width)},
            "out": {"kernel": np.vstack([m, np.zeros((width - in_dim, out))]), "bias": c}}


@pytest.fixture(scope="module")
def linear_gaussian_ladder():
    """A two-layer ladder with identity activations and a Gaussian likelihood is the linear-Gaussian
    model z_2 ~ N(0, I), z_1 | z_2 ~ N(A z_2 + a, S_1), x | z_1 ~ N(W z_1 + b, σ² I). With WᵀW diagonal
    the ladder's family contains the exact posterior: q(z_2|x) = p(z_2|x) (linear mean, diagonal
    covariance when A is diagonal) and the merge of N(μ̂_1, σ̂_1²) = p(x|z_1) as a function of z_1 with
    p(z_1|z_2) is p(z_1|z_2, x). Returns the model, its parameters set to that posterior, and a
    float64 function x -> log p(x) and the model's numbers."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(4, 2)))
    w = np.array([1.5, 0.7])
    W = q * w
    b = rng.normal(size=4) * 0.3
    A, a, s1, sigma = np.diag([0.8, -1.2]), np.array([0.2, -0.4]), np.array([0.3, 0.5]), 0.4
    C = W @ np.diag(s1) @ W.T + sigma ** 2 * np.eye(4)                       # Cov(x | z_2)
    WA = W @ A
    cov2 = np.linalg.inv(np.eye(2) + WA.T @ np.linalg.solve(C, WA))         # Cov(z_2 | x)
    assert np.allclose(cov2, np.diag(np.diag(cov2)))
    G = cov2 @ WA.T @ np.linalg.inv(C)                                       # E[z_2|x] = G (x − W a − b)
    R = np.diag(1 / w) @ q.T                                                 # μ̂_1 = R (x − b)
    lv1 = np.log(sigma ** 2 / w ** 2)
    params = {
        "up_0": _linear_mlp(4, 4, np.eye(4), np.zeros(4)),
        "up_head_0": {"kernel": np.hstack([R.T, np.zeros((4, 2))]), "bias": np.concatenate([-R @ b, lv1])},
        "up_1": _linear_mlp(4, 4, np.eye(4), np.zeros(4)),
        "up_head_1": {"kernel": np.hstack([G.T, np.zeros((4, 2))]),
                      "bias": np.concatenate([-G @ (W @ a + b), np.log(np.diag(cov2))])},
        "down_0": _linear_mlp(2, 4, np.hstack([A.T, np.zeros((2, 2))]), np.concatenate([a, np.log(s1)])),
        "decoder": {"net": {"mlp": _linear_mlp(2, 4, W.T, b)}},
    }
    model = ladder.Ladder((2, 2), (4, 4), IMAGE, likelihood="gaussian", activation="identity", sigma=sigma)
    shapes = jax.tree.map(jnp.shape, _init(model, jnp.zeros((1,) + IMAGE)))
    params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)
    assert jax.tree.map(jnp.shape, params) == shapes
    marginal = stats.multivariate_normal(W @ a + b, W @ (A @ A.T + np.diag(s1)) @ W.T + sigma ** 2 * np.eye(4))
    return model, params, marginal.logpdf, dict(A=A, a=a, s1=s1)


def test_linear_gaussian_ladder_has_exact_log_weights(linear_gaussian_ladder):
    """At the exact posterior every importance weight is p(x): log w = log p(x) for each sample."""
    model, params, log_px, _ = linear_gaussian_ladder
    x = jax.random.normal(jax.random.key(0), (3,) + IMAGE)
    log_w, _ = jax.jit(lambda p, x, k: protocol.log_weights(model, p, x, k, 64))(params, x, jax.random.key(1))
    want = log_px(np.asarray(x, np.float64).reshape(3, -1))
    np.testing.assert_allclose(np.asarray(log_w), np.broadcast_to(want, log_w.shape), atol=2e-3)


def test_linear_gaussian_ladder_prior_samples_have_the_model_moments(linear_gaussian_ladder):
    model, params, _, m = linear_gaussian_ladder
    z1, z2 = (np.asarray(a, np.float64) for a in _apply(model, params, jax.random.key(5), 40000, method="prior_sample"))
    np.testing.assert_allclose(z2.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(np.cov(z2.T), np.eye(2), atol=0.04)
    np.testing.assert_allclose(z1.mean(0), m["a"], atol=0.03)
    np.testing.assert_allclose(np.cov(z1.T), m["A"] @ m["A"].T + np.diag(m["s1"]), atol=0.05)


def test_ladder_layers_draw_from_different_keys(ladder_run):
    model, params, x = ladder_run
    layers = _apply(model, params, x, jax.random.key(7), 1000, method="posterior_layers")
    e1, e2 = (np.asarray(layer["eps"]).ravel() for layer in layers[:2])   # z_1 and z_2: both [S, B, 3]
    assert abs(np.corrcoef(e1, e2)[0, 1]) < 0.05          # the same key would give corr = 1
    assert abs(e1.std() - 1) < 0.05 and abs(e2.std() - 1) < 0.05  # the S samples are distinct draws
    z, _ = _apply(model, params, x, jax.random.key(7), 1000, method="posterior_sample")
    for zl, layer in zip(z, layers):
        np.testing.assert_allclose(zl, layer["z"])
        np.testing.assert_allclose(zl, layer["mu_q"] + np.exp(0.5 * layer["logvar_q"]) * layer["eps"], atol=1e-5)
    # Ancestral prior samples: z_1's noise must not be z_2's.
    z1, z2, z3 = _apply(model, params, jax.random.key(8), 4000, method="prior_sample")
    e = [np.asarray((zl - mu) * jnp.exp(-0.5 * lv)).ravel()
         for zl, (mu, lv) in ((z1, _apply(model, params, 0, z2, method="prior_params")),
                              (z2, _apply(model, params, 1, z3, method="prior_params")))]
    assert abs(np.corrcoef(*e)[0, 1]) < 0.05


def test_ladder_layer_kl_averages_to_the_total_kl(ladder_run):
    """Σ_layers Σ_units layer_kl (analytic given the sampled parent) and log q − log p on the sample
    are two unbiased estimates of KL(q(z|x) ‖ p(z)): their means over 4000 draws agree."""
    model, params, x = ladder_run
    keys = jax.random.split(jax.random.key(4), 4000)
    kl = jax.jit(jax.vmap(lambda k: model.apply({"params": params}, x, k, method="layer_kl")))(keys)
    assert {k: v.shape for k, v in kl.items()} == {"z1": (4000, 4, 3), "z2": (4000, 4, 3), "z3": (4000, 4, 2)}
    analytic = np.asarray(sum(v.sum(-1) for v in kl.values()))                 # [4000, B]
    z, log_q = _apply(model, params, x, jax.random.key(5), 4000, method="posterior_sample")
    mc = np.asarray(log_q - _apply(model, params, z, method="log_prior"))     # [4000, B]
    se = np.sqrt(analytic.var(0) / 4000 + mc.var(0) / 4000)
    assert np.all(np.abs(analytic.mean(0) - mc.mean(0)) < 5 * se + 1e-4)
    assert all(np.all(np.asarray(v) >= -1e-5) for v in kl.values())


def test_ladder_elbo_gradients_are_finite_and_reach_every_parameter(ladder_run):
    model, params, x = ladder_run

    def loss(p):
        rec, kl, _ = protocol.elbo_terms(model, p, x, jax.random.key(1))
        return jnp.mean(rec + kl)

    grads = jax.jit(jax.grad(loss))(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(g)), path
        assert np.any(np.asarray(g) != 0), path


def test_ladder_posterior_mean_is_the_top_down_pass_with_means(ladder_run):
    model, params, x = ladder_run
    z = _apply(model, params, x, method="posterior_mean")
    up = _apply(model, params, x, method=lambda m, x: m._bottom_up(x))
    np.testing.assert_allclose(z[2], up[2][0])
    for l in (1, 0):
        mu_p, lv_p = _apply(model, params, l, z[l + 1], method="prior_params")
        np.testing.assert_allclose(z[l], ladder.precision_weighted(*up[l], mu_p, lv_p)[0], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- VampPrior
def _mixture_reference(z, means, logvars):
    """log (1/K) Σ_k N(z; μ_k, diag σ_k²) in float64 with SciPy, z [M, n]."""
    means, logvars, z = (np.asarray(a, np.float64) for a in (means, logvars, z))
    comp = np.stack([stats.multivariate_normal(m, np.diag(np.exp(lv))).logpdf(z) for m, lv in zip(means, logvars)], -1)
    return special.logsumexp(comp, axis=-1) - np.log(len(means))


def test_mixture_log_prob_matches_scipy_including_narrow_components():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(5, 3)).astype(np.float32) * 2
    logvars = rng.uniform(-12, 1, size=(5, 3)).astype(np.float32)
    z = np.concatenate([means + 1e-3 * rng.normal(size=means.shape), rng.normal(size=(7, 3)) * 2]).astype(np.float32)
    got = vamp.mixture_log_prob(jnp.asarray(z).reshape(2, 6, 3), means, logvars)
    np.testing.assert_allclose(np.asarray(got).ravel(), _mixture_reference(z, means, logvars), rtol=1e-5, atol=1e-3)
    per_unit = vamp.unit_mixture_log_prob(jnp.asarray(z), means, logvars)
    z64, means64, sd64 = z.astype(np.float64), means.astype(np.float64), np.exp(0.5 * logvars.astype(np.float64))
    want = special.logsumexp(stats.norm.logpdf(z64[:, None, :], means64, sd64), axis=1) - np.log(5)
    np.testing.assert_allclose(per_unit, want, rtol=1e-5, atol=1e-3)


@pytest.fixture(scope="module")
def vamp_run():
    """One VampPrior VAE (K = 5, n = 3): its parameters as initialised, and a copy whose
    pseudo-inputs are spread over [-0.2, 1.2] so the components differ and some pixels sit in the clip."""
    model = vamp.VampVAE((16,), (16,), 3, 5, IMAGE, activation="tanh")
    x = _binary(jax.random.key(0), 4)
    params = _init(model, x)
    spread = {**params, "pseudo_inputs": jax.random.uniform(jax.random.key(9), params["pseudo_inputs"].shape,
                                                            minval=-0.2, maxval=1.2)}
    return model, params, spread, x


def test_vamp_log_prior_is_the_mixture_of_posteriors_at_the_pseudo_inputs(vamp_run):
    model, _, params, x = vamp_run
    u = np.clip(np.asarray(params["pseudo_inputs"]), 0, 1)
    means, logvars = _apply(model, params, jnp.asarray(u), method="encode")   # the shared encoder q(z|u_k)
    np.testing.assert_allclose(_apply(model, params, method="prior_components")[0], means)
    z, _ = _apply(model, params, x, jax.random.key(3), 6, method="posterior_sample")
    got = _apply(model, params, z, method="log_prior")
    assert got.shape == (6, 4)
    want = _mixture_reference(np.asarray(z).reshape(-1, 3), means, logvars)
    np.testing.assert_allclose(np.asarray(got).ravel(), want, rtol=1e-5, atol=1e-4)


def test_vamp_pseudo_inputs_start_in_the_unit_interval_and_get_gradients(vamp_run):
    model, params, _, x = vamp_run
    u = np.asarray(params["pseudo_inputs"])
    assert u.shape == (5,) + IMAGE and np.all((u > 0) & (u < 1))

    def loss(p):
        rec, kl, _ = protocol.elbo_terms(model, p, x, jax.random.key(1))
        return jnp.mean(rec + kl)

    g = jax.jit(jax.grad(loss))(params)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(g))
    assert np.all(np.asarray(g["pseudo_inputs"]).reshape(5, -1).any(-1))  # every pseudo-input moves


def test_vamp_prior_samples_have_the_mixture_moments(vamp_run):
    model, _, params, _ = vamp_run
    means, logvars = (np.asarray(a, np.float64) for a in _apply(model, params, method="prior_components"))
    z = np.asarray(_apply(model, params, jax.random.key(2), 40000, method="prior_sample"), np.float64)
    mean = means.mean(0)
    np.testing.assert_allclose(z.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(z.var(0), (np.exp(logvars) + means ** 2).mean(0) - mean ** 2, rtol=0.05, atol=0.01)


def test_vamp_layer_kl_is_the_kl_between_unit_marginals(vamp_run):
    """E over draws of layer_kl['z'][b, u] = KL(q(z_u|x_b) ‖ p(z_u)), p(z_u) the mixture's marginal
    on unit u; the reference integrates that 1-D KL numerically in float64."""
    model, _, params, x = vamp_run
    keys = jax.random.split(jax.random.key(4), 4000)
    kl = np.asarray(jax.jit(jax.vmap(lambda k: model.apply({"params": params}, x, k, method="layer_kl")["z"]))(keys))
    assert kl.shape == (4000, 4, 3)
    mu, lv = (np.asarray(a, np.float64) for a in _apply(model, params, x, method="encode"))
    means, logvars = (np.asarray(a, np.float64) for a in _apply(model, params, method="prior_components"))
    grid = np.linspace(-12, 12, 40001)
    for b in range(x.shape[0]):
        for u in range(3):
            log_q = stats.norm.logpdf(grid, mu[b, u], np.exp(0.5 * lv[b, u]))
            log_pk = stats.norm.logpdf(grid[:, None], means[:, u], np.exp(0.5 * logvars[:, u]))  # [grid, K]
            log_p = special.logsumexp(log_pk, -1) - np.log(5)
            want = np.trapezoid(np.exp(log_q) * (log_q - log_p), grid)
            se = kl[:, b, u].std() / np.sqrt(len(kl))
            assert abs(kl[:, b, u].mean() - want) < 5 * se + 1e-4, (b, u, kl[:, b, u].mean(), want)


# ---------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name,field,value", [
    ("ladder_mnist", "model.ladder.latent_dims", ()),
    ("ladder_mnist", "model.ladder.latent_dims", (8, 0)),
    ("ladder_mnist", "model.ladder.hidden", (32,)),
    ("vamp_mnist", "model.vamp.num_pseudo_inputs", 0),
])
def test_bad_family_fields_are_refused_naming_the_field(name, field, value):
    cfg = load_config(name, "tiny")
    config_base.validate(cfg)  # the unmodified tiny config is valid
    *parents, leaf = field.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[leaf] = value
    with pytest.raises(ConfigError) as err:
        config_base.validate(cfg)
    assert str(err.value).startswith(field + ":"), str(err.value)


def test_family_fields_are_refused_for_another_kind():
    cfg = load_config("vae_mnist", "tiny")
    cfg.model.vamp.num_pseudo_inputs = 10
    with pytest.raises(ConfigError, match="model.vamp.num_pseudo_inputs"):
        config_base.validate(cfg)


@pytest.mark.slow  # two CLI trainings
@pytest.mark.parametrize("name", ["ladder_mnist", "vamp_mnist"])
def test_tiny_config_trains_and_evaluates_end_to_end(name, tmp_path):
    """Trains through the CLI; eval.json carries the ELBO terms and the per-layer diagnostics
    (several layers: kl_per_dim/<layer>, active_units/<layer>, rate/<layer>)."""
    cfg = load_config(name, "tiny")
    wd = tmp_path / name
    r = run_cli([f"--config=configs/{name}.py:tiny", f"--workdir={wd}"])
    assert r.returncode == 0, r.stderr[-3000:]
    ev = json.load(open(wd / "eval.json"))
    assert np.isfinite(ev["neg_elbo"]) and 0 < ev["neg_elbo"] < 784 * np.log(2)  # better than coin flips
    assert abs(ev["neg_elbo"] - ev["rec_loss"] - ev["kl"]) < 1e-3 and ev["kl"] > 0
    assert (wd / "samples.png").exists()  # prior_sample -> decode
    if name == "ladder_mnist":
        dims = cfg.model.ladder.latent_dims
        rates = [ev[f"rate/z{l + 1}"] for l in range(len(dims))]
        for l, d in enumerate(dims):
            assert len(ev[f"kl_per_dim/z{l + 1}"]) == d and 0 <= ev[f"active_units/z{l + 1}"] <= d
            assert abs(sum(ev[f"kl_per_dim/z{l + 1}"]) - rates[l]) < 1e-4
        assert ev["active_units"] == sum(ev[f"active_units/z{l + 1}"] for l in range(len(dims)))
        # Σ_layers of the analytic layer KLs and the Monte-Carlo log q − log p estimate the same KL.
        assert abs(sum(rates) - ev["kl"]) < 0.1 * ev["kl"] + 0.2, (rates, ev["kl"])
    else:  # one layer: the plain keys; the unit marginals' KLs need not sum to the mixture KL
        assert len(ev["kl_per_dim"]) == cfg.model.latent_dim and 0 <= ev["active_units"] <= cfg.model.latent_dim
        assert all(np.isfinite(ev["kl_per_dim"]))
