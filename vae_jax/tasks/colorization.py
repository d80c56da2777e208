"""Colorization: grayscale → colour with a conditional VAE p(colour | gray, z), q(z | colour, gray).

The models predict only the chroma (B − Y, R − Y) of each pixel; the luminance Y (Rec. 601:
0.299 R + 0.587 G + 0.114 B) is the gray input itself, so every colouring has exactly the input's
luminance and the models spend their capacity on what gray does not say. The decoder's output is
the chroma per unit of luminance, h, and the likelihood's mean chroma is Y·h: for any RGB colour
in [0, 1]³, |chroma| ≤ 7.8·Y, so this covers every colour, and the colour of a uniformly coloured
object is one constant h however its shading varies (a plain MLP decoding the chroma itself
must multiply the shape by the colour, and in a first attempt on colour MNIST the CVAE fell into
posterior collapse, KL → 0.01 nats, at the regressor's solution).

Data
  * gray datasets (MNIST): colour MNIST built on the fly — each digit gets one colour drawn
    uniformly from a palette of ``tasks.colorize.palette_size`` colours of equal luminance and
    equal saturation (hues evenly spaced), rgb = intensity · colour. Gray = intensity · Y0 is the
    same for every colour, so it carries no information about which one: a good model must
    produce each palette colour with its probability, a regressor can only average them.
  * RGB datasets (``data.source='tfds'``, e.g. ``data.name='cifar10'``): the images themselves.

  * colour photos (``data.source='photos'``, configs/cvae_colorize_photos.py): 32×32 patches of
    real photographs, whole photos held out for test.
The colour space is this luma/chroma split (YCbCr without Cb/Cr's scale factors and offsets), not
Lab: it is linear in RGB, so gray + chroma -> RGB is exact and the luminance is kept exactly.

Baseline: the same decoder network without z (a deterministic regressor, MSE for the Gaussian
likelihood), trained the same epochs. Metrics on test images, N samples each: best-of-N RGB MSE
(and its PSNR), mean-sample MSE, sample diversity (mean pairwise MSE between samples of one input),
colourfulness (Hasler & Süsstrunk 2003; the truth's is reported beside it), the fraction
of samples whose colour is a palette colour (within ``palette_tolerance`` in RGB; colour MNIST
only) and of those that pick the true colour, and the largest luminance error.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

import vae_jax.models.cvae as cvae_lib
import vae_jax.tasks.fit as fit_lib
import vae_jax.tasks.common as common
import vae_jax.tasks.image_metrics as im

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# ---------------------------------------------------------------------------- colour algebra
def luminance(rgb):
    return rgb @ jnp.asarray(LUMA)


def to_chroma(rgb):
    """[..., 3] -> [..., 2]: (B − Y, R − Y)."""
    y = luminance(rgb)
    return jnp.stack([rgb[..., 2] - y, rgb[..., 0] - y], -1)


def from_gray_chroma(gray, chroma):
    """Inverse of (luminance, to_chroma): gray [..., 1], chroma [..., 2] -> rgb [..., 3]."""
    xp = np if isinstance(chroma, np.ndarray) and isinstance(gray, np.ndarray) else jnp  # numpy: constants
    y = gray[..., 0]
    b, r = y + chroma[..., 0], y + chroma[..., 1]
    g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
    return xp.stack([r, g, b], -1)


def palette(size: int, lum: float) -> np.ndarray:
    """``size`` RGB colours of luminance ``lum`` with evenly spaced hues and the largest common
    saturation that keeps all of them inside [0, 1]^3 (times 0.9)."""
    angles = 2 * np.pi * np.arange(size) / size + np.pi / 12
    dirs = np.stack([np.cos(angles), np.sin(angles)], -1)  # unit chroma directions (B−Y, R−Y)
    unit_rgb = from_gray_chroma(np.zeros((size, 1)), dirs)
    # rgb = lum + r · unit_rgb must stay in [0, 1] for every channel of every colour.
    limits = np.where(unit_rgb > 0, (1 - lum) / np.maximum(unit_rgb, 1e-9), lum / np.maximum(-unit_rgb, 1e-9))
    r = 0.9 * limits.min()
    return (lum + r * unit_rgb).astype(np.float32)


def colourize_batch(x, key, pal):
    """Colour images for a batch: RGB data as is; gray digits coloured with a random palette colour.
    Returns (rgb [B,H,W,3], colour index [B] or -1)."""
    if x.shape[-1] == 3:
        return x, jnp.full((x.shape[0],), -1)
    k = jax.random.randint(key, (x.shape[0],), 0, len(pal))
    return x * jnp.asarray(pal)[k][:, None, None, :], k


def split_gray_chroma(rgb):
    return luminance(rgb)[..., None], to_chroma(rgb)


# ---------------------------------------------------------------------------- objectives
def scale_by_gray(lik_params, gray):
    """Decoder output h (chroma per unit luminance) -> likelihood parameters with mean Y·h."""
    mean = lik_params[..., :1] * gray[..., None]
    return jnp.concatenate([mean, lik_params[..., 1:]], axis=-1)


def _batch(x, key, cfg):
    rgb, _ = colourize_batch(x, key, palette(cfg.palette_size, cfg.luminance))
    return split_gray_chroma(rgb)


def cvae_colorize_objective(model, params, x, key, step, cfg):
    k_col, k_z = jax.random.split(key)
    gray, chroma = _batch(x, k_col, cfg)
    # KL warm-up: the weight rises linearly 0 -> 1 over kl_warmup_steps, so the decoder learns to
    # read z before the KL term can shut it (without it the tiny test model collapses to KL ≈ 0).
    kl_weight = jnp.minimum(1.0, (step + 1) / max(cfg.kl_warmup_steps, 1))
    return cvae_lib.conditional_elbo(model, params, chroma, gray, k_z, kl_weight=kl_weight,
                                     output_fn=scale_by_gray)


def regress_colorize_objective(model, params, x, key, step, cfg):
    gray, chroma = _batch(x, key, cfg)
    return cvae_lib.regression_nll(model, params, chroma, gray, output_fn=scale_by_gray)


def train_models(config, ds, workdir):
    """Trains (or reloads) the CVAE and the regressor; returns {name: (model, params)}."""
    t = config.tasks.colorize
    h, w, _ = ds.image_shape
    obj_cfg = {"palette_size": t.palette_size, "luminance": t.luminance, "kl_warmup_steps": t.kl_warmup_steps}
    out = {}
    for name, deterministic, objective in (("cvae", False, cvae_colorize_objective),
                                           ("regressor", True, regress_colorize_objective)):
        model = cvae_lib.build(config.model, (h, w, 2), deterministic=deterministic)
        params = fit_lib.fit(model, config, objective, obj_cfg, ds.train_images, ((h, w, 2), (h, w, 1)),
                              fit_lib.checkpoint_dir(workdir, f"colorize_{name}"), label=f"colorize {name}")
        out[name] = (model, params)
    return out


# ---------------------------------------------------------------------------- evaluation
def colourings(model, params, gray, key, num_samples, chunk: int = 500):
    """[N, B, H, W, 3] colourings of gray [B, H, W, 1] (chroma = the likelihood mean)."""
    from vae_jax.models import likelihood_of

    lik = likelihood_of(model)
    out = []
    for i in range(0, len(gray), chunk):
        g = jnp.asarray(gray[i:i + chunk])
        chroma = lik.mean(cvae_lib.sample(model, params, g, jax.random.fold_in(key, i), num_samples,
                                          output_fn=scale_by_gray))
        out.append(np.asarray(from_gray_chroma(g[None], chroma)))
    return np.concatenate(out, axis=1)


def estimated_colour(rgb, gray, lum):
    """Least-squares colour c of rgb ≈ t·c with t = gray / lum (one colour per image): [..., 3]."""
    t = gray[..., 0] / lum
    num = np.sum(rgb * t[..., None], axis=(-3, -2))
    den = np.sum(t ** 2, axis=(-2, -1))[..., None]
    return num / np.maximum(den, 1e-8)


def measure(samples, truth, gray, pal=None, lum=None, true_index=None, tolerance=0.1):
    """Metrics of [N, B, H, W, 3] samples against truth [B, H, W, 3]."""
    n = len(samples)
    per = np.mean((samples - truth[None]) ** 2, axis=(2, 3, 4))  # [N, B]
    out = {"best_of_n_mse": float(per.min(0).mean()), "mean_mse": float(per.mean()),
           "best_of_n_psnr": float(im.psnr(per.min(0)).mean()),
           "diversity": im.pairwise_diversity(samples),
           "colourfulness": float(im.colourfulness(samples.reshape((-1,) + samples.shape[2:])).mean()),
           "luminance_max_abs_error": float(np.max(np.abs(np.asarray(luminance(jnp.asarray(samples))) - gray[None, ..., 0]))),
           "num_samples": n}
    if pal is not None:
        col = estimated_colour(samples, gray[None], lum)  # [N, B, 3]
        dist = np.linalg.norm(col[:, :, None, :] - pal[None, None], axis=-1)  # [N, B, K]
        nearest = dist.argmin(-1)
        in_palette = dist.min(-1) < tolerance
        out["palette_fraction"] = float(in_palette.mean())
        out["true_colour_fraction"] = float((in_palette & (nearest == true_index[None])).mean())
        out["true_colour_in_any_sample"] = float((in_palette & (nearest == true_index[None])).any(0).mean())
    return out


# ---------------------------------------------------------------------------- the mode
def run_colorize(config, workdir: str) -> dict:
    """``--mode=colorize``: trains (or reuses) the CVAE and the regressor described by ``config``,
    measures both on the test set and writes colorize.json, colorize.md, colorize.png, report.html."""
    from vae_jax import config as config_lib
    from vae_jax.errors import ConfigError
    import vae_jax.training.run_meta as run_meta
    from vae_jax import data as data_lib

    config_lib.validate(config)
    ds = data_lib.load(config.data)
    t = config.tasks.colorize
    if ds.image_shape[-1] not in (1, 3):
        raise ConfigError(f"data.name: colorization needs gray (1 channel) or RGB images, "
                                            f"got {ds.image_shape[-1]} channels")
    with run_meta.open_workdir(workdir, config, ds.meta):
        models = train_models(config, ds, workdir)
    x, _ = common.eval_split(ds, config.tasks)
    key = jax.random.PRNGKey(config.seed + 777)
    gray_data = ds.image_shape[-1] == 1
    pal = palette(t.palette_size, t.luminance) if gray_data else None
    truth, idx = colourize_batch(jnp.asarray(x), jax.random.fold_in(key, 0),
                                 pal if pal is not None else np.zeros((1, 3), np.float32))
    truth, idx = np.asarray(truth), np.asarray(idx)
    gray = np.asarray(luminance(jnp.asarray(truth)))[..., None]
    results, samples = {}, {}
    # The reference the samples' colourfulness is read against (the gray input's is 0).
    results["truth"] = {"colourfulness": float(im.colourfulness(truth).mean())}
    for i, (name, (model, params)) in enumerate(models.items()):
        samples[name] = colourings(model, params, gray, jax.random.fold_in(key, 1 + i), t.num_samples)
        results[name] = measure(samples[name], truth, gray, pal, t.luminance, idx, t.palette_tolerance)
        print(f"colorize {name}: " + ", ".join(f"{k} {v:.4f}" for k, v in results[name].items()
                                               if isinstance(v, float)), flush=True)
    out = {"methods": results, "num_images": len(x), "data": ds.meta.get("source"),
           "palette": None if pal is None else pal.tolist(), "settings": t.to_dict()}
    common.save_json(workdir, "colorize.json", out)
    cols = ["method", "best_of_n_mse", "best_of_n_psnr", "mean_mse", "diversity", "colourfulness",
            "palette_fraction", "true_colour_fraction", "true_colour_in_any_sample", "luminance_max_abs_error"]
    if pal is None:  # RGB data: no palette, so no palette columns
        cols = [c for c in cols if "palette" not in c and "true_colour" not in c]
    with open(os.path.join(workdir, "colorize.md"), "w") as f:
        f.write(f"{len(x)} test images, {t.num_samples} samples each; colourfulness: Hasler & Süsstrunk "
                "(2003), 0-255 scale, mean over images (the truth row: the test images themselves).\n\n"
                + common.markdown_table([dict(method=k, **v) for k, v in results.items()], cols))
    k = t.grid_images
    columns = [np.repeat(gray[:k], 3, -1), truth[:k], samples["regressor"][0, :k]]
    labels = ["gray input", "truth", "regressor"]
    for s in range(min(t.num_samples, 6)):
        columns.append(samples["cvae"][s, :k])
        labels.append(f"cvae {s + 1}")
    common.save_labeled_grid(os.path.join(workdir, "colorize.png"), columns, labels,
                             title="colorization: same gray input, samples of z")
    common.finish(workdir)
    print(f"colorize: {os.path.abspath(workdir)}/colorize.json, colorize.md, colorize.png", flush=True)
    return out
