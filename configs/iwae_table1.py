"""Burda, Grosse & Salakhutdinov (2015), "Importance Weighted Autoencoders", Table 1, one
stochastic layer on MNIST: 784-200-200-50 tanh MLPs (encoder and decoder), Bernoulli likelihood,
dynamic binarization, batch 20, Adam (β1=0.9, β2=0.999, ε=1e-4) with 3^i epochs at
lr = 0.001·10^(-i/7) for i = 0..7 (3,280 epochs), test NLL by the k=5000 importance-weighted bound.

    --config=configs/iwae_table1.py            VAE (k=1), full 3,280-epoch schedule (accelerators)
    --config=configs/iwae_table1.py:iwae5      IWAE k=5, full schedule
    --config=configs/iwae_table1.py:cpu        VAE, the CPU-budget schedule (180 epochs, see below)
    --config=configs/iwae_table1.py:cpu,iwae5  IWAE k=5, the CPU-budget schedule
    --config=configs/iwae_table1.py:tiny       seconds-long smoke version
Paper (Table 1, k=5000 NLL): VAE k=1 86.76, IWAE k=5 85.54.
"""
from vae_jax import config as config_base

FULL_STAGES = tuple(3 ** i for i in range(8))          # 1, 3, ..., 2187: 3,280 epochs
# CPU budget (≤ 60 min on 2 shared cores): the same 8 stages and lr decay, but most epochs spent
# at the high learning rates, where a short run gains most.
CPU_STAGES = (50, 25, 20, 15, 12, 10, 10, 38)            # 180 epochs


def get_config(arg=None):
    parts = config_base.parse_arg(arg, {"iwae5", "cpu", "tiny"}, __file__)
    c = config_base.base_config()
    c.model.kind = "vae"
    c.model.encoder_hidden = (200, 200)
    c.model.decoder_hidden = (200, 200)
    c.model.latent_dim = 50
    c.model.activation = "tanh"
    c.model.likelihood = "bernoulli"
    c.model.decoder_bias_init = "data_mean"   # the output bias starts at the training mean's logit, as theirs
    c.data.binarization = "dynamic"
    c.optim.name = "adam"
    c.optim.learning_rate = 1e-3
    c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-4
    c.optim.stage_decay = 10 ** (-1 / 7)
    c.optim.stage_epochs = CPU_STAGES if "cpu" in parts else FULL_STAGES
    c.train.epochs = sum(c.optim.stage_epochs)
    c.train.batch_size = 20
    c.train.eval_every = 10
    c.train.checkpoint_every = 10
    c.train.tensorboard = False
    c.objective.name = "elbo"
    if "iwae5" in parts:
        c.objective.name = "iwae"
        c.objective.iwae_k = 5
    if "tiny" in parts:
        config_base.tiny(c)
        c.optim.stage_epochs = (1, 1)
        c.train.epochs = 2
    return c
