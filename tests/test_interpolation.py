"""Latent interpolation: path algebra, the smoothness measures, the mode with a compared AE."""
import json
import os

import jax.numpy as jnp
import numpy as np

from conftest import load_config
from vae_jax.tasks import interpolation as itp


def test_lerp_and_slerp_endpoints_and_norms():
    z0 = jnp.array([[3.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    z1 = jnp.array([[0.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    ts = jnp.linspace(0, 1, 5)
    for f in (itp.lerp, itp.slerp):
        p = np.asarray(f(z0, z1, ts))
        np.testing.assert_allclose(p[:, 0], z0, atol=1e-5)
        np.testing.assert_allclose(p[:, -1], z1, atol=1e-5)
    s = np.asarray(itp.slerp(z0, z1, ts))
    np.testing.assert_allclose(np.linalg.norm(s[0], axis=-1), [3.0, 2.5, 2.0, 1.5, 1.0], atol=1e-5)
    np.testing.assert_allclose(s[0, 2] / np.linalg.norm(s[0, 2]), [np.sqrt(0.5), np.sqrt(0.5), 0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(itp.lerp(z0, z1, ts))[0, 2], [1.5, 0.5, 0.0], atol=1e-6)
    same = np.asarray(itp.slerp(z0, z0, ts))  # parallel endpoints: no division by sin(0)
    assert np.isfinite(same).all()


class _FlatClassifier:
    def probs(self, x):
        return np.full((len(x), 10), 0.1)


def test_pixel_blend_is_a_straight_constant_speed_path():
    rng = np.random.default_rng(0)
    x0, x1 = rng.random((3, 4, 4, 1)), rng.random((3, 4, 4, 1))
    frames = itp.pixel_path(x0, x1, np.linspace(0, 1, 6))
    m = itp.path_metrics(frames, _FlatClassifier(), rng.random((7, 16)))
    assert abs(m["path_length_ratio"] - 1) < 1e-6 and abs(m["step_uniformity"] - 1) < 1e-6
    jumpy = frames.copy()
    jumpy[:, 1:5] = frames[:, :1]  # stays at x0, then jumps to x1 in one step
    mj = itp.path_metrics(jumpy, _FlatClassifier(), rng.random((7, 16)))
    assert mj["step_uniformity"] > 4.9 and abs(mj["path_length_ratio"] - 1) < 1e-6


def test_nearest_distance_is_exact():
    ref = np.eye(4, dtype=np.float32)
    d = itp.nearest_distance(np.array([[1, 0, 0, 0], [0.5, 0.5, 0, 0]], np.float32), ref)
    np.testing.assert_allclose(d, [0.0, np.sqrt(0.5)], atol=1e-3)


def test_interpolate_mode_compares_vae_ae_and_pixels(tiny_vae_run, tiny_ae_run, tmp_path):
    vae_dir = tiny_vae_run.copy_to(tmp_path / "vae")
    ae_dir = tiny_ae_run.workdir  # only read
    cfg = load_config("vae_mnist")
    cfg.tasks.interpolate.compare_workdirs = ae_dir
    out = itp.run_interpolate(cfg, vae_dir)
    names = set(out["paths"])
    ae_tag = os.path.basename(ae_dir)
    assert names == {"vae_linear", "vae_slerp", "pixel", f"ae_linear ({ae_tag})", f"ae_slerp ({ae_tag})"}
    assert abs(out["paths"]["pixel"]["path_length_ratio"] - 1) < 1e-5
    for r in out["paths"].values():
        assert r["path_length_ratio"] >= 1 - 1e-5 and r["step_uniformity"] >= 1 - 1e-5 and r["nn_distance"] > 0
    assert json.load(open(os.path.join(vae_dir, "interpolate.json")))["num_pairs"] == cfg.tasks.interpolate.num_pairs
    html = open(os.path.join(vae_dir, "report.html")).read()
    assert "interpolate_vae_slerp.png" in html and "interpolate_pixel.png" in html
