"""VAE with a VampPrior (Tomczak & Welling 2018) on MNIST: 784-300-300-40 MLPs, K = 500 learned
pseudo-inputs, Bernoulli likelihood, dynamic binarization, Adam lr 5e-4, batch 100, linear KL
warm-up (the paper: 100 warm-up epochs of 2000 with gated dense layers; here plain ReLU layers).

    python -m vae_jax.main --config=configs/vamp_mnist.py --workdir=runs/vamp \
        --config.data.dir=/path/to/mnist            # or set $VAE_JAX_DATA_DIR
    --config=configs/vamp_mnist.py:tiny             # small, bundled data, for tests
"""
from vae_jax import config as config_base

STEPS_PER_EPOCH = 60000 // 100


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "vamp"
    c.model.encoder_hidden = (300, 300)
    c.model.decoder_hidden = (300, 300)
    c.model.latent_dim = 40
    c.model.vamp.num_pseudo_inputs = 500
    c.model.likelihood = "bernoulli"
    c.data.binarization = "dynamic"
    c.optim.learning_rate = 5e-4
    c.train.batch_size = 100
    c.train.epochs = 50
    c.objective.name = "elbo_warmup"
    c.objective.warmup_steps = 10 * STEPS_PER_EPOCH
    c = config_base.apply_variants(c, variants)
    if "tiny" in variants:
        c.objective.warmup_steps = 8  # of the 16 steps of the tiny run
    return c
