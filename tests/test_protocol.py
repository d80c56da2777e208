"""The latent-variable protocol against closed forms: linear-Gaussian models whose log p(x) is
exact, with q set to the exact posterior (every bound equals log p(x), for every sample) or to a
perturbed one (the IWAE estimate climbs to log p(x) as k grows); the ELBO of a family without a
closed-form KL; the per-layer KL split; keys never shared between layers.

Models: probabilistic PCA as a one-layer VAE (W with orthogonal columns, so the exact posterior
is a diagonal Gaussian the encoder can represent), and a linear two-layer hierarchy with scalar
latents, z_2 ~ N(0, 1), z_1 | z_2 ~ N(A z_2 + a, s²), x | z_1 ~ N(w z_1 + b, σ² I), so
x ~ N(w a + b, (A² + s²) w wᵀ + σ² I) and q(z_1|x) q(z_2|z_1) = p(z_1|x) p(z_2|z_1) exactly.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special
from scipy.stats import multivariate_normal

from vae_jax import models
from vae_jax.evaluation import iwae as iwae_eval
from vae_jax.models import protocol
from vae_jax.models.families.iaf import IAFVAE
from vae_jax.models.families.two_layer import StackedVAE
from vae_jax.objectives import iwae as iwae_obj
from vae_jax.objectives import tighter

SIGMA = 0.7
W_PIX = np.array([0.8, -0.5, 1.2])
B_PIX = np.array([0.1, -0.2, 0.3])
SHAPE = (3, 1, 1)


def _mlp1(in_dim, width, kernel, bias):
    """Params of nets.MLP((width,), ...) with identity activation computing h @ kernel + bias."""
    k1 = np.zeros((in_dim, width))
    k1[:, :in_dim] = np.eye(in_dim)
    k2 = np.zeros((width, kernel.shape[1]))
    k2[:in_dim] = kernel
    return {"hidden_0": {"kernel": k1, "bias": np.zeros(width)}, "out": {"kernel": k2, "bias": np.asarray(bias)}}


def _two_layer(scale_var=1.0, shift=0.0):
    """The linear hierarchy; q is the exact posterior for scale_var=1, shift=0."""
    a_lin, a_off, s2 = 1.3, 0.4, 0.5
    model = StackedVAE((1, 1), (3, 1), SHAPE, hidden_layers=1, activation="identity", likelihood="gaussian",
                       sigma=SIGMA)
    v1 = a_lin ** 2 + s2                                          # Var p(z_1)
    var1 = 1.0 / (1.0 / v1 + W_PIX @ W_PIX / SIGMA ** 2)          # p(z_1|x)
    var2 = 1.0 / (1.0 + a_lin ** 2 / s2)                          # p(z_2|z_1)
    up0 = np.concatenate([(var1 * W_PIX / SIGMA ** 2)[:, None], np.zeros((3, 1))], 1)
    up0_b = [var1 * (a_off / v1 - W_PIX @ B_PIX / SIGMA ** 2) + shift, np.log(scale_var * var1)]
    params = {
        "up_0": _mlp1(3, 3, up0, up0_b),
        "up_1": _mlp1(1, 1, np.array([[var2 * a_lin / s2, 0.0]]), [-var2 * a_lin * a_off / s2 - shift,
                                                                    np.log(scale_var * var2)]),
        "down_0": _mlp1(1, 1, np.array([[a_lin, 0.0]]), [a_off, np.log(s2)]),
        "decoder": {"net": {"mlp": _mlp1(1, 3, W_PIX[None, :], B_PIX)}},
    }
    marginal = multivariate_normal(W_PIX * a_off + B_PIX, v1 * np.outer(W_PIX, W_PIX) + SIGMA ** 2 * np.eye(3))
    return model, jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params), marginal


def _ppca():
    """pPCA with orthogonal columns of W: its exact posterior is diagonal."""
    w = np.array([[0.9, 0.0], [0.0, 1.1], [0.9, 0.0]])
    model = models.VAE((), (), 2, SHAPE, likelihood="gaussian", activation="identity", sigma=SIGMA)
    m_inv = np.linalg.inv(w.T @ w + SIGMA ** 2 * np.eye(2))
    kernel = np.concatenate([w @ m_inv, np.zeros((3, 2))], 1)
    bias = np.concatenate([-B_PIX @ w @ m_inv, np.log(SIGMA ** 2 * np.diag(m_inv))])
    params = {"encoder": {"mlp": {"out": {"kernel": kernel, "bias": bias}}},
              "decoder": {"net": {"mlp": {"out": {"kernel": w.T, "bias": B_PIX}}}}}
    marginal = multivariate_normal(B_PIX, w @ w.T + SIGMA ** 2 * np.eye(3))
    return model, jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params), marginal


def _data(marginal, n=16, seed=0):
    x = marginal.rvs(size=n, random_state=seed)
    return jnp.asarray(x.reshape((n,) + SHAPE), jnp.float32), marginal.logpdf(x)


MODELS = {"vae": _ppca, "two_layer": _two_layer}
log_weights = jax.jit(protocol.log_weights, static_argnums=(0, 4))


def test_linear_params_match_the_families_structure():
    for make in MODELS.values():
        model, params, _ = make()
        ref = jax.eval_shape(lambda: models.init_params(model, jax.random.PRNGKey(0), SHAPE))
        assert jax.tree.structure(ref) == jax.tree.structure(params)
        assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(params)))


@pytest.mark.parametrize("family", sorted(MODELS))
def test_exact_posterior_makes_every_bound_equal_log_px(family):
    model, params, marginal = MODELS[family]()
    x, exact = _data(marginal)
    cfg = _objective_cfg(iwae_k=4, iwae_m=3, ciwae_beta=0.3)

    @jax.jit
    def bounds(params, key):
        out = {"log_w": protocol.log_weights(model, params, x, key, 32)[0]}
        out["L_k"], out["mean_log_w"] = iwae_eval.iwae_batch(model, params, x, key, 40, 20)
        for fn in (iwae_obj.iwae, tighter.miwae, tighter.piwae, tighter.ciwae):
            loss, metrics = fn(model, params, x, key, 0, cfg)
            # The iwae loss uses the closed-form KL where there is one: its bound is neg_iwae.
            out[fn.__name__] = metrics.get("neg_iwae", loss)
        return out

    out = bounds(params, jax.random.PRNGKey(4))
    # Every importance weight is p(x): log w = log p(x) for each of the 32 samples.
    np.testing.assert_allclose(out["log_w"], np.broadcast_to(exact, (32, len(exact))), rtol=0, atol=2e-4)
    np.testing.assert_allclose(out["L_k"], exact, atol=2e-4)
    np.testing.assert_allclose(out["mean_log_w"], exact, atol=2e-4)
    for name in ("iwae", "miwae", "piwae", "ciwae"):
        assert float(out[name]) == pytest.approx(-np.mean(exact), abs=2e-4), name


@pytest.mark.parametrize("family", sorted(MODELS))
def test_iwae_estimate_approaches_log_px_as_k_grows(family):
    """E[L_k] from disjoint blocks of 2,000 log-weights (k = 1, 10, 100) and the chunked evaluator
    at k = 2,000 (one estimate, so within its noise): the gap to log p(x) shrinks with k and closes."""
    model, params, marginal = MODELS[family]()
    if family == "two_layer":
        model, params, _ = _two_layer(scale_var=2.5, shift=0.4)
    else:  # a wide, shifted proposal around the exact posterior
        params["encoder"]["mlp"]["out"]["bias"] = params["encoder"]["mlp"]["out"]["bias"] + jnp.array(
            [0.4, -0.3, 0.9, 0.9])
    x, exact = _data(marginal, n=32, seed=1)
    lw = np.asarray(log_weights(model, params, x, jax.random.PRNGKey(5), 2000)[0], np.float64)
    gaps = {k: float(np.mean(exact - (special.logsumexp(lw.reshape(2000 // k, k, -1), axis=1) - np.log(k))))
            for k in (1, 10, 100)}
    lk, _ = jax.jit(iwae_eval.iwae_batch, static_argnums=(0, 4, 5))(model, params, x, jax.random.PRNGKey(6), 2000, 500)
    gaps[2000] = float(np.mean(exact - np.asarray(lk)))
    assert gaps[1] > gaps[10] > gaps[100] > -0.01, gaps
    assert gaps[1] > 0.2 and gaps[10] > gaps[2000] and abs(gaps[2000]) < 0.02, gaps


def _objective_cfg(**fields):
    import ml_collections
    return ml_collections.ConfigDict(dict({"name": "x", "kl_weight": 1.0}, **fields))


def _init(model, seed=2):
    return jax.jit(lambda k: models.init_params(model, k, SHAPE))(jax.random.PRNGKey(seed))


def _iaf(x):
    model = IAFVAE((16,), (16,), 4, SHAPE, steps=2, flow_hidden=(12,), likelihood="gaussian")
    return model, _init(model)


@pytest.mark.parametrize("family", ["two_layer", "iaf"])
def test_elbo_without_closed_form_kl_is_the_sample_log_weight(family):
    x, _ = _data(_ppca()[2], n=8)
    model, params = _iaf(x) if family == "iaf" else (_two_layer(2.0, 0.3)[:2])
    assert not model.has_analytic_kl
    key = jax.random.PRNGKey(6)
    cfg = _objective_cfg(iwae_k=1)

    @jax.jit
    def terms(params):
        rec, kl, _ = protocol.elbo_terms(model, params, x, key)
        lw, log_px_z = protocol.log_weights(model, params, x, key, 1)
        return rec, kl, lw, log_px_z, iwae_obj.iwae(model, params, x, key, 0, cfg)[0]

    rec, kl, lw, log_px_z, l_iwae = terms(params)
    np.testing.assert_allclose(rec + kl, -lw[0], rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(rec, -log_px_z[0], rtol=1e-6)
    # The IWAE objective with k = 1 is then the same loss as the ELBO (as for the VAE).
    assert float(l_iwae) == pytest.approx(float(jnp.mean(rec + kl)), rel=1e-6)


def test_two_layer_layer_kl_is_an_unbiased_split_of_the_kl():
    """Σ_l Σ_u layer_kl has the expectation of log q − log p (their difference is the top layer's
    closed form minus its Monte-Carlo value, mean zero), and it differs per draw (the lower layer
    is Monte-Carlo)."""
    model, params, marginal = _two_layer(2.0, 0.3)
    x, _ = _data(marginal, n=4)
    keys = jax.random.split(jax.random.PRNGKey(8), 4000)

    @jax.jit
    def both(k):
        split = protocol.layer_kl(model, params, x, k)
        log_px_z, log_pz, log_q, _ = protocol.log_joint_terms(model, params, x, k, 1)
        return sum(v.sum(-1) for v in split.values()), (log_q - log_pz)[0]

    split, mc = jax.vmap(both)(keys)
    diff = np.asarray(split - mc)                                    # [draws, B]
    se = diff.std(0) / np.sqrt(len(keys))
    assert np.all(np.abs(diff.mean(0)) < 4 * se + 1e-4), (diff.mean(0), se)
    assert np.all(diff.std(0) > 1e-3)


def test_keys_are_not_reused_between_layers():
    """Equal layer sizes: were ε_1 and ε_2 drawn from one key they would be identical."""
    model = StackedVAE((4, 4), (8, 8), SHAPE, hidden_layers=1)
    params = _init(model, 0)
    x = jnp.ones((64,) + SHAPE) * 0.5

    @jax.jit
    def noises(params):
        layers = model.apply({"params": params}, x, jax.random.PRNGKey(1), 16,
                             method=lambda m, *a: m._posterior_layers(*a))
        # Ancestral sampling: z_1's noise given z_2 must not be z_2's either.
        z1, z2 = model.apply({"params": params}, jax.random.PRNGKey(2), 4096, method="prior_sample")
        mean_p, logvar_p = model.apply({"params": params}, z2, method=lambda m, z: m._prior_params(0, z))
        return layers[0][3], layers[1][3], (z1 - mean_p) * jnp.exp(-0.5 * logvar_p), z2

    eps1, eps2, eps_prior, z2 = (np.asarray(a).ravel() for a in noises(params))
    assert not np.allclose(eps1, eps2)
    assert abs(np.corrcoef(eps1, eps2)[0, 1]) < 0.05
    assert abs(np.corrcoef(eps_prior, z2)[0, 1]) < 0.05
