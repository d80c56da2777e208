"""Linear autoencoder x̂ = W₂(W₁x + b₁) + b₂ with MSE: its decoder spans the top principal subspace."""
from vae_jax import config as config_base


def get_config(arg=None):
    c = config_base.base_config()
    c.model.kind = "linear_ae"
    c.model.encoder_hidden = ()
    c.model.decoder_hidden = ()
    c.model.latent_dim = 10
    c.model.likelihood = "gaussian"
    c.objective.name = "ae"
    c.data.binarization = "none"
    c.train.epochs = 20
    if arg == "tiny":
        config_base.tiny(c)
    elif arg:
        raise ValueError(f"configs/linear_ae_mnist.py: unknown variant {arg!r}; choose 'tiny' or none")
    return c
