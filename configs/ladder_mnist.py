"""Ladder VAE (Sønderby et al. 2016) on MNIST: two Gaussian stochastic layers z_1 (64) and z_2 (32),
deterministic blocks of 512 and 256 leaky-ReLU units, Bernoulli likelihood, dynamic binarization,
linear KL warm-up. The paper's MNIST model has five layers (64-32-16-8-4 over 512-...-32 units),
batch normalisation and 200 warm-up epochs; set ``--config.model.ladder.latent_dims`` /
``hidden`` for more layers (this version has no batch normalisation).

    python -m vae_jax.main --config=configs/ladder_mnist.py --workdir=runs/ladder \
        --config.data.dir=/path/to/mnist            # or set $VAE_JAX_DATA_DIR
    --config=configs/ladder_mnist.py:tiny           # small, bundled data, for tests
"""
from vae_jax import config as config_base

STEPS_PER_EPOCH = 60000 // 256


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "ladder"
    c.model.ladder.latent_dims = (64, 32)
    c.model.ladder.hidden = (512, 256)
    c.model.activation = "leaky_relu"
    c.model.likelihood = "bernoulli"
    c.data.binarization = "dynamic"
    c.optim.learning_rate = 2e-3
    c.train.batch_size = 256
    c.train.epochs = 50
    # Without warm-up the upper layer of a ladder collapses early (the paper's Fig. 4).
    c.objective.name = "elbo_warmup"
    c.objective.warmup_steps = 10 * STEPS_PER_EPOCH
    c = config_base.apply_variants(c, variants)
    if "tiny" in variants:
        c.objective.warmup_steps = 8  # of the 16 steps of the tiny run
    return c
