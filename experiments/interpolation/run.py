"""Regenerates this folder's results: latent interpolation of the MNIST VAE against a plain
autoencoder and pixel cross-fading, and the VAE's latent views. Trains what is missing first: the
784-500-20 VAE (the inpainting experiment's run, configs/cvae_inpaint_mnist.py, 5 epochs) and a
784-500-32 MSE autoencoder (configs/ae_mnist.py, 5 epochs); then copies interpolate.* and
latents.* to --out.

    python experiments/interpolation/run.py --data_dir ../shared/data/mnist [--workdir W] [--vae_workdir V] [--out O]

= python -m vae_jax.main --config=configs/ae_mnist.py --workdir=W/ae32 --config.data.dir=DIR --config.train.epochs=5
  python -m vae_jax.main --config=configs/cvae_inpaint_mnist.py --workdir=V --config.data.dir=DIR   # if V has no run
  python -m vae_jax.main --config=configs/cvae_inpaint_mnist.py --workdir=V --mode=latents --config.data.dir=DIR \\
      --config.tasks.classifier=mlp
  python -m vae_jax.main --config=configs/cvae_inpaint_mnist.py --workdir=V --mode=interpolate --config.data.dir=DIR \\
      --config.tasks.classifier=mlp --config.tasks.interpolate.compare_workdirs=W/ae32
"""
from __future__ import annotations

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402

VAE_CONFIG = "--config=configs/cvae_inpaint_mnist.py"


def trained(workdir: str) -> bool:
    return os.path.exists(os.path.join(workdir, "eval.json"))


def main():
    p = _shared.parser("interpolation", __doc__)
    p.add_argument("--vae_workdir", default=os.path.join(_shared.REPO, "runs", "experiments", "inpainting"),
                   help="the VAE run (default: the one experiments/inpainting/run.py trains; trained here if absent)")
    args = _shared.parse(p)
    vae, ae = os.path.abspath(args.vae_workdir), os.path.join(args.workdir, "ae32")
    data = f"--config.data.dir={args.data_dir}"
    if not trained(ae):
        _shared.cli("vae_jax.main", "--config=configs/ae_mnist.py", f"--workdir={ae}", data, "--config.train.epochs=5")
    if not trained(vae):
        _shared.cli("vae_jax.main", VAE_CONFIG, f"--workdir={vae}", data)
    _shared.cli("vae_jax.main", VAE_CONFIG, f"--workdir={vae}", "--mode=latents", data, "--config.tasks.classifier=mlp")
    _shared.cli("vae_jax.main", VAE_CONFIG, f"--workdir={vae}", "--mode=interpolate", data,
                "--config.tasks.classifier=mlp", f"--config.tasks.interpolate.compare_workdirs={ae}")
    for name in sorted(os.listdir(vae)):
        if name.startswith(("interpolate", "latents")) and name.endswith((".json", ".md", ".png")):
            shutil.copy(os.path.join(vae, name), os.path.join(args.out, name))
    print(open(os.path.join(args.out, "interpolate.md")).read())


if __name__ == "__main__":
    main()
