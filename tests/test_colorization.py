"""Colorization: colour algebra, the palette, its metric, and the mode end to end."""
import json

import jax
import jax.numpy as jnp
import numpy as np

import pytest
from conftest import load_config
from vae_jax.models import cvae as cvae_lib
from vae_jax.tasks import colorization as col


def test_palette_has_equal_luminance_distinct_in_gamut_colours():
    pal = col.palette(6, 0.5)
    assert pal.shape == (6, 3)
    np.testing.assert_allclose(pal @ col.LUMA, 0.5, atol=1e-6)
    assert pal.min() >= 0 and pal.max() <= 1
    d = np.linalg.norm(pal[:, None] - pal[None], axis=-1) + np.eye(6)
    assert d.min() > 0.2  # far apart compared with the 0.1 tolerance of the palette metric


def test_gray_chroma_round_trip():
    rgb = jax.random.uniform(jax.random.PRNGKey(0), (4, 5, 5, 3))
    gray, chroma = col.split_gray_chroma(rgb)
    np.testing.assert_allclose(np.asarray(col.from_gray_chroma(gray, chroma)), np.asarray(rgb), atol=1e-6)


def test_coloured_digits_share_their_gray_image():
    x = jax.random.uniform(jax.random.PRNGKey(1), (32, 28, 28, 1))
    pal = col.palette(6, 0.5)
    rgb, idx = col.colourize_batch(x, jax.random.PRNGKey(2), pal)
    assert len(set(np.asarray(idx).tolist())) > 1
    np.testing.assert_allclose(np.asarray(col.luminance(rgb)), 0.5 * np.asarray(x[..., 0]), atol=1e-6)
    rgb_in = jax.random.uniform(jax.random.PRNGKey(3), (2, 8, 8, 3))  # RGB data passes through
    out, idx = col.colourize_batch(rgb_in, jax.random.PRNGKey(2), pal)
    assert (np.asarray(out) == np.asarray(rgb_in)).all() and (np.asarray(idx) == -1).all()


def test_palette_metric_accepts_truth_and_rejects_the_average_colour():
    x = jax.random.uniform(jax.random.PRNGKey(4), (10, 28, 28, 1))
    pal = col.palette(6, 0.5)
    truth, idx = col.colourize_batch(x, jax.random.PRNGKey(5), pal)
    truth, idx = np.asarray(truth), np.asarray(idx)
    gray = np.asarray(col.luminance(jnp.asarray(truth)))[..., None]
    exact = col.measure(truth[None], truth, gray, pal, 0.5, idx)
    assert exact["palette_fraction"] == 1.0 and exact["true_colour_fraction"] == 1.0 and exact["best_of_n_mse"] < 1e-10
    average = np.repeat(gray, 3, -1)[None]  # the regressor's optimum: the mean colour is gray
    avg = col.measure(average, truth, gray, pal, 0.5, idx)
    assert avg["palette_fraction"] == 0.0 and avg["best_of_n_mse"] > 1e-3


def test_rgb_objective_runs_on_colour_images():
    cfg = load_config("cvae_colorize_mnist")
    model = cvae_lib.build(cfg.model, (8, 8, 2))
    params = model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 8, 8, 2)), jnp.zeros((1, 8, 8, 1)),
                        jax.random.PRNGKey(0))["params"]
    obj_cfg = type("C", (), {"palette_size": 6, "luminance": 0.5, "kl_warmup_steps": 10})
    loss, metrics = col.cvae_colorize_objective(model, params, jax.random.uniform(jax.random.PRNGKey(1), (4, 8, 8, 3)),
                                                jax.random.PRNGKey(2), 0, obj_cfg)
    assert np.isfinite(float(loss)) and float(metrics["kl"]) >= 0


@pytest.mark.slow  # CVAE + regressor fits through the CLI
def test_colorize_mode_samples_differ_and_keep_the_input_luminance(tmp_path):
    cfg = load_config("cvae_colorize_mnist")
    cfg.train.tensorboard = False
    cfg.train.checkpoint_every = cfg.train.epochs  # the last epoch only: 80 orbax saves cost ~6 s
    out = col.run_colorize(cfg, str(tmp_path))
    saved = json.load(open(tmp_path / "colorize.json"))
    assert saved["methods"] == json.loads(json.dumps(out["methods"]))
    cvae, reg = saved["methods"]["cvae"], saved["methods"]["regressor"]
    assert cvae["diversity"] > 1e-4 and reg["diversity"] == 0.0
    assert cvae["luminance_max_abs_error"] < 1e-4 and reg["luminance_max_abs_error"] < 1e-4
    assert cvae["best_of_n_mse"] <= cvae["mean_mse"]
    for r in (cvae, reg):
        assert 0 <= r["palette_fraction"] <= 1
    assert "colorize.png" in open(tmp_path / "report.html").read()
    # Samples of one gray digit differ from one another pixel-wise, and each keeps its luminance.
    from vae_jax import data
    ds = data.load(cfg.data)
    model, params = col.train_models(cfg, ds, str(tmp_path))["cvae"]  # reloads the trained CVAE
    gray = 0.5 * ds.test_images[:3].astype(np.float32) / 255.0
    s = col.colourings(model, params, gray, jax.random.PRNGKey(0), 3)
    stroke = gray[..., 0] > 0.25
    assert np.abs(s[0] - s[1])[stroke].mean() > 1e-3 and np.abs(s[1] - s[2])[stroke].mean() > 1e-3
    np.testing.assert_allclose(np.asarray(col.luminance(jnp.asarray(s))), np.broadcast_to(gray[..., 0], s.shape[:-1]),
                               atol=1e-5)


@pytest.mark.slow
def test_colorize_mode_on_an_rgb_tfds_dataset(tmp_path):
    """The online path (``data.source='tfds'``, e.g. cifar10), on TFDS's mock data."""
    import tensorflow_datasets as tfds

    cfg = load_config("cvae_colorize_mnist")
    cfg.data.source, cfg.data.name = "tfds", "cifar10"
    cfg.data.train_subset = cfg.data.test_subset = 0
    cfg.train.tensorboard, cfg.train.epochs, cfg.train.batch_size = False, 2, 16
    with tfds.testing.mock_data(num_examples=64):
        out = col.run_colorize(cfg, str(tmp_path))
    cvae = out["methods"]["cvae"]
    assert out["palette"] is None and "palette_fraction" not in cvae
    assert cvae["luminance_max_abs_error"] < 1e-4 and np.isfinite(cvae["best_of_n_mse"])
    assert (tmp_path / "colorize.png").exists()
