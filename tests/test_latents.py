"""Latent-space views: 2-D manifold + scatter, PCA for larger latents, KL-ordered traversals."""
import json
import os

import matplotlib.image
import numpy as np

from conftest import load_config
from vae_jax.tasks import latents


def test_pca_recovers_the_dominant_direction():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 1)) * np.array([[3.0, 0, 0, 4.0]]) + 0.01 * rng.normal(size=(500, 4))
    xy, ratio = latents.pca(pts)
    assert ratio[0] > 0.99 and xy.shape == (500, 2)


def test_latents_mode_on_a_larger_latent_uses_pca_and_orders_by_kl(tiny_vae_run, tmp_path):
    workdir = tiny_vae_run.copy_to(tmp_path / "run")
    out = latents.run_latents(load_config("vae_mnist"), workdir)
    kl = np.array(out["kl_per_dim"])
    assert list(np.argsort(-kl)) == out["order"] and (kl >= 0).all()
    assert len(out["pca_explained_variance_ratio"]) == 2 and 0 <= out["active_units"] <= 8
    files = os.listdir(workdir)
    assert {"latents_pca.png", "latents_traversal.png", "latents.json"} <= set(files)
    assert "latents_manifold.png" not in files
    html = open(os.path.join(workdir, "report.html")).read()
    assert "latents_traversal.png" in html and "latents_pca.png" in html
    assert json.load(open(os.path.join(workdir, "latents.json")))["latent_dim"] == 8


def test_latents_mode_on_a_2d_latent_draws_the_manifold(tiny_vae_2d_run, tmp_path):
    workdir = tiny_vae_2d_run.copy_to(tmp_path / "run")
    cfg = load_config("vae_mnist")
    out = latents.run_latents(cfg, workdir)
    assert out["latent_dim"] == 2 and "pca_explained_variance_ratio" not in out
    assert {"latents_manifold.png", "latents_scatter.png"} <= set(os.listdir(workdir))
    g = cfg.tasks.latents.grid_size
    img = matplotlib.image.imread(os.path.join(workdir, "latents_manifold.png"))
    assert img.shape[0] == g * 29 + 1 and img.shape[1] == g * 29 + 1
