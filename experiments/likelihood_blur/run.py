"""Does the likelihood make VAE images blurry? The same VAE under four likelihoods, measured.

    python experiments/likelihood_blur/run.py --data_dir ../shared/data/mnist

Trains one MLP VAE (784-256-20) per likelihood: Gaussian with fixed σ = 1 (≙ MSE), Gaussian with a
learned σ, Bernoulli (dynamically binarized data) and continuous Bernoulli (grey-scale data).
For test reconstructions and prior samples it measures sharpness relative to the test images
(mean image-gradient magnitude, variance of the Laplacian) and the Fréchet distance of samples on
the features of the MNIST classifier in vae_jax/evaluation/classifier.py; writes side-by-side grids
(reconstructions.png, samples.png), results.json / results.md and the README table.
"""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402
from vae_jax import data as data_lib, models  # noqa: E402
import vae_jax.evaluation.classifier as clf_lib  # noqa: E402
import vae_jax.evaluation.fid as fid  # noqa: E402
from vae_jax.report.html import _plt, image_grid  # noqa: E402
import vae_jax.training.trainer as trainer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HIDDEN, LATENT = (256,), 20
LIKELIHOODS = {  # name -> (label, data.binarization)
    "gaussian": ("Gaussian σ=1 (MSE)", "none"),
    "gaussian_learned": ("Gaussian, learned σ", "none"),
    "bernoulli": ("Bernoulli (binarized data)", "dynamic"),
    "continuous_bernoulli": ("continuous Bernoulli", "none"),
}
N_IMAGES = 5000  # reconstructions / samples measured (and FD set size)
N_SHOW = 10
# The FD feature extractor: vae_jax/evaluation/classifier.py's CNN, made smaller and trained on fewer images
# than its default so that it trains in minutes on a shared 2-core CPU (cached after the first run).
CLF_SPEC = dict(channels=16, features=64, epochs=2)
CLF_TRAIN_IMAGES = 10000


def gradient_magnitude(x):
    """Mean |∇x| per image (forward differences), x [N, H, W, 1] in [0, 1]."""
    x = np.asarray(x, np.float64)[..., 0]
    gx, gy = x[:, :, 1:] - x[:, :, :-1], x[:, 1:, :] - x[:, :-1, :]
    return np.mean(np.sqrt(gx[:, :-1, :] ** 2 + gy[:, :, :-1] ** 2), axis=(1, 2))


def laplacian_variance(x):
    """Variance of the 4-neighbour Laplacian per image (a standard focus / blur measure)."""
    x = np.asarray(x, np.float64)[..., 0]
    lap = x[:, 1:-1, :-2] + x[:, 1:-1, 2:] + x[:, :-2, 1:-1] + x[:, 2:, 1:-1] - 4 * x[:, 1:-1, 1:-1]
    return lap.reshape(len(x), -1).var(-1)


def sharpness(images, reference):
    return {"grad": float(gradient_magnitude(images).mean() / gradient_magnitude(reference).mean()),
            "lapvar": float(laplacian_variance(images).mean() / laplacian_variance(reference).mean())}


def main():
    args = _shared.parse(_shared.parser("likelihood_blur", __doc__, epochs=3))
    rows, recon_show, sample_show, ds, clf = [], [], [], None, None
    for lik, (label, binarization) in LIKELIHOODS.items():
        cfg = _shared.load_config("vae_mnist.py", {
            "model.likelihood": lik, "data.binarization": binarization, "model.latent_dim": LATENT,
            "model.encoder_hidden": HIDDEN, "model.decoder_hidden": HIDDEN}, args)
        workdir = os.path.join(args.workdir, lik)
        print(f"== {label}: {workdir}", flush=True)
        m = _shared.train_point(cfg, workdir)
        if ds is None:  # grey-scale test images: the reference every model is compared with
            ds = data_lib.load(_grey(cfg.data))
            x_ref = ds.test_images[:N_IMAGES].astype(np.float32) / 255.0
            clf = clf_lib.get_classifier(_first_train_images(ds, CLF_TRAIN_IMAGES), clf_lib.ClassifierSpec(**CLF_SPEC))
            floor = fid.real_data_floor(clf, ds.train_images, ds.test_images, min(N_IMAGES, len(ds.test_images)))
        model, params, _ = _shared.load_trained(workdir)
        key = trainer.split_keys(cfg.seed)["eval"]
        # Inputs as the model was trained on them: binarized (one fixed draw) for Bernoulli.
        x_in = data_lib.to_float(jnp.asarray(ds.test_images[:N_IMAGES]), binarization, key)
        recon = np.asarray(jax.jit(lambda p, v: models.reconstruct(model, p, v))(params, x_in))
        samples = np.asarray(jax.jit(lambda p, k: models.sample(model, p, k, len(x_ref)))(params, key))
        recon, samples = np.clip(recon, 0, 1), np.clip(samples, 0, 1)
        rs, ss = sharpness(recon, x_ref), sharpness(samples, x_ref)
        rows.append({"likelihood": label, "neg_elbo": m["neg_elbo"], "recon_mse": float(np.mean((recon - x_ref) ** 2)),
                     "recon_grad": rs["grad"], "recon_lapvar": rs["lapvar"],
                     "sample_grad": ss["grad"], "sample_lapvar": ss["lapvar"],
                     "sample_fd": fid.fid(clf, samples, x_ref), "active_units": m.get("active_units"),
                     "train_seconds": m["train_seconds"]})
        recon_show.append(recon[:N_SHOW])
        sample_show.append(samples[:N_SHOW])
        print(rows[-1], flush=True)
    out = args.out
    labels = ["test data"] + [lab for lab, _ in LIKELIHOODS.values()]
    _grid_figure(_plt(), image_grid, [x_ref[:N_SHOW]] + recon_show, labels, "reconstructions of test digits",
                 os.path.join(out, "reconstructions.png"))
    _grid_figure(_plt(), image_grid, [x_ref[N_SHOW:2 * N_SHOW]] + sample_show,
                 ["test data"] + labels[1:], "samples: mean of p(x|z), z ~ N(0, I)", os.path.join(out, "samples.png"))
    columns = [("likelihood", "likelihood", "s"), ("recon_mse", "recon. MSE vs grey test", ".4f"),
               ("recon_grad", "recon. gradient ratio", ".2f"), ("recon_lapvar", "recon. Laplacian-var ratio", ".2f"),
               ("sample_grad", "sample gradient ratio", ".2f"), ("sample_lapvar", "sample Laplacian-var ratio", ".2f"),
               ("sample_fd", f"sample FD ({N_IMAGES} vs {N_IMAGES} test)", ".2f"),
               ("active_units", f"active units (of {LATENT})", "d")]
    table = _shared.markdown_table(rows, columns)
    table += (f"\n\nRatios are the mean over images of the measure on model images divided by the same on the "
              f"grey-scale test images (1 = as sharp as the data). FD real-data floor (first {N_IMAGES} training "
              f"vs first {N_IMAGES} test images): {floor:.2f}; classifier test accuracy {clf.test_accuracy:.4f}.")
    protocol = {"command": "python experiments/likelihood_blur/run.py --data_dir ../shared/data/mnist",
                "data": "MNIST IDX, 60k train / 10k test" if not args.tiny else "bundled tiny",
                "model": f"MLP VAE 784-{HIDDEN[0]}-{LATENT}-{HIDDEN[0]}-784, ReLU",
                "train": f"{args.epochs} epochs, batch 128, Adam 1e-3, seed 0",
                "measured_on": f"first {N_IMAGES} test images (reconstructions: posterior mean → mean of p(x|z)); "
                               f"{N_IMAGES} prior samples (mean of p(x|z)); images clipped to [0, 1]",
                "fd": "Fréchet distance on the penultimate features of vae_jax.evaluation.classifier's CNN (not Inception), "
                      f"spec {CLF_SPEC}, trained on the first {CLF_TRAIN_IMAGES} training images",
                "fd_floor": floor, "classifier_test_accuracy": clf.test_accuracy,
                "jax_devices": [str(d) for d in jax.devices()]}
    _shared.write_results(HERE, args, rows, table, protocol)


def _first_train_images(ds, n):
    import dataclasses
    return dataclasses.replace(ds, train_images=ds.train_images[:n], train_labels=ds.train_labels[:n])


def _grey(data_cfg):
    c = data_cfg.copy_and_resolve_references()
    c.binarization = "none"
    return c


def _grid_figure(plt, image_grid, rows, labels, title, path):
    fig, axes = plt.subplots(len(rows), 1, figsize=(N_SHOW * 0.6 + 2.2, len(rows) * 0.75))
    for ax, imgs, lab in zip(axes, rows, labels):
        ax.imshow(image_grid(np.asarray(imgs), ncol=N_SHOW)[..., 0], cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(lab, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
