"""Colorization of MNIST: conditional VAE p(chroma | gray, z) with q(z | colour, gray), 784-500-8
MLPs, Gaussian likelihood with σ = 1 on the chroma, digits coloured on the fly from a palette of
equal-luminance colours; plus the deterministic regressor with the same decoder network.

    python -m vae_jax.main --config=configs/cvae_colorize_mnist.py --workdir=runs/colorize \
        --mode=colorize --config.data.dir=/path/to/mnist
    # any RGB TFDS dataset instead (online users):
    #   --config.data.source=tfds --config.data.name=cifar10
    --config=configs/cvae_colorize_mnist.py:tiny           # bundled data, seconds (tests)
"""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "vae"           # the CVAE takes its layer sizes, latent size and likelihood from here
    c.model.encoder_hidden = (500,)
    c.model.decoder_hidden = (500,)
    c.model.latent_dim = 8
    c.model.likelihood = "gaussian"
    c.model.sigma = 1.0            # measured on 5 epochs: palette fraction 0.12 at σ=0.1, 0.15 at 0.3, 0.23 at 1.0
    c.data.binarization = "none"
    c.train.epochs = 5
    c.tasks.colorize.palette_size = 6
    c.tasks.colorize.luminance = 0.5
    if "tiny" in variants:
        config_base.tiny(c)
        c.train.epochs = 40            # 320 steps of the tiny nets: enough for the CVAE to use z
        c.tasks.colorize.kl_warmup_steps = 100
        c.model.sigma = 0.1            # a stronger pull on z: at σ=1 the 32-unit test nets collapse (KL -> 0)
    return c
