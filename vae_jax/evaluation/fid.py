"""Fréchet distance between image sets on the features of a domain classifier (classifier.py).

    FD = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})     (Heusel et al. 2017, on our features)

Numbers are only comparable with the same classifier (same cache fingerprint) and the same set
sizes; the real-data floor — training images vs test images, both real, same count — is reported
beside every score: a model cannot be expected to go below it.
"""
from __future__ import annotations

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(stats1, stats2) -> float:
    """FD between two (mean, covariance) pairs. Tr (Σ₁Σ₂)^{1/2} is computed as the sum of square
    roots of the eigenvalues of the symmetric PSD matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2} (same spectrum as
    Σ₁Σ₂), which is stable where scipy.linalg.sqrtm of the non-symmetric product is not."""
    (mu1, s1), (mu2, s2) = stats1, stats2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_covmean = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid(classifier, images_a, images_b) -> float:
    """FD between two image sets (float in [0, 1] or uint8) on ``classifier``'s features."""
    return frechet_distance(feature_stats(classifier.features(images_a)),
                            feature_stats(classifier.features(images_b)))


def real_data_floor(classifier, train_images, test_images, n: int | None = None) -> float:
    """FD between the first n training images and the first n test images (n = test size)."""
    n = n or len(test_images)
    return fid(classifier, train_images[:n], test_images[:n])
