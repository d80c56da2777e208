"""Colorization on colour photos: colourfulness and diversity against closed forms, luminance kept
on real photo patches, the photo config end to end through the CLI."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, run_cli
from vae_jax.models import cvae as cvae_lib
from vae_jax.tasks import colorization as col
from vae_jax.tasks import image_metrics as im


def test_colourfulness_of_gray_images_is_zero():
    gray = np.random.default_rng(0).random((3, 8, 8, 1))
    assert np.abs(im.colourfulness(np.repeat(gray, 3, -1))).max() < 1e-9


def test_colourfulness_closed_forms():
    # A uniform pure red: rg = 255, yb = 127.5, no spread: M = 0.3·sqrt(255² + 127.5²).
    red = np.zeros((1, 4, 4, 3))
    red[..., 0] = 1.0
    assert abs(im.colourfulness(red)[0] - 0.3 * np.hypot(255.0, 127.5)) < 1e-9
    # rg and yb are linear in RGB and 0 on gray, so doubling the chroma about gray doubles M.
    rng = np.random.default_rng(1)
    gray = 0.5 * np.ones((2, 6, 6, 1))
    chroma = 0.1 * rng.standard_normal((2, 6, 6, 3))
    chroma -= (chroma @ col.LUMA)[..., None]  # zero luminance: stays a pure chroma offset
    np.testing.assert_allclose(im.colourfulness(gray + 2 * chroma), 2 * im.colourfulness(gray + chroma), rtol=1e-9)


def test_pairwise_diversity_closed_form():
    a = np.zeros((1, 2, 4, 4, 3))
    samples = np.concatenate([a, a + 0.1, a + 0.3])  # pairs differ by 0.1, 0.3, 0.2
    assert abs(im.pairwise_diversity(samples) - np.mean([0.01, 0.09, 0.04])) < 1e-12
    assert im.pairwise_diversity(samples[:1]) == 0.0


def test_colourings_of_photo_patches_keep_their_luminance():
    from vae_jax import data

    cfg = load_config("cvae_colorize_photos")
    ds = data.load(cfg.data)
    assert ds.image_shape == (32, 32, 3) and ds.meta["source"] == "photos"
    truth = ds.test_images[:4].astype(np.float32) / 255.0
    gray = np.asarray(col.luminance(jnp.asarray(truth)))[..., None]
    model = cvae_lib.build(cfg.model, (32, 32, 2))
    params = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 32, 32, 2)), jnp.zeros((1, 32, 32, 1)),
                        jax.random.PRNGKey(0))["params"]
    s = col.colourings(model, params, gray, jax.random.PRNGKey(1), 3)
    assert s.shape == (3, 4, 32, 32, 3)
    np.testing.assert_allclose(np.asarray(col.luminance(jnp.asarray(s))), np.broadcast_to(gray[..., 0], s.shape[:-1]),
                               atol=1e-5)
    r = col.measure(s, truth, gray)
    assert "palette_fraction" not in r and r["best_of_n_mse"] <= r["mean_mse"] + 1e-9
    assert r["diversity"] > 0 and r["colourfulness"] > 0
    exact = col.measure(truth[None], truth, gray)
    assert exact["best_of_n_mse"] < 1e-10
    assert abs(exact["colourfulness"] - im.colourfulness(truth).mean()) < 1e-9


@pytest.mark.slow  # CVAE + regressor fits through the CLI
def test_colorize_photos_tiny_through_the_cli(tmp_path):
    w = str(tmp_path / "w")
    r = run_cli(["--config=configs/cvae_colorize_photos.py:tiny", f"--workdir={w}", "--mode=colorize"])
    assert r.returncode == 0, r.stderr[-3000:]
    saved = json.load(open(os.path.join(w, "colorize.json")))
    assert saved["data"] == "photos" and saved["palette"] is None
    assert saved["num_images"] == load_config("cvae_colorize_photos").tasks.eval_subset
    truth, cvae, reg = (saved["methods"][k] for k in ("truth", "cvae", "regressor"))
    assert truth["colourfulness"] > 5  # real photos are colourful; the gray input is 0
    assert reg["diversity"] == 0.0 and cvae["best_of_n_mse"] <= cvae["mean_mse"] * (1 + 1e-6)
    for v in (cvae, reg):
        assert v["luminance_max_abs_error"] < 1e-4 and 0 <= v["colourfulness"] and np.isfinite(v["best_of_n_psnr"])
    md = open(os.path.join(w, "colorize.md")).read()
    assert "colourfulness" in md and "palette" not in md
    assert os.path.exists(os.path.join(w, "colorize.png"))
