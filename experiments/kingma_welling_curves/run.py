"""Kingma & Welling (2014) Fig. 2 style: variational lower bound (train and test, nats per image)
vs number of training samples seen, one curve per latent size, from a configs/kingma_welling.py
sweep. With --config the sweep is run first (finished points are skipped).

    python experiments/kingma_welling_curves/run.py --config=configs/kingma_welling.py:cpu \
        --workdir=runs/kingma_welling_cpu --config.data.dir=/path/to/mnist --out=experiments/kingma_welling_curves/cpu
"""
from __future__ import annotations

import json
import os

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "configs/kingma_welling.py[:variant] (optional)",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "the sweep directory")
flags.DEFINE_string("out", None, "folder for results.json, results.md and the plot")
FLAGS = flags.FLAGS


def main(argv):
    import numpy as np

    from vae_jax.report import html as report
    from vae_jax.sweeps import runner as sweep

    if FLAGS.config is not None:
        sweep.run(config_flags.get_config_filename(FLAGS["config"]), FLAGS.config, FLAGS.workdir)
    spec = json.load(open(os.path.join(FLAGS.workdir, "sweep.json")))
    os.makedirs(FLAGS.out, exist_ok=True)
    plt = report._plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    table = {}
    for i, p in enumerate(spec["points"]):
        d = os.path.join(FLAGS.workdir, "points", p["name"])
        rows = report.read_metrics(d)
        if not rows:
            continue
        cfg = json.load(open(os.path.join(d, "config.json")))
        bs = cfg["train"]["batch_size"]
        nz = p["overrides"]["model.latent_dim"]
        color = plt.cm.viridis(i / max(1, len(spec["points"]) - 1))
        seen = np.asarray([r["step"] * bs for r in rows])
        ax.plot(seen, [-r["train/neg_elbo"] for r in rows], color=color, label=f"$N_z$={nz} train")
        test = [(r["step"] * bs, -r["test/neg_elbo"]) for r in rows if "test/neg_elbo" in r]
        ax.plot(*zip(*test), color=color, ls="--", label=f"$N_z$={nz} test")
        last = rows[-1]
        table[str(nz)] = {"samples_seen": int(last["step"] * bs), "epochs": last["epoch"],
                          "train_lower_bound": -last["train/neg_elbo"],
                          "test_lower_bound": -last.get("test/neg_elbo", float("nan")),
                          "test_kl": last.get("test/kl"), "active_units": last.get("test/active_units")}
    ax.set_xscale("log")
    ax.set_xlabel("training samples seen")
    ax.set_ylabel("lower bound L (nats per image)")
    ax.set_title("MNIST, 500 hidden units (AEVB Fig. 2 layout)", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(FLAGS.out, "lower_bound_vs_samples.png"), dpi=90)
    with open(os.path.join(FLAGS.out, "results.json"), "w") as f:
        json.dump(table, f, indent=1)
    lines = ["| N_z | epochs | samples seen | train L | test L | test KL | active units |",
             "|---|---|---|---|---|---|---|"]
    for nz, r in table.items():
        lines.append(f"| {nz} | {r['epochs']} | {r['samples_seen']:.2e} | {r['train_lower_bound']:.2f} | "
                     f"{r['test_lower_bound']:.2f} | {r['test_kl'] if r['test_kl'] is None else round(r['test_kl'], 2)} | "
                     f"{r['active_units']} |")
    open(os.path.join(FLAGS.out, "results.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    flags.mark_flags_as_required(["workdir", "out"])
    app.run(main)
