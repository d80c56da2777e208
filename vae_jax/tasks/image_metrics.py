"""Image-quality measures of the task modes (numpy, images in [0, 1], [B, H, W, C]): PSNR, SSIM
restricted to a region, colourfulness, and the diversity of samples.

SSIM is scikit-image's ``structural_similarity`` with the settings of Wang et al. (2004): an
11×11 Gaussian window of σ = 1.5, population covariances, K1 = 0.01, K2 = 0.03, on the data range
1. Its full map (one value per pixel and channel) is averaged over the region asked for, so an
inpainting is scored on its hidden pixels only (near the region's border the window also sees
observed pixels, which are the truth's own: that is the context the completion must fit).
"""
from __future__ import annotations

import numpy as np

# Wang et al. (2004)'s window; scikit-image's defaults differ (7×7 uniform, sample covariance).
SSIM_SETTINGS = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def region_mse(pred, target, region):
    """Mean squared error per image over the values where ``region`` is 1 ([B, ...] -> [B])."""
    axes = tuple(range(1, np.ndim(target)))
    region = np.broadcast_to(region, np.shape(target))
    return np.sum(region * (pred - target) ** 2, axis=axes) / np.maximum(np.sum(region, axis=axes), 1.0)


def psnr(mse, peak: float = 1.0):
    """10·log10(peak² / MSE) in dB (MSE floored at 1e-10: a perfect match reads 100 dB)."""
    return 10.0 * np.log10(peak ** 2 / np.maximum(mse, 1e-10))


def ssim_map(pred, target):
    """Per-pixel, per-channel SSIM of one image pair [H, W, C] (scikit-image, ``SSIM_SETTINGS``)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(np.asarray(pred, np.float64), np.asarray(target, np.float64),
                                    channel_axis=-1, full=True, **SSIM_SETTINGS)
    return full


def region_ssim(pred, target, region=None):
    """Mean SSIM per image over the values where ``region`` is 1 (everywhere when None): [B]."""
    pred, target = np.asarray(pred), np.asarray(target)
    region = np.ones_like(target) if region is None else np.broadcast_to(region, target.shape)
    out = np.empty(len(target))
    for i in range(len(target)):
        out[i] = np.sum(ssim_map(pred[i], target[i]) * region[i]) / max(float(np.sum(region[i])), 1.0)
    return out


def colourfulness(rgb):
    """Hasler & Süsstrunk (2003)'s colourfulness M per image [B] of RGB images in [0, 1], on their
    0–255 scale (≈ 0 gray, ≈ 33 'moderately', ≈ 59 'quite', ≥ 82 'extremely' colourful):
    M = sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²), rg = R − G, yb = (R + G)/2 − B."""
    rgb = 255.0 * np.asarray(rgb, np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    axes = tuple(range(1, rg.ndim))
    return (np.sqrt(rg.var(axis=axes) + yb.var(axis=axes))
            + 0.3 * np.sqrt(rg.mean(axis=axes) ** 2 + yb.mean(axis=axes) ** 2))


def pairwise_diversity(samples):
    """Mean over images and over sample pairs i < j of the MSE between samples i and j of one
    image; [N, B, ...] -> float (0 for N = 1)."""
    n = len(samples)
    flat = np.asarray(samples).reshape(n, np.shape(samples)[1], -1)
    pair = [np.mean((flat[i] - flat[j]) ** 2, -1) for i in range(n) for j in range(i + 1, n)]
    return float(np.mean(pair)) if pair else 0.0
