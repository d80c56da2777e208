"""Regenerates this folder's results: trains the colorization CVAE and the regressor baseline on
colour MNIST built from full MNIST (6 equal-luminance palette colours), measures both on the test
set and copies colorize.json / colorize.md / colorize.png to --out.

    python experiments/colorization/run.py --data_dir ../shared/data/mnist [--workdir W] [--out O] [--config.<field>=<value> ...]

= python -m vae_jax.main --config=configs/cvae_colorize_mnist.py --workdir=W --mode=colorize
      --config.data.dir=DIR [--config.<field>=<value> ...]

``--colour``: the same on the offline colour photos (configs/cvae_colorize_photos.py; --data_dir is
not read); workdir runs/experiments/colorization_photos, files copied as colorize_photos.json,
colorize_photos.md, colorize_photos.png, so the MNIST results stay.
"""
from __future__ import annotations

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = _shared.parser("colorization", __doc__)
    p.add_argument("--colour", action="store_true", help="colour photos (configs/cvae_colorize_photos.py) "
                   "instead of colour MNIST; results get a _photos suffix")
    args = _shared.parse(p, overrides=True, default_workdir=lambda a: os.path.join(
        _shared.REPO, "runs", "experiments", "colorization" + ("_photos" if a.colour else "")))
    flags = (["--config=configs/cvae_colorize_photos.py", "--config.train.progress=False"] if args.colour else
             ["--config=configs/cvae_colorize_mnist.py", f"--config.data.dir={args.data_dir}"])
    _shared.cli("vae_jax.main", *flags, f"--workdir={args.workdir}", "--mode=colorize", *args.overrides)
    suffix = "_photos" if args.colour else ""
    for ext in ("json", "md", "png"):
        shutil.copy(os.path.join(args.workdir, f"colorize.{ext}"), os.path.join(args.out, f"colorize{suffix}.{ext}"))
    print(open(os.path.join(args.out, f"colorize{suffix}.md")).read())


if __name__ == "__main__":
    main()
