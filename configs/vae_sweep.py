"""Sweep: latent size × likelihood (Bernoulli on binarized pixels / Gaussian on [0,1] pixels) ×
KL weight β × seed, on the 784-500-z MLP VAE of vae_mnist.py.

    python -m vae_jax.sweeps --config=configs/vae_sweep.py --workdir=runs/vae_sweep \
        --config.data.dir=/path/to/mnist [--shard=i/n] [--vmap=auto|on|off]
    python -m vae_jax.sweeps --workdir=runs/vae_sweep collect
    --config=configs/vae_sweep.py:tiny     16 seconds-long points on bundled data (the tests use it)
"""
from vae_jax import config as config_base
from vae_jax.sweeps import axis, product, zip_


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "vae"
    c.model.encoder_hidden = (500,)
    c.model.decoder_hidden = (500,)
    c.train.epochs = 10
    c.train.tensorboard = False
    if "tiny" in variants:
        config_base.tiny(c)
        c.data.train_subset = 256
        c.data.test_subset = 128
        c.model.encoder_hidden = c.model.decoder_hidden = (16,)
        c.train.epochs = 2
        c.report.enabled = False
    return c


def likelihoods():
    # The likelihood and the data it models change together: Bernoulli needs binary pixels.
    return zip_(axis("model.likelihood", ["bernoulli", "gaussian"]),
                axis("data.binarization", ["dynamic", "none"]))


def get_sweep(arg=None):
    if "tiny" in config_base.parse_arg(arg, {"tiny"}, __file__):
        return product(axis("model.latent_dim", [2, 4]), likelihoods(),
                       axis("objective.kl_weight", [0.5, 1.0]), axis("seed", [0, 1]))
    return product(axis("model.latent_dim", [2, 10, 50]), likelihoods(),
                   axis("objective.kl_weight", [0.25, 1.0, 4.0]), axis("seed", [0, 1, 2]))
