"""VAE with an inverse autoregressive flow posterior (Kingma et al. 2016) on dynamically binarized
MNIST: MLP encoder/decoder 784-500 (ReLU), 32 latent units, two IAF steps whose MADE networks have
two hidden layers of 256 units (vae_jax/models/families/iaf.py). The paper's MNIST models are
convolutional ResNets; this is the MLP version of the same posterior.

    python -m vae_jax.main --config=configs/iaf_mnist.py --workdir=runs/iaf \
        --config.data.dir=/path/to/mnist            # or set $VAE_JAX_DATA_DIR
    --config=configs/iaf_mnist.py:tiny              # small, bundled data, for tests
    --config.model.iaf.steps=4                      # more flow steps
"""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "iaf"
    c.model.encoder_hidden = (500,)
    c.model.decoder_hidden = (500,)
    c.model.latent_dim = 32
    c.model.iaf.steps = 2
    c.model.iaf.hidden = (256, 256)
    c.model.likelihood = "bernoulli"
    c.data.binarization = "dynamic"
    c.objective.name = "elbo"
    c.train.batch_size = 100
    c.train.epochs = 50
    return config_base.apply_variants(c, variants)
