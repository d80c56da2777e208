"""Regenerates this folder's results: trains the colorization CVAE and the regressor baseline on
colour MNIST built from full MNIST (6 equal-luminance palette colours), measures both on the test
set and copies colorize.json / colorize.md / colorize.png here.

    python experiments/colorization/run.py --data_dir=../shared/data/mnist
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
    p.add_argument("--workdir", default="runs/exp_colorization")
    args, overrides = p.parse_known_args()  # the rest: extra --config.<field>=<value> flags
    cmd = [sys.executable, "-m", "vae_jax.main", "--config=configs/cvae_colorize_mnist.py",
           f"--workdir={args.workdir}", "--mode=colorize", f"--config.data.dir={args.data_dir}", *overrides]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    for name in ("colorize.json", "colorize.md", "colorize.png"):
        shutil.copy(os.path.join(REPO, args.workdir, name), os.path.join(HERE, name))
    print(open(os.path.join(HERE, "colorize.md")).read())


if __name__ == "__main__":
    main()
