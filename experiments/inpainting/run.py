"""Regenerates this folder's results: trains the 784-500-20 Bernoulli VAE on full MNIST (unless
the workdir already holds it), trains the inpainting CVAE of the same sizes, runs every method on
every mask kind, and copies inpaint.json / inpaint.md / inpaint_*.png (and the VAE's eval.json as
vae_eval.json) to --out.

    python experiments/inpainting/run.py --data_dir ../shared/data/mnist [--workdir W] [--out O] [--config.<field>=<value> ...]

= python -m vae_jax.main --config=configs/cvae_inpaint_mnist.py --workdir=W --mode=inpaint
      --config.data.dir=DIR --config.train.progress=False --config.tasks.classifier=mlp
"""
from __future__ import annotations

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402


def main():
    args = _shared.parse(_shared.parser("inpainting", __doc__), overrides=True)
    _shared.cli("vae_jax.main", "--config=configs/cvae_inpaint_mnist.py", f"--workdir={args.workdir}",
                "--mode=inpaint", f"--config.data.dir={args.data_dir}", "--config.train.progress=False",
                "--config.tasks.classifier=mlp", *args.overrides)
    for name in sorted(os.listdir(args.workdir)):
        if name in ("inpaint.json", "inpaint.md") or (name.startswith("inpaint_") and name.endswith(".png")):
            shutil.copy(os.path.join(args.workdir, name), os.path.join(args.out, name))
    shutil.copy(os.path.join(args.workdir, "eval.json"), os.path.join(args.out, "vae_eval.json"))
    print(open(os.path.join(args.out, "inpaint.md")).read())


if __name__ == "__main__":
    main()
