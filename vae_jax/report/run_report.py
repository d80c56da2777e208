"""The report of a trained run, written by the CLI (and the sweep runner) after training and after
``--mode=evaluate``: the image grids that need the restored model, then report.html (html.py)."""
from __future__ import annotations

import os

import jax
import numpy as np

from vae_jax import data as data_lib
from vae_jax import models
import vae_jax.report.html as html
import vae_jax.report.plots as plots
import vae_jax.training.runs as runs
import vae_jax.training.trainer as trainer


def reconstruction_rows(x: np.ndarray, recon: np.ndarray, ncol: int) -> np.ndarray:
    """[N, ...] inputs and reconstructions -> images in grid order: a row of ``ncol`` inputs, the row
    of their reconstructions under it, and so on (N is cut to a multiple of ``ncol``)."""
    n = (len(x) // ncol) * ncol
    blocks = np.stack([x[:n].reshape((-1, ncol) + x.shape[1:]), recon[:n].reshape((-1, ncol) + x.shape[1:])], 1)
    return blocks.reshape((-1,) + x.shape[1:])


def write_grids(workdir: str, run: runs.Run, key) -> list[str]:
    """reconstructions.png (test images as evaluated, i.e. binarized like the test set) and, for
    latent-variable models, samples.png."""
    n = min(run.config.report.num_images, len(run.ds.test_images))
    ncol = min(n, 16)
    x = np.asarray(data_lib.to_float(run.ds.test_images[:n], run.config.data.binarization, jax.random.fold_in(key, 7)))
    recon = np.asarray(models.reconstruct(run.model, run.params, x))
    paths = [plots.save_grid(os.path.join(workdir, "reconstructions.png"), reconstruction_rows(x, recon, ncol), ncol)]
    if run.model.is_vae:
        paths.append(plots.save_grid(os.path.join(workdir, "samples.png"),
                                     np.asarray(models.sample(run.model, run.params, key, n))))
    return paths


def write(workdir: str) -> str | None:
    """Grids from the restored model, then ``workdir/report.html`` (curves, per-unit KL, eval.json,
    every PNG); None when the run's config has ``report.enabled=False``."""
    run = runs.load_run(workdir)
    if not run.config.report.enabled:
        return None
    write_grids(workdir, run, trainer.split_keys(run.config.seed)["eval"])
    return html.write_html(workdir)
