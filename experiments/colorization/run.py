"""Regenerates this folder's results: trains the colorization CVAE and the regressor baseline on
colour MNIST built from full MNIST (6 equal-luminance palette colours), measures both on the test
set and copies colorize.json / colorize.md / colorize.png to --out.

    python experiments/colorization/run.py --data_dir ../shared/data/mnist [--workdir W] [--out O] [--config.<field>=<value> ...]

= python -m vae_jax.main --config=configs/cvae_colorize_mnist.py --workdir=W --mode=colorize
      --config.data.dir=DIR [--config.<field>=<value> ...]
"""
from __future__ import annotations

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    args = _shared.parse(_shared.parser("colorization", __doc__), overrides=True)
    _shared.cli("vae_jax.main", "--config=configs/cvae_colorize_mnist.py", f"--workdir={args.workdir}",
                "--mode=colorize", f"--config.data.dir={args.data_dir}", *args.overrides)
    for name in ("colorize.json", "colorize.md", "colorize.png"):
        shutil.copy(os.path.join(args.workdir, name), os.path.join(args.out, name))
    print(open(os.path.join(args.out, "colorize.md")).read())


if __name__ == "__main__":
    main()
