"""Inpainting metrics, tables and grids (the measuring half of ``vae_jax.tasks.inpainting``).

Everything is measured on the hidden pixels only, against the test image (x/255, all channels):
MSE and PSNR of the mean completion, best-of-N MSE / PSNR / SSIM over the N completions (per image
the best one, then averaged), SSIM of the mean completion, the NLL of the hidden pixels under the
mixture of the N completions' likelihoods, and a classifier's accuracy on the completed images
(where ``tasks.classifier`` names one).
"""
from __future__ import annotations

import os

import jax
import numpy as np

import vae_jax.models.protocol as protocol
import vae_jax.tasks.common as common
import vae_jax.tasks.image_metrics as im

COLUMNS = ["mask", "method", "mse", "psnr", "ssim", "best_of_n_mse", "best_of_n_psnr", "best_of_n_ssim", "nll",
           "accuracy"]


def mixture_nll(model_lik, target, hidden, lik_params):
    """−log (1/N Σ_k Π_hidden p(t_i | params_k)) per image; lik_params [N, B, ..., P]. A pixel
    counts whole (all its channels), as the likelihoods define it (``protocol.observed_log_prob``)."""
    per = protocol.observed_log_prob(model_lik, target, lik_params, hidden)  # [N, B]
    return -(jax.scipy.special.logsumexp(per, axis=0) - np.log(per.shape[0]))


def measure(x, m, completions, labels, classifier, nll=None):
    """Metrics of [N, B, ...] completions (N = 1 for deterministic methods), hidden region only."""
    completions = np.asarray(completions)
    hidden = 1.0 - np.asarray(m)
    mean_completion = completions.mean(0)
    mse = im.region_mse(mean_completion, x, hidden)
    per_sample = np.stack([im.region_mse(c, x, hidden) for c in completions])      # [N, B]
    best = per_sample.min(0)
    # A deterministic method's mean completion is its only one: its SSIM is not computed twice.
    ssim_mean = im.region_ssim(mean_completion, x, hidden)
    ssim_per = (ssim_mean[None] if len(completions) == 1
                else np.stack([im.region_ssim(c, x, hidden) for c in completions]))
    out = {"mse": float(mse.mean()), "psnr": float(im.psnr(mse).mean()),
           "ssim": float(ssim_mean.mean()), "best_of_n_mse": float(best.mean()),
           "best_of_n_psnr": float(im.psnr(best).mean()), "best_of_n_ssim": float(ssim_per.max(0).mean()),
           "num_samples": int(len(completions)),
           "accuracy": None if classifier is None else float(np.mean(classifier.predict(mean_completion) == labels))}
    out["nll"] = None if nll is None else float(np.mean(nll))
    return out


def write_tables(workdir, tables, n, classifier, nll_unit) -> None:
    md = common.markdown_table(tables, COLUMNS)
    clf = ("no classifier accuracy (tasks.classifier='none')" if classifier is None else
           f"accuracy of {classifier.source}, clean test accuracy {classifier.clean_accuracy:.4f}")
    with open(os.path.join(workdir, "inpaint.md"), "w") as f:
        f.write(f"Hidden-region metrics on {n} test images (nll in nats per image of the {nll_unit}; "
                f"{clf}).\n\n" + md)


def save_mask_grid(workdir, kind, x, m, methods, k):
    shown_input = x[:k] * m[:k] + (1 - m[:k]) * 0.5  # hidden pixels shown mid-gray
    cols, labels = [x[:k], shown_input], ["original", "observed"]
    for name, (comp, _) in methods.items():
        for s in range(min(3, len(comp))):
            cols.append(comp[s, :k])
            labels.append(name if len(comp) == 1 else f"{name} {s + 1}")
    common.save_labeled_grid(os.path.join(workdir, f"inpaint_{kind}.png"), cols, labels,
                             title=f"mask {kind}: completions (observed pixels copied)")
