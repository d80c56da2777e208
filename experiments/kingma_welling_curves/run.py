"""Kingma & Welling (2014) Fig. 2 style: variational lower bound (train and test, nats per image)
vs number of training samples seen, one curve per latent size, from a configs/kingma_welling.py
sweep. The sweep runs first (``python -m vae_jax.sweeps``; finished points are skipped), then the
curves and table are written to --out (default: this folder's cpu/ for ':cpu', gpu_h100/ for the
full 100-epoch config).

    python experiments/kingma_welling_curves/run.py --data_dir ../shared/data/mnist [--config configs/kingma_welling.py:cpu]
        [--workdir W] [--out O] [--skip_sweep] [--config.<field>=<value> ...]
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402
from vae_jax.report import html as report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = _shared.parser("kingma_welling_curves", __doc__)
    p.add_argument("--config", default="configs/kingma_welling.py:cpu",
                   help="sweep config[:variant]: ':cpu' 10 epochs per point, none 100 (see the file)")
    p.add_argument("--skip_sweep", action="store_true", help="only plot an existing sweep in --workdir")
    variant = lambda a: a.config.partition(":")[2] or "full"  # noqa: E731
    args = _shared.parse(p, overrides=True, default_workdir=lambda a: os.path.join(
        _shared.REPO, "runs", "experiments", "kingma_welling_curves", variant(a)),
        default_out=lambda a: os.path.join(HERE, {"cpu": "cpu", "full": "gpu_h100"}.get(variant(a), variant(a))))
    if not args.skip_sweep:  # finished points are skipped
        _shared.cli("vae_jax.sweeps", f"--config={args.config}", f"--workdir={args.workdir}",
                    f"--config.data.dir={args.data_dir}", *args.overrides)
    spec = json.load(open(os.path.join(args.workdir, "sweep.json")))
    plt = report._plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    table = {}
    for i, p in enumerate(spec["points"]):
        d = os.path.join(args.workdir, "points", p["name"])
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
    fig.savefig(os.path.join(args.out, "lower_bound_vs_samples.png"), dpi=90)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(table, f, indent=1)
    lines = ["| N_z | epochs | samples seen | train L | test L | test KL | active units |",
             "|---|---|---|---|---|---|---|"]
    for nz, r in table.items():
        lines.append(f"| {nz} | {r['epochs']} | {r['samples_seen']:.2e} | {r['train_lower_bound']:.2f} | "
                     f"{r['test_lower_bound']:.2f} | {r['test_kl'] if r['test_kl'] is None else round(r['test_kl'], 2)} | "
                     f"{r['active_units']} |")
    open(os.path.join(args.out, "results.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
