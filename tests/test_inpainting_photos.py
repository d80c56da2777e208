"""Inpainting on colour photos: masks hide whole pixels, observed pixels stay, the masked log-prob
of the 8-bit mixture likelihood, SSIM and PSNR against independent references, the CLI end to end."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, run_cli
from vae_jax import models
from vae_jax.errors import ConfigError
from vae_jax.models import cvae as cvae_lib
from vae_jax.models import protocol
from vae_jax.tasks import image_metrics as im
from vae_jax.tasks import inpainting, settings

SHAPE = (8, 8, 3)
KINDS = ("centre_square", "bottom_half", "random")


@pytest.mark.parametrize("kind", KINDS)
def test_colour_masks_hide_all_channels_of_a_pixel(kind):
    m = np.asarray(inpainting.make_masks(kind, jax.random.PRNGKey(0), 5, SHAPE, 0.5))
    assert m.shape == (5,) + SHAPE
    np.testing.assert_array_equal(m, np.repeat(m[..., :1], 3, -1))
    assert 0 < (1 - m).mean() < 1


@pytest.fixture(scope="module")
def photo_models():
    """The photo config's untrained VAE (discretized mixture of logistics) and inpainting CVAE, on
    8×8×3 images to stay fast."""
    cfg = load_config("cvae_inpaint_photos")
    model = models.build_model(cfg.model, SHAPE)
    params = models.init_params(model, jax.random.PRNGKey(0), SHAPE)
    cmodel = cvae_lib.build(cfg.model, SHAPE)
    cparams = cmodel.init({"params": jax.random.PRNGKey(1)}, jnp.zeros((1,) + SHAPE), jnp.zeros((1, 8, 8, 6)),
                          jax.random.PRNGKey(1))["params"]
    x = jnp.round(jax.random.uniform(jax.random.PRNGKey(2), (4,) + SHAPE) * 255) / 255  # 8-bit values
    return model, params, cmodel, cparams, x


@pytest.mark.parametrize("kind", KINDS)
def test_completing_colour_images_keeps_observed_pixels(kind):
    """``complete`` with any prediction, here the mixture's mean at random parameters."""
    lik = models.likelihood_of(models.build_model(load_config("cvae_inpaint_photos").model, SHAPE))
    x = jax.random.uniform(jax.random.PRNGKey(1), (4,) + SHAPE)
    m = inpainting.make_masks(kind, jax.random.PRNGKey(2), 4, SHAPE, 0.5)
    pred = jax.jit(lik.mean)(jax.random.normal(jax.random.PRNGKey(3), (2, 4) + SHAPE + (lik.num_params,)))
    out = np.asarray(inpainting.complete(x, m, pred))
    obs = np.broadcast_to(np.asarray(m).astype(bool), out.shape)
    np.testing.assert_array_equal(out[obs], np.broadcast_to(np.asarray(x), out.shape)[obs])
    np.testing.assert_array_equal(out[~obs], np.asarray(pred)[~obs])


@pytest.mark.slow  # compiles the posterior fit, the decoder and the CVAE (~30 s on the loaded 2-core CPU)
@pytest.mark.parametrize("kind", KINDS)
def test_colour_inpainting_never_changes_observed_pixels(photo_models, kind):
    model, params, cmodel, cparams, x = photo_models
    lik = models.likelihood_of(model)
    m = inpainting.make_masks(kind, jax.random.PRNGKey(3), len(x), SHAPE, 0.5)
    fill = jnp.full(SHAPE, 0.4)
    mean, logvar, _ = inpainting.fit_masked_posterior(model, params, x, m, fill, jax.random.PRNGKey(4), 3, 0.05, 2)
    outs = {"vae_opt": inpainting.decode_from_q(model, params, mean, logvar, jax.random.PRNGKey(5), 2),
            "cvae": cvae_lib.sample(cmodel, cparams, inpainting.condition(x, m), jax.random.PRNGKey(7), 2)}
    obs = np.asarray(m).astype(bool)
    for name, lp in outs.items():
        completed = np.asarray(inpainting.complete(x, m, lik.mean(lp)))
        assert completed.shape == (2,) + x.shape
        for c in completed:
            np.testing.assert_array_equal(c[obs], np.asarray(x)[obs], err_msg=name)
            assert np.abs(c[~obs] - np.asarray(x)[~obs]).mean() > 0.02, name
    nn = inpainting.nearest_neighbour(np.asarray(x), np.asarray(m), np.asarray(x)[::-1])
    np.testing.assert_array_equal(np.asarray(inpainting.complete(x, m, nn))[obs], np.asarray(x)[obs])


def test_observed_log_prob_is_the_sum_of_per_pixel_log_probs(photo_models):
    """Reference: the mixture's log-prob of each observed pixel as its own 1×1 image."""
    model, params, _, _, x = photo_models
    lik = models.likelihood_of(model)
    out = model.apply({"params": params}, jnp.zeros((len(x), model.latent_dim)), method="decode")
    m = inpainting.make_masks("random", jax.random.PRNGKey(9), len(x), SHAPE, 0.5)
    got = np.asarray(jax.jit(lambda *a: protocol.observed_log_prob(lik, *a))(x, out, m))
    h, w, c = SHAPE
    log_prob = jax.jit(lik.log_prob)  # eager, the mixture's ops would each compile on their own
    one_by_one = np.asarray(log_prob(x.reshape(-1, 1, 1, c), out.reshape((-1, 1, 1, c) + out.shape[-1:])))
    ref = (one_by_one.reshape(len(x), h, w) * np.asarray(m)[..., 0]).sum((1, 2))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    full = np.asarray(jax.jit(lambda *a: protocol.observed_log_prob(lik, *a))(x, out, jnp.ones_like(x)))
    np.testing.assert_allclose(full, np.asarray(log_prob(x, out)), rtol=1e-5)


@pytest.mark.slow  # the posterior fit's compile
def test_the_posterior_fit_never_reads_hidden_pixels(photo_models):
    """Hidden pixels replaced by noise: the same fitted q(z) and masked ELBO, to the bit."""
    model, params, _, _, x = photo_models
    m = inpainting.make_masks("centre_square", None, len(x), SHAPE)
    noise = jax.random.uniform(jax.random.PRNGKey(11), x.shape)
    fill = jnp.full(SHAPE, 0.4)
    a = inpainting.fit_masked_posterior(model, params, x, m, fill, jax.random.PRNGKey(4), 3, 0.05, 2)
    b = inpainting.fit_masked_posterior(model, params, m * x + (1 - m) * noise, m, fill, jax.random.PRNGKey(4), 3,
                                        0.05, 2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    c = inpainting.fit_masked_posterior(model, params, m * noise + (1 - m) * x, m, fill, jax.random.PRNGKey(4), 3,
                                        0.05, 2)
    assert np.abs(np.asarray(c[2]) - np.asarray(a[2])).min() > 1.0  # observed pixels do matter


# ---------------------------------------------------------------------------- metrics
def _ssim_at(a, b, i, j, sigma=1.5, radius=5):
    """SSIM of Wang et al. (2004) at interior pixel (i, j) of 2-D images, written out: an explicit
    normalised (2r+1)² Gaussian window, population (co)variances, C1 = (0.01)², C2 = (0.03)²."""
    r = np.arange(-radius, radius + 1)
    w = np.exp(-(r[:, None] ** 2 + r[None] ** 2) / (2 * sigma ** 2))
    w /= w.sum()
    pa, pb = a[i - radius:i + radius + 1, j - radius:j + radius + 1], b[i - radius:i + radius + 1, j - radius:j + radius + 1]
    ma, mb = (w * pa).sum(), (w * pb).sum()
    va, vb = (w * pa ** 2).sum() - ma ** 2, (w * pb ** 2).sum() - mb ** 2
    cov = (w * pa * pb).sum() - ma * mb
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return (2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))


def test_ssim_agrees_with_the_written_out_definition_and_is_one_on_identical_images():
    rng = np.random.default_rng(0)
    a = rng.random((2, 24, 24, 3))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    np.testing.assert_allclose(im.region_ssim(a, a), 1.0, atol=1e-12)
    full = im.ssim_map(a[0], b[0])
    for i, j, c in ((12, 12, 0), (7, 16, 1), (16, 5, 2)):
        assert abs(full[i, j, c] - _ssim_at(a[0, ..., c], b[0, ..., c], i, j)) < 1e-6
    region = np.zeros_like(a)
    region[:, 12, 12, 0] = 1.0  # one value: the region mean is that pixel's SSIM
    got = im.region_ssim(b, a, region)
    assert abs(got[1] - _ssim_at(b[1, ..., 0], a[1, ..., 0], 12, 12)) < 1e-6
    assert got[0] < 0.99


def test_psnr_and_best_of_n_against_closed_forms():
    shape = (16, 16, 3)  # SSIM's 11×11 window needs images of at least 11×11
    x = np.full((3,) + shape, 0.5, np.float32)
    m = np.asarray(inpainting.make_masks("bottom_half", None, 3, shape))
    deltas = np.array([0.1, 0.02], np.float32)  # sample 2 is the better one on every image
    comp = np.stack([x + (1 - m) * d for d in deltas])
    r = inpainting.measure(x, m, comp, None, None)
    mean_delta = deltas.mean()  # the mean completion is off by the mean offset, on hidden pixels only
    assert abs(r["mse"] - mean_delta ** 2) < 1e-7
    assert abs(r["psnr"] - 10 * np.log10(1 / mean_delta ** 2)) < 1e-3
    assert abs(r["best_of_n_psnr"] - 10 * np.log10(1 / deltas[1] ** 2)) < 1e-3
    assert r["best_of_n_ssim"] >= r["ssim"] - 1e-9 and r["accuracy"] is None


@pytest.mark.parametrize("field,value", [("inpaint.masks", "centre_square,left_half"), ("inpaint.num_samples", 0),
                                         ("classifier", "resnet")])
def test_bad_task_settings_are_refused_naming_the_field(field, value):
    cfg = load_config("cvae_inpaint_photos")
    sec, _, leaf = field.rpartition(".")
    (cfg.tasks[sec] if sec else cfg.tasks)[leaf] = value
    with pytest.raises(ConfigError, match=f"tasks.{field}"):
        settings.validate_tasks(cfg)


@pytest.mark.slow  # conv VAE + CVAE fits and every method through the CLI (about a minute here)
def test_inpaint_photos_tiny_through_the_cli(tmp_path):
    w = str(tmp_path / "w")
    r = run_cli(["--config=configs/cvae_inpaint_photos.py:tiny", f"--workdir={w}", "--mode=inpaint"])
    assert r.returncode == 0, r.stderr[-3000:]
    saved = json.load(open(os.path.join(w, "inpaint.json")))
    cfg = load_config("cvae_inpaint_photos")
    assert saved["data"] == "photos" and saved["classifier"] is None and saved["num_images"] == cfg.tasks.eval_subset
    assert set(saved["masks"]) == set(KINDS)
    for kind, methods in saved["masks"].items():
        assert {"mean_fill", "nearest_neighbour", "vae_opt", "cvae"} <= set(methods)
        for name, v in methods.items():
            assert 0 < v["mse"] < 1 and -1 <= v["ssim"] <= 1 and -1 <= v["best_of_n_ssim"] <= 1
            if v["num_samples"] == 1:  # one completion: it is its own mean and its own best
                assert v["best_of_n_ssim"] == v["ssim"] and abs(v["best_of_n_psnr"] - v["psnr"]) < 1e-9
        assert np.isfinite(methods["vae_opt"]["nll"]) and methods["vae_opt"]["nll"] > 0
        assert os.path.exists(os.path.join(w, f"inpaint_{kind}.png"))
