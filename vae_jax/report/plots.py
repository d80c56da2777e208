"""The pictures of a report: image grids, training curves and the per-unit KL chart (PNG files)."""
from __future__ import annotations

import json
import os

import numpy as np

import vae_jax.evaluation.diagnostics as diagnostics

# diagnostics counts a unit active when Cov_x(E_q[z_u]) > 0.01; the same number is the usual
# "collapsed unit" line on a per-unit KL chart (nats), so the chart draws it.
KL_THRESHOLD = diagnostics.ACTIVE_UNIT_THRESHOLD
_KL_FLOOR = 1e-5  # log axis: a fully collapsed unit (KL = 0) is drawn at this height


def _plt():
    """matplotlib.pyplot on the Agg backend. Imported here, when a picture is drawn, not at module
    import: ``import vae_jax.config`` (which imports the report) must not switch the backend of a
    notebook that imports the package, nor pay matplotlib's import time in every CLI start."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def image_grid(images: np.ndarray, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """[N, H, W, C] in [0,1] -> one [rows*H, cols*W, C] image."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.float32)
    for i in range(n):
        r, col = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = images[i]
    return grid


def save_grid(path: str, images, ncol: int | None = None) -> str:
    g = image_grid(images, ncol)
    _plt().imsave(path, g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0.0, vmax=1.0)
    return path


def read_metrics(workdir: str) -> list[dict]:
    """The rows of ``workdir/metrics.jsonl`` (a partial last line of a killed run is skipped)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip().endswith("}")]


CURVE_LABELS = {"neg_elbo": "−ELBO (nats)", "kl": "rate KL(q‖p) (nats)", "mse": "MSE per pixel",
                "rec_loss": "distortion −log p(x|z) (nats)"}


def plot_curves(workdir: str, rows: list[dict], metric: str) -> str | None:
    """``curve_<metric>.png``: train (mean over each epoch's steps) and test values per epoch;
    None when metrics.jsonl has neither."""
    xs_tr = [(r["epoch"], r[f"train/{metric}"]) for r in rows if f"train/{metric}" in r]
    xs_te = [(r["epoch"], r[f"test/{metric}"]) for r in rows if f"test/{metric}" in r]
    if not xs_tr and not xs_te:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for pts, label in ((xs_tr, "train (epoch mean)"), (xs_te, "test")):
        if pts:
            ax.plot(*zip(*pts), marker="o" if len(pts) < 30 else None, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(CURVE_LABELS.get(metric, metric))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(workdir, f"curve_{metric}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sorted_units(kl_per_dim) -> list[tuple[int, float]]:
    """(unit index, KL) pairs, largest KL first (ties keep the unit order)."""
    kl = [float(v) for v in kl_per_dim]
    return sorted(enumerate(kl), key=lambda p: -p[1])


def plot_kl_per_dim(path: str, layers: dict[str, list[float]]) -> str:
    """Bar chart of E_x KL(q(z_u|x) ‖ p(z_u)) per latent unit, sorted, one panel per stochastic
    layer, on a log axis (collapsed units are orders of magnitude below the active ones) with the
    0.01-nat line; bars under it are grey."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(layers), figsize=(min(12, 2 + 4.5 * len(layers)), 3.2), squeeze=False)
    for ax, (name, kl) in zip(axes[0], layers.items()):
        units = sorted_units(kl)
        vals = np.maximum([v for _, v in units], _KL_FLOOR)
        colors = ["C0" if v > KL_THRESHOLD else "0.6" for _, v in units]
        ax.bar(range(len(units)), vals, color=colors, width=0.8)
        ax.set_yscale("log")
        ax.set_ylim(bottom=_KL_FLOOR / 2, top=max(1.0, float(vals.max()) * 2))
        ax.axhline(KL_THRESHOLD, color="C3", ls="--", lw=1, label=f"{KL_THRESHOLD} nats")
        if len(units) <= 32:
            ax.set_xticks(range(len(units)))
            ax.set_xticklabels([str(u) for u, _ in units], fontsize=7, rotation=90 if len(units) > 16 else 0)
        ax.set_xlabel("latent unit (sorted by KL)" + (f" — {name}" if name else ""))
        ax.set_ylabel("KL per unit (nats)")
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
