"""Posterior collapse vs β, with and without KL warm-up / free bits, on MNIST.

    python experiments/posterior_collapse/run.py --data_dir ../shared/data/mnist

Trains a 784-256-32 MLP VAE (Bernoulli, dynamic binarization) for every β ∈ {0.5, 1, 2, 4} ×
{plain ELBO, linear KL warm-up, free bits}; reports active units, rate, distortion, −ELBO and an
IWAE NLL estimate on the test set; writes results.json / results.md, kl_per_dim.png and the README
table. Finished runs under --runs are re-used (only evaluated again).
"""
from __future__ import annotations

import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402
import vae_jax.evaluation.iwae as iwae  # noqa: E402
from vae_jax.report.html import _plt  # noqa: E402
import vae_jax.training.trainer as trainer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BETAS = (0.5, 1.0, 2.0, 4.0)
LATENT = 32
FREE_BITS = 0.5          # nats per latent dimension
WARMUP_EPOCHS = 1        # KL weight rises linearly over the first epoch
IWAE_K, IWAE_IMAGES = 100, 1000
KL_UNIT_THRESHOLD = 0.1  # nats: a unit whose test KL is below this carries (almost) no information
HIDDEN = (256,)


def variants(steps_per_epoch: int):
    return {
        "plain": {"objective.name": "elbo"},
        "warm-up": {"objective.name": "elbo_warmup", "objective.warmup_steps": WARMUP_EPOCHS * steps_per_epoch},
        "free bits": {"objective.name": "elbo_free_bits", "objective.free_bits": FREE_BITS},
    }


def main():
    p = _shared.parser("posterior_collapse", __doc__, epochs=3)
    args = _shared.parse(p)

    n_train = 512 if args.tiny else 60000
    steps = n_train // (64 if args.tiny else 128)
    rows = []
    for beta in BETAS:
        for name, overrides in variants(steps).items():
            cfg = _shared.load_config("vae_mnist.py", dict(overrides, **{
                "model.latent_dim": LATENT, "objective.kl_weight": beta,
                "model.encoder_hidden": HIDDEN, "model.decoder_hidden": HIDDEN}), args)
            workdir = os.path.join(args.workdir, f"beta{beta}_{name.replace(' ', '_')}")
            print(f"== β={beta} {name}: {workdir}", flush=True)
            m = _shared.train_point(cfg, workdir)
            model, params, ds = _shared.load_trained(workdir)
            key = trainer.split_keys(cfg.seed)["eval"]
            n_iw = 100 if args.tiny else IWAE_IMAGES
            x = iwae.evaluation_inputs(ds.test_images[:n_iw], key, cfg.data.binarization, 100)
            nll = iwae.iwae_dataset(model, params, x, key, num_samples=5 if args.tiny else IWAE_K,
                                    batch_size=100, progress=False)
            rows.append({"beta": beta, "variant": name, "active_units": m["active_units"],
                         "rate": m["rate"], "distortion": m["distortion"], "neg_elbo": m["neg_elbo"],
                         "nll_iwae": nll["nll_iwae"], "neg_elbo_subset": nll["neg_elbo_iwae_samples"],
                         "units_kl_above": int(np.sum(np.asarray(m["kl_per_dim"]) > KL_UNIT_THRESHOLD)),
                         "kl_per_dim": m["kl_per_dim"], "train_seconds": m["train_seconds"]})
    columns = [("beta", "β", "g"), ("variant", "objective", "s"), ("active_units", f"active units (of {LATENT})", "d"),
               ("units_kl_above", f"units with KL > {KL_UNIT_THRESHOLD} nats", "d"),
               ("rate", "rate KL (nats)", ".2f"), ("distortion", "distortion (nats)", ".2f"),
               ("neg_elbo", "−ELBO (nats)", ".2f"),
               ("nll_iwae", f"NLL ≈ −L_{IWAE_K} (nats)" if not args.tiny else "NLL ≈ −L_5", ".2f")]
    table = _shared.markdown_table(rows, columns)
    out = args.out
    plot_kl_per_dim(rows, os.path.join(out, "kl_per_dim.png"))
    protocol = {"command": "python experiments/posterior_collapse/run.py --data_dir ../shared/data/mnist",
                "data": "MNIST IDX, 60k train / 10k test, dynamic binarization" if not args.tiny else "bundled tiny",
                "model": f"MLP VAE 784-{HIDDEN[0]}-{LATENT}-{HIDDEN[0]}-784, ReLU, Bernoulli likelihood",
                "train": f"{args.epochs} epochs, batch 128, Adam 1e-3, seed 0",
                "warm-up": f"linear over the first {WARMUP_EPOCHS} epochs ({WARMUP_EPOCHS * steps} steps)",
                "free_bits": f"λ = {FREE_BITS} nats per dimension on the batch-mean KL",
                "metrics": "rate / distortion / −ELBO / active units (Cov_x E_q[z_u] > 0.01) on the full test "
                           f"set (one binarization draw, one z per x); NLL = −L_k, k={IWAE_K}, on the first "
                           f"{IWAE_IMAGES} test images",
                "jax_devices": [str(d) for d in jax.devices()]}
    _shared.write_results(HERE, args, rows, table, protocol)


def plot_kl_per_dim(rows, path):
    plt = _plt()
    fig, axes = plt.subplots(1, len(BETAS), figsize=(3.2 * len(BETAS), 2.8), sharey=True)
    for ax, beta in zip(axes, BETAS):
        for r in rows:
            if r["beta"] == beta:
                ax.plot(np.sort(r["kl_per_dim"])[::-1], marker=".", label=r["variant"])
        ax.axhline(FREE_BITS, color="gray", lw=0.5, ls=":")
        ax.set_title(f"β = {beta}")
        ax.set_xlabel("latent unit (sorted)")
    axes[0].set_ylabel("test KL per unit (nats)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
