"""Does the likelihood make VAE images blurry — on colour photographs? One conv VAE, five likelihoods.

    python experiments/likelihood_blur_colour/run.py            # offline: data.source='photos'

Trains the same small conv VAE (configs/vae_photos.py's net, shrunk) on 32×32×3 patches of the
photographs scikit-learn / scikit-image ship, once per likelihood: Gaussian σ = 1 (≙ MSE),
Gaussian with a learned σ, continuous Bernoulli, dequantized Gaussian (learned per-pixel σ on
(v + u)/256) and the discretized mixture of logistics. The plain Bernoulli cross-entropy on [0, 1]
values is not trained: the package refuses it (it is not a density on [0, 1]; its normalized form is
the continuous Bernoulli, which is in the table). Measures test bits/dim, the sharpness of prior
samples and test reconstructions (variance of the Laplacian of the luminance, as a ratio to the
test images), the Fréchet distance of prior samples to the test patches and writes sample /
reconstruction grids, results.json / results.md and the README table.

The Fréchet distance's features: the photo set has no class labels, so the evaluation CNN
(vae_jax/evaluation/classifier.py) learns which training photo a patch was cut from (5 photos,
each at 3 scales), on 90 % of the training patches (its accuracy is measured on the other 10 %).
Its penultimate features respond to colour, texture and scale — what blur changes — but they are
not Inception features and the test photos are never among its classes; the real-data floor
(training patches vs test patches, same count) is printed beside the scores.
"""
from __future__ import annotations

import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402
import vae_jax.evaluation.classifier as clf_lib  # noqa: E402
import vae_jax.evaluation.fid as fid  # noqa: E402
from vae_jax import config as config_lib, data as data_lib, models  # noqa: E402
from vae_jax.report.plots import _plt, image_grid  # noqa: E402
import vae_jax.training.trainer as trainer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LIKELIHOODS = {  # name -> (label, data.binarization, what its bits/dim are)
    "gaussian": ("Gaussian σ=1 (MSE)", "none", "density"),
    "gaussian_learned": ("Gaussian, learned σ", "none", "density"),
    "continuous_bernoulli": ("continuous Bernoulli", "none", "density"),
    "dequantized_gaussian": ("dequantized Gaussian", "dequantize", "bound"),
    "discretized_mix_logistic": ("discretized logistic mixture", "none", "bound"),
}
LOG2_255 = float(np.log2(255.0))
CLF_SPEC = dict(channels=16, features=64, epochs=8)
CLF_HELD_OUT = 0.1
N_SHOW = 10


def luminance(x):
    x = np.asarray(x, np.float64)
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114 if x.shape[-1] == 3 else x[..., 0]


def laplacian_variance(x):
    """Variance of the 4-neighbour Laplacian of the luminance, per image (a standard focus measure)."""
    y = luminance(x)
    lap = y[:, 1:-1, :-2] + y[:, 1:-1, 2:] + y[:, :-2, 1:-1] + y[:, 2:, 1:-1] - 4 * y[:, 1:-1, 1:-1]
    return lap.reshape(len(y), -1).var(-1)


def make_config(lik, binarization, args):
    c = config_lib.load_config_file(os.path.join(_shared.REPO, "configs", "vae_photos.py"), "tiny" if args.tiny else None)
    c.model.likelihood, c.data.binarization = lik, binarization
    if lik != "discretized_mix_logistic":
        c.model.num_mixtures = config_lib.base_config().model.num_mixtures  # read by the mixture only
    if not args.tiny:
        c.model.conv_channels, c.model.encoder_hidden, c.model.decoder_hidden = (16, 32), (128,), (128,)
        c.model.latent_dim = 16
        c.data.train_subset = args.train_subset
    c.train.epochs = 1 if args.tiny else args.epochs
    c.train.progress = c.train.tensorboard = False
    c.train.eval_every = c.train.checkpoint_every = c.train.epochs
    return c


def main():
    p = _shared.parser("likelihood_blur_colour", __doc__, epochs=8)
    p.add_argument("--train_subset", type=int, default=6540, help="training patches used (default 6540: all)")
    args = _shared.parse(p)
    t_start = time.perf_counter()
    rows, recon_show, sample_show, x_ref = [], [], [], None
    for lik, (label, binarization, kind) in LIKELIHOODS.items():
        cfg = make_config(lik, binarization, args)
        workdir = os.path.join(args.workdir, lik)
        print(f"== {label}: {workdir}", flush=True)
        m = _shared.train_point(cfg, workdir)
        model, params, ds = _shared.load_trained(workdir)
        if x_ref is None:
            x_ref = ds.test_images.astype(np.float32) / 255.0
            ref_lap = laplacian_variance(x_ref).mean()
            clf = clf_lib.get_classifier(_photo_source_task(ds), clf_lib.ClassifierSpec(**CLF_SPEC))
            floor = fid.real_data_floor(clf, ds.train_images, ds.test_images)
        key = trainer.split_keys(cfg.seed)["eval"]
        x_in = data_lib.to_float(jnp.asarray(ds.test_images), binarization, key)
        recon = np.clip(np.asarray(jax.jit(lambda q, v: models.reconstruct(model, q, v))(params, x_in)), 0, 1)
        samples = np.clip(np.asarray(jax.jit(lambda q, k: models.sample(model, q, k, len(x_ref)))(params, key)), 0, 1)
        bpd = m["bits_per_dim"]
        rows.append({"likelihood": label, "bits_per_dim": bpd, "kind": kind,
                     # A density on x = v/255, midpoint rule over a bin of width 1/255: −log₂ P(v) ≈ −log₂ p(x) + log₂ 255.
                     "bits_per_dim_8bit": bpd + LOG2_255 if kind == "density" else bpd,
                     "recon_mse": float(np.mean((recon - x_ref) ** 2)),
                     "recon_lapvar": float(laplacian_variance(recon).mean() / ref_lap),
                     "sample_lapvar": float(laplacian_variance(samples).mean() / ref_lap),
                     "sample_fd": fid.fid(clf, samples, x_ref), "recon_fd": fid.fid(clf, recon, x_ref),
                     "active_units": m.get("active_units"), "train_seconds": m["train_seconds"]})
        recon_show.append(recon[:N_SHOW])
        sample_show.append(samples[:N_SHOW])
        print(rows[-1], flush=True)
    labels = ["test data"] + [lab for lab, _, _ in LIKELIHOODS.values()]
    _grid_figure([x_ref[:N_SHOW]] + recon_show, labels, "reconstructions of test patches (mean of p(x|z) at z = E_q[z])",
                 os.path.join(args.out, "reconstructions.png"))
    _grid_figure([x_ref[N_SHOW:2 * N_SHOW]] + sample_show, labels, "samples: mean of p(x|z), z ~ N(0, I)",
                 os.path.join(args.out, "samples.png"))
    columns = [("likelihood", "likelihood", "s"), ("bits_per_dim", "test −ELBO bits/dim (as reported)", ".3f"),
               ("bits_per_dim_8bit", "≈ 8-bit bits/dim", ".3f"), ("recon_mse", "recon. MSE", ".4f"),
               ("recon_lapvar", "recon. Laplacian-var ratio", ".2f"),
               ("sample_lapvar", "sample Laplacian-var ratio", ".2f"),
               ("sample_fd", f"sample FD ({len(x_ref)} vs test)", ".2f"), ("recon_fd", "recon. FD", ".2f"),
               ("active_units", "active units", "d"),
               ("train_seconds", "train s", ".0f")]
    table = _shared.markdown_table(rows, columns)
    table += (f"\n\nbits/dim = −ELBO / (3072·ln 2) on the {len(x_ref)} test patches (two photos never seen in training). "
              "For the discretized mixture and the dequantized Gaussian it bounds the code length of the 8-bit "
              "pixels; for the three densities on x = v/255 it is −log₂ of a density, and the '≈ 8-bit' column "
              "adds log₂ 255 (midpoint rule over a bin), an approximation, not a bound. Laplacian-variance ratios "
              "are model images over test images (1 = as sharp as the data), on the luminance. "
              f"FD: Fréchet distance on the features of a CNN trained to tell the training photos apart "
              f"(held-out accuracy {clf.test_accuracy:.3f}); real-data floor (first {len(x_ref)} training "
              f"patches vs the {len(x_ref)} test patches): {floor:.2f}.")
    protocol = {"command": " ".join(["python experiments/likelihood_blur_colour/run.py"] + sys.argv[1:]),
                "data": f"data.source='photos' (32x32x3), first {args.train_subset} training patches, {len(x_ref)} test patches",
                "model": "conv VAE, conv (16, 32), dense 128, latent 16, ReLU, mixture K=5 (configs/vae_photos.py, shrunk)",
                "train": f"{args.epochs} epochs, batch 64, Adam 1e-3, seed 0",
                "fd": "Fréchet distance on the penultimate features of vae_jax.evaluation.classifier's CNN, "
                      f"spec {CLF_SPEC}, trained to tell the 5 training photos apart on {100 - 100 * CLF_HELD_OUT:.0f}% "
                      "of the training patches (not Inception)",
                "fd_floor": floor, "classifier_held_out_accuracy": clf.test_accuracy,
                "wall_seconds": time.perf_counter() - t_start, "jax_devices": [str(d) for d in jax.devices()]}
    _shared.write_results(HERE, args, rows, table, protocol)


def _photo_source_task(ds):
    """The classifier's task: which training photo a patch came from; its 'test' split is a
    held-out 10 % of the training patches (the test photos are not among its classes)."""
    import dataclasses
    n_held = int(len(ds.train_images) * CLF_HELD_OUT)
    return dataclasses.replace(ds, train_images=ds.train_images[n_held:], train_labels=ds.train_labels[n_held:],
                               test_images=ds.train_images[:n_held], test_labels=ds.train_labels[:n_held])


def _grid_figure(rows, labels, title, path):
    plt = _plt()
    fig, axes = plt.subplots(len(rows), 1, figsize=(N_SHOW * 0.7 + 2.6, len(rows) * 0.85))
    for ax, imgs, lab in zip(axes, rows, labels):
        ax.imshow(image_grid(np.asarray(imgs), ncol=N_SHOW))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(lab, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
