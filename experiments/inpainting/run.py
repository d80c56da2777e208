"""Regenerates this folder's results: trains the 784-500-20 Bernoulli VAE on full MNIST (unless
the workdir already holds it), trains the inpainting CVAE of the same sizes, runs every method on
every mask kind, and copies inpaint.json / inpaint.md / inpaint_*.png (and the VAE's eval.json as
vae_eval.json) to --out.

    python experiments/inpainting/run.py --data_dir ../shared/data/mnist [--workdir W] [--out O] [--config.<field>=<value> ...]

= python -m vae_jax.main --config=configs/cvae_inpaint_mnist.py --workdir=W --mode=inpaint
      --config.data.dir=DIR --config.train.progress=False --config.tasks.classifier=mlp

``--colour``: the same on the offline colour photos (configs/cvae_inpaint_photos.py, conv VAE with
a discretized mixture of logistics; --data_dir is not read); workdir runs/experiments/inpainting_photos,
and the files are copied with a ``_photos`` suffix (inpaint_photos.json, inpaint_photos.md,
inpaint_photos_<mask>.png, vae_eval_photos.json), so the MNIST results stay.
"""
from __future__ import annotations

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402


def main():
    p = _shared.parser("inpainting", __doc__)
    p.add_argument("--colour", action="store_true", help="colour photos (configs/cvae_inpaint_photos.py) "
                   "instead of MNIST; results get a _photos suffix")
    args = _shared.parse(p, overrides=True, default_workdir=lambda a: os.path.join(
        _shared.REPO, "runs", "experiments", "inpainting" + ("_photos" if a.colour else "")))
    if args.colour:
        flags = ["--config=configs/cvae_inpaint_photos.py"]
    else:
        flags = ["--config=configs/cvae_inpaint_mnist.py", f"--config.data.dir={args.data_dir}",
                 "--config.tasks.classifier=mlp"]
    _shared.cli("vae_jax.main", *flags, f"--workdir={args.workdir}", "--mode=inpaint",
                "--config.train.progress=False", *args.overrides)
    suffix = "_photos" if args.colour else ""
    for name in sorted(os.listdir(args.workdir)):
        if name in ("inpaint.json", "inpaint.md") or (name.startswith("inpaint_") and name.endswith(".png")):
            stem, ext = os.path.splitext(name)
            target = "inpaint" + suffix + stem[len("inpaint"):] + ext
            shutil.copy(os.path.join(args.workdir, name), os.path.join(args.out, target))
    shutil.copy(os.path.join(args.workdir, "eval.json"), os.path.join(args.out, f"vae_eval{suffix}.json"))
    print(open(os.path.join(args.out, f"inpaint{suffix}.md")).read())


if __name__ == "__main__":
    main()
