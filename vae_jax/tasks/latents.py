"""Views of a trained run's latent space, added to its report.html.

  * ``latents_manifold.png`` (2-D latent only) decoded means over a grid of prior quantiles
    z = (Φ⁻¹(u), Φ⁻¹(v)), u, v evenly spaced in (0, 1) — Kingma & Welling's MNIST manifold figure;
    for an AE, whose codes have no prior, the grid spans the codes' empirical quantiles;
  * ``latents_scatter.png`` the encoded test means coloured by label (2-D latent), or
    ``latents_pca.png`` their projection on the two leading principal components (larger latents);
  * ``latents_traversal.png`` one row per latent dimension, ordered by its mean KL(q(z_u|x) ‖ N(0,1))
    over the test images (AE: by the variance of the code), varying that dimension over its prior
    quantiles (AE: mean ± 2 sd) with the others at 0 (AE: at their mean);
  * ``latents.json`` per-dimension KL, the order, active units (Burda et al.: Cov_x E_q[z_u] > 0.01)
    and the PCA explained-variance ratios.
"""
from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
from scipy import stats

import vae_jax.models.distributions as D
import vae_jax.report.html as report
import vae_jax.tasks.common as common


def encode_all(run, x):
    """Means [N, n] and, for a VAE, log-variances (None for an AE)."""
    if run.model.is_vae:
        mean, logvar = common.batched(lambda b: run.model.apply({"params": run.params}, jnp.asarray(b),
                                                                method="encode"), x)
        return np.asarray(mean), np.asarray(logvar)
    return common.batched(lambda b: common.encode_mean(run.model, run.params, jnp.asarray(b)), x), None


def dimension_scores(mean, logvar):
    """Per-dimension ordering score: mean KL for a VAE, code variance for an AE."""
    if logvar is None:
        return mean.var(0)
    return np.asarray(D.kl_diag_gaussian_std_normal(jnp.asarray(mean), jnp.asarray(logvar))).mean(0)


def axis_values(mean, logvar, steps: int):
    """Values each dimension is swept over: prior quantiles (VAE) or the codes' spread (AE). [n, S]."""
    u = np.linspace(0.05, 0.95, steps)
    if logvar is not None:
        return np.tile(stats.norm.ppf(u)[None], (mean.shape[1], 1))
    return np.quantile(mean, u, axis=0).T


def decode(run, z):
    return common.batched(lambda b: common.decode_mean(run.model, run.params, jnp.asarray(b, jnp.float32)), z)


def pca(points, k: int = 2):
    centred = points - points.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s ** 2
    return centred @ vt[:k].T, var[:k] / var.sum()


def scatter(path, xy, labels, title, xlabel, ylabel):
    plt = report._plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=4, alpha=0.8, vmin=-0.5, vmax=9.5)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="label")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_latents(config, workdir: str) -> dict:
    """``--mode=latents``: writes the views listed in the module docstring and regenerates report.html."""
    run = common.load_run(workdir, common.data_dir_of(config))
    tl = common.tasks_of(config, run).latents
    x, labels = common.eval_split(run.ds, common.tasks_of(config, run))
    mean, logvar = encode_all(run, x)
    n = mean.shape[1]
    scores = dimension_scores(mean, logvar)
    order = np.argsort(-scores)
    values = axis_values(mean, logvar, tl.traversal_steps)
    out = {"latent_dim": int(n), "kind": run.kind, "num_images": int(len(x)),
           "order": order.tolist(), "active_units": int(np.sum(mean.var(0) > 0.01)),
           ("kl_per_dim" if logvar is not None else "code_variance_per_dim"): scores.tolist()}

    if n == 2:
        g = tl.grid_size
        if logvar is not None:
            axis = [stats.norm.ppf(np.linspace(0.5 / g, 1 - 0.5 / g, g))] * 2
        else:
            axis = [np.quantile(mean[:, d], np.linspace(0.5 / g, 1 - 0.5 / g, g)) for d in range(2)]
        # Row r shows z_2 from high to low so the picture's y axis points up, as in the paper.
        zz = np.array([[axis[0][c], axis[1][g - 1 - r]] for r in range(g) for c in range(g)], np.float32)
        report.save_grid(os.path.join(workdir, "latents_manifold.png"), decode(run, zz), ncol=g)
        scatter(os.path.join(workdir, "latents_scatter.png"), mean, labels,
                f"encoded test means ({run.kind}, {len(x)} images)", "z_1", "z_2")
    else:
        xy, ratio = pca(mean)
        out["pca_explained_variance_ratio"] = ratio.tolist()
        scatter(os.path.join(workdir, "latents_pca.png"), xy, labels,
                f"PCA of {n}-D encoded test means ({ratio.sum():.0%} of variance)",
                f"PC1 ({ratio[0]:.0%})", f"PC2 ({ratio[1]:.0%})")

    dims = order[: tl.max_traversal_dims]
    base = np.zeros(n, np.float32) if logvar is not None else mean.mean(0).astype(np.float32)
    columns = []
    for j in range(tl.traversal_steps):
        z = np.tile(base, (len(dims), 1))
        z[np.arange(len(dims)), dims] = values[dims, j]
        columns.append(decode(run, z))
    what = "KL" if logvar is not None else "var"
    common.save_labeled_grid(os.path.join(workdir, "latents_traversal.png"), columns,
                             [f"{v:+.2f}" if logvar is not None else f"q{j}" for j, v in enumerate(values[dims[0]])],
                             title=f"traversals, dimensions ordered by {what}",
                             row_labels=[f"z{d} {what} {scores[d]:.2f}" for d in dims])
    common.save_json(workdir, "latents.json", out)
    common.finish(workdir)
    print(f"latents: {os.path.abspath(workdir)}/latents.json, latents_*.png "
          f"(active units {out['active_units']}/{n})", flush=True)
    return out
