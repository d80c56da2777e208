"""Kingma & Welling (2014), "Auto-Encoding Variational Bayes", Fig. 2 (MNIST): the variational
lower bound vs training samples seen, for latent sizes 3, 5, 10, 20, 200.

Model as in the paper: MLP encoder and decoder with one hidden layer of 500 tanh units, Gaussian
q(z|x), Bernoulli p(x|z), minibatch M = 100, L = 1 sample per datapoint. Differences: Adam
(lr 1e-3) instead of Adagrad, dynamic binarization of the grey MNIST pixels, no weight-decay prior.

    python -m vae_jax.sweeps --config=configs/kingma_welling.py --workdir=runs/kingma_welling \
        --config.data.dir=/path/to/mnist          # 100 epochs (6·10^6 samples) per latent size
    --config=configs/kingma_welling.py:cpu       # the shortened CPU budget (10 epochs)
    --config=configs/kingma_welling.py:tiny      # seconds-long smoke version
"""
from vae_jax import config as config_base
from vae_jax.sweeps import axis

LATENT_SIZES = (3, 5, 10, 20, 200)


def get_config(arg=None):
    variants = config_base.parse_arg(arg, {"tiny", "cpu"}, __file__)
    c = config_base.base_config()
    c.model.kind = "vae"
    c.model.encoder_hidden = (500,)
    c.model.decoder_hidden = (500,)
    c.model.activation = "tanh"
    c.model.likelihood = "bernoulli"
    c.model.latent_dim = 20
    c.data.binarization = "dynamic"
    c.train.batch_size = 100
    c.train.epochs = 100
    c.train.eval_every = 1
    c.train.checkpoint_every = 10
    c.train.tensorboard = False
    c.train.progress = False
    if "cpu" in variants:
        c.train.epochs = 10
        c.train.checkpoint_every = 5
    if "tiny" in variants:
        config_base.tiny(c)
    return c


def get_sweep(arg=None):
    return axis("model.latent_dim", LATENT_SIZES)
