"""Linear AE vs PCA on full MNIST: principal angles and reconstruction error for n in {2, 10, 50}.

    python experiments/linear_ae_pca/run.py --data_dir ../shared/data/mnist [--kinds linear_ae,linear_ae_orth]
        [--workdir W] [--out O]

Each model is trained with the project trainer (configs/linear_ae_mnist.py, MSE; here by default
full-batch heavy-ball SGD, see the flags) into <workdir>/<kind>_n<n>/ (resumable), then compared
with the SVD PCA of the same 60,000 training images. Appends one JSON line per model to
--out/results.jsonl (a rerun of the same kind and n replaces its row) and rewrites results.md.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402
from vae_jax import config as config_lib, data as data_lib  # noqa: E402
import vae_jax.tasks.pca as pca_lib  # noqa: E402
import vae_jax.training.runs as runs  # noqa: E402

ROOT = _shared.REPO


def make_config(args, kind: str, n: int):
    c = config_lib.load_config_file(os.path.join(ROOT, "configs", "linear_ae_mnist.py"), "tiny" if args.tiny else None)
    if not args.tiny:
        c.data.dir = args.data_dir
    c.model.kind = kind
    c.model.latent_dim = n
    c.model.offset_init = args.offset_init if kind == "linear_ae_orth" else "zeros"
    c.optim.name = args.optimizer
    c.optim.learning_rate = args.lr
    if args.optimizer == "sgd":  # validation refuses a momentum that the optimizer does not read
        c.optim.momentum = args.momentum
    c.optim.stage_epochs = tuple(args.stage_epochs)
    c.optim.stage_decay = args.stage_decay
    c.train.epochs = int(sum(args.stage_epochs))
    # 0: the whole training set as one batch, so each epoch is one exact gradient step
    c.train.batch_size = args.batch_size or len(data_lib.load(c.data).train_images)
    c.train.eval_every = c.train.epochs
    c.train.checkpoint_every = c.train.epochs
    c.train.progress = False
    c.train.tensorboard = False
    c.report.enabled = False
    return c


def main():
    p = _shared.parser("linear_ae_pca", __doc__)
    p.add_argument("--kinds", default="linear_ae_orth,linear_ae")
    p.add_argument("--latents", default="2,10,50")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--offset_init", default="data_mean", choices=["zeros", "data_mean"],
                   help="linear_ae_orth: where b starts (U always starts random orthonormal)")
    p.add_argument("--lr", type=float, default=0.7)
    p.add_argument("--momentum", type=float, default=0.93, help="sgd only (heavy ball)")
    p.add_argument("--stage_epochs", type=int, nargs="+", default=[500],
                   help="epochs per learning-rate stage (sum = epochs)")
    p.add_argument("--stage_decay", type=float, default=1.0)
    p.add_argument("--batch_size", type=int, default=0, help="0: the whole training set (full-batch steps)")
    p.add_argument("--tiny", action="store_true", help="bundled data, few epochs (a smoke test)")
    p.add_argument("--tag", default="", help="suffix of the result files (runs of different kinds in parallel)")
    args = _shared.parse(p)

    rows_path = os.path.join(args.out, f"results{args.tag}.jsonl")
    pca, pca_seconds = None, None
    for kind in args.kinds.split(","):
        for n in [int(v) for v in args.latents.split(",")]:
            config = make_config(args, kind, n)
            workdir = os.path.join(args.workdir, f"{kind}_n{n}")
            t0 = time.perf_counter()
            runs.train_and_evaluate(config, workdir)
            train_seconds = time.perf_counter() - t0
            model, params, ds = _shared.load_trained(workdir)
            x = ds.train_images.astype(np.float32) / 255.0
            if pca is None:
                pca, pca_seconds = cached_pca(x, os.path.join(args.workdir, "pca.npz"))
            row = dict(pca_lib.compare(model, params, x, pca), kind=kind, epochs=config.train.epochs,
                       train_seconds=train_seconds, optimizer=args.optimizer, lr=args.lr,
                       offset_init=config.model.offset_init,
                       momentum=args.momentum if args.optimizer == "sgd" else None,
                       stage_epochs=list(args.stage_epochs), stage_decay=args.stage_decay,
                       batch_size=config.train.batch_size, pca_svd_seconds=pca_seconds)
            print(json.dumps(row), flush=True)
            with open(rows_path, "a") as f:   # one line per finished model: results survive a kill
                f.write(json.dumps(row) + "\n")
            write_table(rows_path, os.path.join(args.out, f"results{args.tag}.md"))


def cached_pca(x, path):
    """PCA of x by SVD, cached in ``path`` (the SVD of 60,000 × 784 is the slow part on 2 cores)."""
    if os.path.exists(path):
        z = np.load(path)
        if int(z["n"]) == len(x):
            return pca_lib.PCA(z["mean"], z["components"], z["eigenvalues"]), float(z["seconds"])
    t0 = time.perf_counter()
    pca = pca_lib.fit_pca(x)
    seconds = time.perf_counter() - t0
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, mean=pca.mean, components=pca.components, eigenvalues=pca.eigenvalues, n=len(x), seconds=seconds)
    return pca, seconds


def write_table(rows_path, md_path):
    rows = {}
    for line in open(rows_path):
        r = json.loads(line)
        rows[(r["kind"], r["latent_dim"])] = r          # a rerun replaces its earlier row
    lines = ["| model.kind | n | largest principal angle (rad) | mean angle (rad) | AE error Σ(x̂−x)² | "
             "PCA optimum Σ_{i>n} λ_i | AE / optimum − 1 | epochs | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows.values(), key=lambda r: (r["kind"] != "linear_ae_orth", r["latent_dim"])):
        lines.append(f"| {r['kind']} | {r['latent_dim']} | {r['max_principal_angle']:.2e} | "
                     f"{r['mean_principal_angle']:.2e} | {r['ae_sq_error']:.4f} | {r['pca_sq_error']:.4f} | "
                     f"{100 * r['excess_error_ratio']:+.1e}% | {r['epochs']} | {r['train_seconds']:.0f} |")
    with open(md_path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
