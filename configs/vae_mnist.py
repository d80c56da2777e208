"""784-500-20 MLP VAE, Bernoulli likelihood, dynamic binarization (Kingma & Welling style).

    python -m vae_jax.main --config=configs/vae_mnist.py --workdir=runs/vae \
        --config.data.dir=/path/to/mnist            # or set $VAE_JAX_DATA_DIR
    --config=configs/vae_mnist.py:tiny              # small, bundled data, for tests
"""
from vae_jax import config as config_base


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "vae"
    c.model.encoder_hidden = (500,)
    c.model.decoder_hidden = (500,)
    c.model.latent_dim = 20
    c.model.likelihood = "bernoulli"
    c.data.binarization = "dynamic"
    c.train.epochs = 10
    # Test evaluation costs ~13 % of a training epoch: every 5 epochs (and after the last) keeps the
    # CLI within ~3 % of the bare scan epoch (BENCHMARKS.md). Checkpoints likewise.
    c.train.eval_every = 5
    c.train.checkpoint_every = 5
    if "tiny" in variants:
        config_base.tiny(c)
    return c
