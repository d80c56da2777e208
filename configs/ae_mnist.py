"""MLP autoencoder with MSE (Gaussian, σ=1) on [0,1] pixels; latent size via model.latent_dim."""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "ae"
    c.model.encoder_hidden = (500,)
    c.model.decoder_hidden = (500,)
    c.model.latent_dim = 32
    c.model.likelihood = "gaussian"
    c.objective.name = "ae"
    c.data.binarization = "none"
    c.train.epochs = 10
    if "tiny" in variants:
        config_base.tiny(c)
    return c
