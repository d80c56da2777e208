"""Image grids, curves and the per-run HTML report (report.html)."""
from __future__ import annotations

import html
import json
import os

import jax
import numpy as np


def _plt():
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
    plt = _plt()
    plt.imsave(path, g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0.0, vmax=1.0)
    return path


def read_metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def plot_curves(workdir: str, rows: list[dict], metric: str) -> str | None:
    xs_tr = [(r["epoch"], r[f"train/{metric}"]) for r in rows if f"train/{metric}" in r]
    xs_te = [(r["epoch"], r[f"test/{metric}"]) for r in rows if f"test/{metric}" in r]
    if not xs_tr and not xs_te:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for pts, label in ((xs_tr, "train"), (xs_te, "test")):
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric + (" (nats)" if metric != "mse" else ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(workdir, f"curve_{metric}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def validate(cfg) -> None:
    from vae_jax import checks
    checks.positive_int(cfg, "report.num_images")


def write_run_report(workdir: str, config, model, params, ds, key) -> str:
    """Reconstruction and sample grids, curves, and report.html linking every PNG in workdir."""
    from vae_jax import data as data_lib
    from vae_jax import models

    n = config.report.num_images
    x = data_lib.to_float(ds.test_images[:n], config.data.binarization, jax.random.fold_in(key, 7))
    recon = np.asarray(models.reconstruct(model, params, x))
    pairs = np.stack([np.asarray(x), recon], 1).reshape((-1,) + recon.shape[1:])
    save_grid(os.path.join(workdir, "reconstructions.png"), pairs, ncol=16)
    if model.is_vae:
        save_grid(os.path.join(workdir, "samples.png"), np.asarray(models.sample(model, params, key, n)))
    rows = read_metrics(workdir)
    plot_curves(workdir, rows, "neg_elbo" if model.is_vae else "mse")
    return write_html(workdir)


def write_html(workdir: str) -> str:
    """(Re)writes report.html from what the workdir holds: config, eval.json, every PNG."""
    cfg = open(os.path.join(workdir, "config.json")).read() if os.path.exists(os.path.join(workdir, "config.json")) else "{}"
    ev_path = os.path.join(workdir, "eval.json")
    ev = json.load(open(ev_path)) if os.path.exists(ev_path) else {}
    meta_path = os.path.join(workdir, "run_meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    pngs = sorted(p for p in os.listdir(workdir) if p.endswith(".png"))
    extra = sorted(p for p in os.listdir(workdir) if p.endswith(".html") and p != "report.html")
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>vae_jax run</title>",
             "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
             "img{image-rendering:pixelated;max-width:100%}</style></head><body>",
             f"<h1>Run {html.escape(os.path.basename(os.path.abspath(workdir)))}</h1>",
             "<h2>Test metrics (eval.json)</h2><table>"]
    for k, v in sorted(ev.items()):
        parts.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape(f'{v:.4f}' if isinstance(v, float) else str(v))}</td></tr>")
    parts.append("</table>")
    if meta:
        parts.append(f"<h2>Data</h2><pre>{html.escape(json.dumps(meta.get('data', {}), indent=1))}</pre>")
    for p in pngs:
        parts.append(f"<h2>{html.escape(p[:-4])}</h2><img src='{html.escape(p)}'>")
    for p in extra:
        parts.append(f"<p><a href='{html.escape(p)}'>{html.escape(p)}</a></p>")
    parts.append(f"<h2>Config</h2><pre>{html.escape(cfg)}</pre>")
    if meta:
        parts.append(f"<h2>Versions</h2><pre>{html.escape(json.dumps(meta.get('versions', {}), indent=1))}</pre>")
    parts.append("</body></html>")
    path = os.path.join(workdir, "report.html")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path
