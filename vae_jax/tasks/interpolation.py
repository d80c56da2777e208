"""Latent interpolation between encoded test images, and how smooth and realistic the paths are.

Paths between pairs of test images with different labels, ``steps + 1`` frames each:
  * ``<kind>_linear``  z_t = (1 − t)·z_0 + t·z_1 between the encodings (posterior means for a VAE),
  * ``<kind>_slerp``   spherical interpolation (Shoemake): along the great circle between the codes,
                       with the norm interpolated linearly, so frames keep the typical norm of
                       Gaussian samples instead of cutting through the low-norm centre,
  * ``pixel``          x_t = (1 − t)·x_0 + t·x_1 (cross-fading the images themselves),
and the same latent paths of any other trained run named in ``tasks.interpolate.compare_workdirs``
(e.g. a plain AE). Decoded frames are likelihood means.

Measures, averaged over pairs (pixel distances are L2 over the image in [0, 1]):
  * ``path_length_ratio``  Σ_t ‖x_{t+1} − x_t‖ / ‖x_T − x_0‖; 1 is a straight line in pixel space
                           (pixel blending is exactly 1, so on its own it rewards cross-fades);
  * ``step_uniformity``    max step / mean step; 1 is constant speed, large means a jump;
  * ``nn_distance``        distance of the interior frames to their nearest training image: how far
                           the path leaves the data (a cross-fade of two digits is far from any digit);
  * ``classifier_confidence`` mean max-softmax of a digit classifier on the interior frames;
  * ``label_changes``      how often the classifier's label changes along the path (1 is a single
                           clean switch between the two endpoint digits).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

import vae_jax.report.html as report
import vae_jax.tasks.common as common


def lerp(z0, z1, ts):
    """[B, n], [B, n], [T] -> [B, T, n]."""
    ts = jnp.asarray(ts)[None, :, None]
    return (1 - ts) * z0[:, None] + ts * z1[:, None]


def slerp(z0, z1, ts, eps: float = 1e-6):
    """Spherical interpolation of directions with the norm interpolated linearly: [B, T, n]."""
    ts = jnp.asarray(ts)[None, :, None]
    n0 = jnp.linalg.norm(z0, axis=-1, keepdims=True)[:, None]
    n1 = jnp.linalg.norm(z1, axis=-1, keepdims=True)[:, None]
    u0, u1 = z0[:, None] / jnp.maximum(n0, eps), z1[:, None] / jnp.maximum(n1, eps)
    cos = jnp.clip(jnp.sum(u0 * u1, -1, keepdims=True), -1.0, 1.0)
    omega = jnp.arccos(cos)
    so = jnp.sin(omega)
    safe = so > eps
    w0 = jnp.where(safe, jnp.sin((1 - ts) * omega) / jnp.where(safe, so, 1.0), 1 - ts)
    w1 = jnp.where(safe, jnp.sin(ts * omega) / jnp.where(safe, so, 1.0), ts)
    direction = w0 * u0 + w1 * u1
    return direction * ((1 - ts) * n0 + ts * n1)


PATHS = {"linear": lerp, "slerp": slerp}


def decode_path(run, x0, x1, path: str, ts):
    z0 = common.encode_mean(run.model, run.params, jnp.asarray(x0))
    z1 = common.encode_mean(run.model, run.params, jnp.asarray(x1))
    zs = PATHS[path](z0, z1, ts)
    frames = common.batched(lambda z: common.decode_mean(run.model, run.params, jnp.asarray(z)),
                            np.asarray(zs.reshape(-1, zs.shape[-1])))
    return frames.reshape(zs.shape[:2] + frames.shape[1:])


def pixel_path(x0, x1, ts):
    ts = np.asarray(ts)[None, :, None, None, None]
    return (1 - ts) * x0[:, None] + ts * x1[:, None]


def nearest_distance(frames, reference, chunk: int = 512):
    """L2 distance of each frame [M, D] to its nearest reference image [R, D]."""
    r = jnp.asarray(reference)
    r2 = jnp.sum(r ** 2, -1)

    @jax.jit
    def dist(f):
        d2 = jnp.sum(f ** 2, -1, keepdims=True) - 2 * f @ r.T + r2[None]
        return jnp.sqrt(jnp.maximum(d2.min(-1), 0.0))

    return common.batched(lambda f: dist(jnp.asarray(f)), np.asarray(frames), batch_size=chunk)


def path_metrics(frames, classifier, reference) -> dict[str, float]:
    """``frames`` [B, T, H, W, C] -> the measures in the module docstring (means over pairs)."""
    b, t = frames.shape[:2]
    flat = frames.reshape(b, t, -1)
    steps = np.linalg.norm(np.diff(flat, axis=1), axis=-1)  # [B, T-1]
    chord = np.linalg.norm(flat[:, -1] - flat[:, 0], axis=-1)
    interior = flat[:, 1:-1].reshape(-1, flat.shape[-1])
    probs = classifier.probs(frames.reshape((-1,) + frames.shape[2:])).reshape(b, t, -1)
    labels = probs.argmax(-1)
    return {
        "path_length_ratio": float(np.mean(steps.sum(1) / np.maximum(chord, 1e-8))),
        "step_uniformity": float(np.mean(steps.max(1) / np.maximum(steps.mean(1), 1e-8))),
        "nn_distance": float(np.mean(nearest_distance(interior, reference))),
        "classifier_confidence": float(np.mean(probs[:, 1:-1].max(-1))),
        "label_changes": float(np.mean(np.sum(labels[:, 1:] != labels[:, :-1], axis=1))),
    }


def choose_pairs(labels, num_pairs: int, seed: int):
    """Index pairs (a, b) of test images with different labels, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(labels), 4 * num_pairs)
    b = rng.integers(0, len(labels), 4 * num_pairs)
    keep = labels[a] != labels[b]
    return a[keep][:num_pairs], b[keep][:num_pairs]


def run_interpolate(config, workdir: str) -> dict:
    """``--mode=interpolate``: paths of the run in ``workdir`` (and of the compare runs) against
    pixel blending; writes interpolate.json, interpolate.md, interpolate_<path>.png, report.html."""
    run = common.load_run(workdir, common.data_dir_of(config))
    tasks = common.tasks_of(config, run)
    ti = tasks.interpolate
    x, labels = common.eval_split(run.ds, tasks)
    ia, ib = choose_pairs(labels, ti.num_pairs, run.config.seed)
    x0, x1 = x[ia], x[ib]
    ts = np.linspace(0.0, 1.0, ti.steps + 1)
    classifier = common.digit_classifier(run.ds, workdir, run.config.seed, tasks.get("classifier", "auto"))
    reference = run.ds.train_images[: ti.nn_reference].reshape(-1, int(np.prod(run.ds.image_shape))) / 255.0

    runs = [("", run)]
    for other in filter(None, (w.strip() for w in ti.compare_workdirs.split(","))):
        runs.append((os.path.basename(os.path.normpath(other)), common.load_run(other, common.data_dir_of(config), ds=run.ds)))
    paths = {}
    for tag, r in runs:
        for p in PATHS:
            paths[f"{r.kind}_{p}" + (f" ({tag})" if tag else "")] = decode_path(r, x0, x1, p, ts)
    paths["pixel"] = pixel_path(x0, x1, ts)

    results, rows = {}, []
    k = min(ti.grid_pairs, len(ia))
    for name, frames in paths.items():
        results[name] = path_metrics(np.asarray(frames), classifier, reference)
        rows.append(dict(method=name, **results[name]))
        fname = "interpolate_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in name).strip("_") + ".png"
        report.save_grid(os.path.join(workdir, fname),
                         np.asarray(frames[:k]).reshape((-1,) + frames.shape[2:]), ncol=len(ts))
        print(f"interpolate {name}: " + ", ".join(f"{m} {v:.3f}" for m, v in results[name].items()), flush=True)
    out = {"paths": results, "num_pairs": int(len(ia)), "frames": int(len(ts)),
           "classifier": classifier.source, "classifier_clean_accuracy": classifier.clean_accuracy,
           "runs": [r.workdir for _, r in runs]}
    common.save_json(workdir, "interpolate.json", out)
    with open(os.path.join(workdir, "interpolate.md"), "w") as f:
        f.write(f"{len(ia)} test pairs with different labels, {len(ts)} frames per path.\n\n"
                + common.markdown_table(rows, ["method", "path_length_ratio", "step_uniformity", "nn_distance",
                                               "classifier_confidence", "label_changes"], "{:.3f}"))
    common.finish(workdir)
    print(f"interpolate: {os.path.abspath(workdir)}/interpolate.json, interpolate.md, interpolate_*.png", flush=True)
    return out
