"""Linear autoencoder vs PCA.

With MSE, the optimum of a linear AE with an n-dimensional code reconstructs through the top-n
principal subspace (Baldi & Hornik 1989): its decoder's column space is that subspace and its mean
squared reconstruction error (summed over pixels, per example) equals the sum of the discarded
eigenvalues of the data covariance. This module measures how close a trained linear AE
(``model.kind='linear_ae'``, unconstrained encoder/decoder pair, or ``'linear_ae_orth'``,
z = Uᵀ(x − b), x̂ = b + UUᵀ(x − b) with UᵀU = I) gets to both:

    pca = fit_pca(x)                    # SVD of the centred data
    compare(model, params, x, pca)      # principal angles and reconstruction error vs the optimum
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import models


@dataclasses.dataclass
class PCA:
    mean: np.ndarray          # [D]
    components: np.ndarray    # [D, r] orthonormal columns, by decreasing variance
    eigenvalues: np.ndarray   # [r] variances (covariance normalized by N, not N − 1)

    def discarded_variance(self, n: int) -> float:
        """Σ_{i>n} λ_i: the least mean squared error (summed over pixels) of any rank-n reconstruction."""
        return float(np.sum(self.eigenvalues[n:]))


def fit_pca(x) -> PCA:
    """PCA of x [N, ...] by the SVD of the centred data matrix (float64)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    return PCA(mean, vt.T, s ** 2 / len(x))


def principal_angles(a, b) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of a [D, p] and b [D, q].
    Computed from sines — the singular values of (I − QₐQₐᵀ)Q_b — which stay accurate for the
    tiny angles we test for, where arccos of cosines near 1 loses half the digits."""
    qa, _ = np.linalg.qr(np.asarray(a, np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, np.float64))
    residual = qb - qa @ (qa.T @ qb)
    sines = np.linalg.svd(residual, compute_uv=False)
    return np.sort(np.arcsin(np.clip(sines, 0.0, 1.0)))


def decoder_basis(model, params) -> np.ndarray:
    """[D, n] columns spanning the image of a linear decoder: decode(e_i) − decode(0)."""
    n = model.latent_dim
    z = jnp.concatenate([jnp.eye(n), jnp.zeros((1, n))])
    out = models.likelihood_of(model).mean(model.apply({"params": params}, z, method="decode"))
    out = np.asarray(out, np.float64).reshape(n + 1, -1)
    return (out[:n] - out[n]).T


def reconstruction_sq_error(model, params, x, batch_size: int = 5000) -> float:
    """Mean over examples of Σ_pixels (x̂ − x)²: comparable with PCA.discarded_variance."""
    rec = jax.jit(lambda xb: models.reconstruct(model, params, xb))
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb = jnp.asarray(x[i:i + batch_size], jnp.float32)
        total += float(jnp.sum((rec(xb) - xb) ** 2))
    return total / len(x)


def compare(model, params, x, pca: PCA) -> dict:
    """Principal angles between the AE's decoder subspace and the top-n PCA subspace, and the AE's
    reconstruction error on x relative to the PCA optimum Σ_{i>n} λ_i (x: the data PCA was fit on)."""
    n = model.latent_dim
    angles = principal_angles(decoder_basis(model, params), pca.components[:, :n])
    ae_err, opt = reconstruction_sq_error(model, params, x), pca.discarded_variance(n)
    return {"latent_dim": n, "max_principal_angle": float(angles[-1]), "mean_principal_angle": float(angles.mean()),
            "ae_sq_error": ae_err, "pca_sq_error": opt, "excess_error_ratio": ae_err / opt - 1.0,
            "eigengap_n": float(pca.eigenvalues[n - 1] - pca.eigenvalues[n]) if n < len(pca.eigenvalues) else None}
