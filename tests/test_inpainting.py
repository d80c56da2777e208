"""Inpainting: masks, observed pixels untouched, posterior fitting improves, the mode end to end."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from vae_jax.models import cvae as cvae_lib
from vae_jax import models
from vae_jax.tasks import common, inpainting

SHAPE = (28, 28, 1)


@pytest.mark.parametrize("kind,hidden", [("bottom_half", 392), ("centre_square", 196), ("quadrant", 196)])
def test_fixed_masks_hide_the_right_number_of_pixels(kind, hidden):
    m = np.asarray(inpainting.make_masks(kind, jax.random.PRNGKey(0), 8, SHAPE))
    assert m.shape == (8,) + SHAPE and set(np.unique(m)) <= {0.0, 1.0}
    np.testing.assert_array_equal((1 - m).reshape(8, -1).sum(-1), hidden)


def test_bottom_half_and_centre_square_positions():
    m = np.asarray(inpainting.make_masks("bottom_half", None, 1, SHAPE))[0, ..., 0]
    assert m[:14].all() and not m[14:].any()
    c = np.asarray(inpainting.make_masks("centre_square", None, 1, SHAPE))[0, ..., 0]
    assert not c[7:21, 7:21].any() and c[:7].all() and c[21:].all() and c[:, :7].all()


def test_random_and_quadrant_masks_vary_per_image():
    r = np.asarray(inpainting.make_masks("random", jax.random.PRNGKey(1), 64, SHAPE, 0.75))
    assert abs((1 - r).mean() - 0.75) < 0.01
    q = np.asarray(inpainting.make_masks("quadrant", jax.random.PRNGKey(1), 64, SHAPE))
    corners = {(int(not qi[0, 0, 0]), int(not qi[0, -1, 0]), int(not qi[-1, 0, 0]), int(not qi[-1, -1, 0])) for qi in q}
    assert corners == {(1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1)}


@pytest.fixture(scope="module")
def untrained():
    cfg = load_config("vae_mnist")
    model = models.build_model(cfg.model, SHAPE)
    params = models.init_params(model, jax.random.PRNGKey(0), SHAPE)
    cmodel = cvae_lib.build(cfg.model, SHAPE)
    cparams = cmodel.init({"params": jax.random.PRNGKey(1)}, jnp.zeros((1,) + SHAPE),
                          jnp.zeros((1, 28, 28, 2)), jax.random.PRNGKey(1))["params"]
    x = jax.random.uniform(jax.random.PRNGKey(2), (6,) + SHAPE)
    return model, params, cmodel, cparams, x


@pytest.mark.parametrize("kind", common.MASK_KINDS)
def test_inpainting_never_changes_observed_pixels(untrained, kind):
    model, params, cmodel, cparams, x = untrained
    lik = models.likelihood_of(model)
    m = inpainting.make_masks(kind, jax.random.PRNGKey(3), len(x), SHAPE)
    fill = jnp.full(SHAPE, 0.3)
    mean, logvar, _ = inpainting.fit_masked_posterior(model, params, x, m, fill, jax.random.PRNGKey(4), 5, 0.05, 2)
    outs = {"vae_opt": inpainting.decode_from_q(model, params, mean, logvar, jax.random.PRNGKey(5), 3),
            "vae_gibbs": inpainting.pseudo_gibbs(model, params, x, m, fill, jax.random.PRNGKey(6), 3, 3),
            "cvae": cvae_lib.sample(cmodel, cparams, inpainting.condition(x, m), jax.random.PRNGKey(7), 3)}
    obs = np.asarray(m).astype(bool)
    for name, lp in outs.items():
        completed = np.asarray(inpainting.complete(x, m, lik.mean(lp)))
        assert completed.shape == (3,) + x.shape
        for c in completed:  # bit-exact on observed pixels, new values on hidden ones
            np.testing.assert_array_equal(c[obs], np.asarray(x)[obs], err_msg=name)
            assert np.abs(c[~obs] - np.asarray(x)[~obs]).mean() > 0.05, name
    nn = inpainting.nearest_neighbour(np.asarray(x), np.asarray(m), np.asarray(x)[::-1])
    np.testing.assert_array_equal(np.asarray(inpainting.complete(x, m, nn))[obs], np.asarray(x)[obs])


def test_nearest_neighbour_uses_observed_pixels_only():
    rng = np.random.default_rng(0)
    train = rng.random((50,) + SHAPE).astype(np.float32)
    m = np.asarray(inpainting.make_masks("bottom_half", None, 5, SHAPE))
    query = train[[3, 17, 42, 0, 9]].copy()
    query[m == 0] = rng.random(int((m == 0).sum()))  # hidden half replaced by noise
    np.testing.assert_array_equal(inpainting.nearest_neighbour(query, m, train), train[[3, 17, 42, 0, 9]])


def test_masked_posterior_fit_improves_the_masked_elbo(untrained):
    model, params, _, _, x = untrained
    m = inpainting.make_masks("bottom_half", None, len(x), SHAPE)
    fill = jnp.full(SHAPE, 0.3)
    key = jax.random.PRNGKey(8)
    _, _, before = inpainting.fit_masked_posterior(model, params, x, m, fill, key, 0, 0.05, 8)
    _, _, after = inpainting.fit_masked_posterior(model, params, x, m, fill, key, 60, 0.05, 8)
    assert float(after.mean()) < float(before.mean()) - 1.0


def test_mixture_nll_matches_a_single_bernoulli():
    lik = models.likelihood_of(models.build_model(load_config("vae_mnist").model, SHAPE))
    p = 0.3
    target = (np.arange(784).reshape(1, *SHAPE) % 2).astype(np.float32)
    hidden = np.ones((1,) + SHAPE, np.float32)
    logits = jnp.full((2, 1) + SHAPE + (1,), np.log(p / (1 - p)))
    nll = float(inpainting.mixture_nll(lik, target, hidden, logits)[0])
    assert abs(nll - -(392 * np.log(p) + 392 * np.log(1 - p))) < 1e-2


@pytest.mark.slow  # CVAE fit through the CLI
def test_inpaint_mode_end_to_end(tiny_vae_run, tmp_path):
    workdir = tiny_vae_run.copy_to(tmp_path / "run")
    cfg = load_config("vae_mnist")
    cfg.tasks.inpaint.masks = "bottom_half,random"
    out = inpainting.run_inpaint(cfg, workdir)
    saved = json.load(open(os.path.join(workdir, "inpaint.json")))
    assert set(saved["masks"]) == {"bottom_half", "random"}
    for kind, methods in saved["masks"].items():
        assert set(methods) == {"mean_fill", "zero_fill", "nearest_neighbour", "vae_opt", "vae_gibbs", "cvae"}
        for name, r in methods.items():
            assert 0 < r["mse"] < 1 and np.isfinite(r["psnr"]) and 0 <= r["accuracy"] <= 1
            assert r["best_of_n_mse"] <= r["mse"] * 1.5 + 1e-6
            assert (r["nll"] is None) == (name in ("zero_fill", "nearest_neighbour"))
        assert methods["vae_opt"]["num_samples"] == cfg.tasks.inpaint.num_samples
    assert out["num_images"] == cfg.tasks.eval_subset
    html = open(os.path.join(workdir, "report.html")).read()
    assert "inpaint_bottom_half.png" in html and "inpaint_random.png" in html
