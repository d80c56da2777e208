"""Regenerates this folder's results: trains the 784-500-20 Bernoulli VAE on full MNIST (unless
the workdir already holds it), trains the inpainting CVAE of the same sizes, runs every method on
every mask kind, and copies inpaint.json / inpaint.md / inpaint_*.png here.

    python experiments/inpainting/run.py --data_dir=../shared/data/mnist
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data_dir", default=os.environ.get("VAE_JAX_DATA_DIR", "../shared/data/mnist"))
    p.add_argument("--workdir", default="runs/exp_inpainting")
    args, overrides = p.parse_known_args()  # the rest: extra --config.<field>=<value> flags
    cmd = [sys.executable, "-m", "vae_jax.main", "--config=configs/cvae_inpaint_mnist.py",
           f"--workdir={args.workdir}", "--mode=inpaint", f"--config.data.dir={args.data_dir}",
           "--config.train.progress=False", "--config.tasks.classifier=mlp", *overrides]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    wd = os.path.join(REPO, args.workdir)
    for name in sorted(os.listdir(wd)):
        if name in ("inpaint.json", "inpaint.md") or (name.startswith("inpaint_") and name.endswith(".png")):
            shutil.copy(os.path.join(wd, name), os.path.join(HERE, name))
    shutil.copy(os.path.join(wd, "eval.json"), os.path.join(HERE, "vae_eval.json"))
    print(open(os.path.join(HERE, "inpaint.md")).read())


if __name__ == "__main__":
    main()
