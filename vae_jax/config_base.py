"""The base config every ``configs/*.py`` file starts from (one place for defaults)."""
from __future__ import annotations

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "mnist"
    c.data.source = "idx"          # idx | bundled | tfds
    c.data.dir = ""                # idx: directory of *-ubyte.gz ($VAE_JAX_DATA_DIR if empty)
    c.data.binarization = "dynamic"  # dynamic | static | none
    c.data.static_seed = 0
    c.data.train_subset = 0        # >0: keep only the first N training images
    c.data.test_subset = 0

    c.model = ml_collections.ConfigDict()
    c.model.kind = "vae"           # vae | ae | linear_ae
    c.model.encoder_hidden = (500,)
    c.model.decoder_hidden = (500,)
    c.model.latent_dim = 20
    c.model.activation = "relu"
    c.model.likelihood = "bernoulli"
    c.model.sigma = 1.0            # fixed σ of the 'gaussian' likelihood
    c.model.min_log_sigma = -4.6   # floor of the learned log σ ('gaussian_learned'); log(0.01)

    c.objective = ml_collections.ConfigDict()
    c.objective.name = "elbo"
    c.objective.kl_weight = 1.0

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adam"          # adam | adamw | sgd
    c.optim.learning_rate = 1e-3
    c.optim.weight_decay = 0.0
    c.optim.grad_clip_norm = 0.0   # 0: off

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 10
    c.train.batch_size = 128
    c.train.eval_every = 1         # epochs between test evaluations
    c.train.checkpoint_every = 1   # epochs between checkpoints (the last epoch is always saved)
    c.train.eval_batch_size = 1000
    c.train.nan_policy = "stop"    # stop | skip
    c.train.progress = True
    c.train.tensorboard = True

    c.report = ml_collections.ConfigDict()
    c.report.num_images = 64
    c.report.enabled = True
    return c


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks any config for tests: bundled data subset, small nets, two short epochs."""
    c.data.source = "bundled"
    c.data.dir = ""
    c.data.train_subset = 512
    c.data.test_subset = 256
    c.model.encoder_hidden = tuple(min(h, 32) for h in c.model.encoder_hidden)
    c.model.decoder_hidden = tuple(min(h, 32) for h in c.model.decoder_hidden)
    c.model.latent_dim = min(c.model.latent_dim, 8)
    c.train.epochs = 2
    c.train.batch_size = 64
    c.train.eval_batch_size = 128
    c.train.progress = False
    c.report.num_images = 16
    return c
