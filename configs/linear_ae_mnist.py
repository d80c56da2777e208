"""Linear autoencoder x̂ = W₂(W₁x + b₁) + b₂ with MSE: its decoder spans the top principal subspace."""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "linear_ae"
    c.model.latent_dim = 10
    c.model.likelihood = "gaussian"
    c.objective.name = "ae"
    c.data.binarization = "none"
    c.train.epochs = 20
    if "tiny" in variants:
        config_base.tiny(c)
    return c
