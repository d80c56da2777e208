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
    c.model.offset_init = "zeros"  # linear_ae_orth: 'zeros' | 'data_mean' (b starts at the training mean)
    c.model.net = "mlp"            # mlp | conv (conv: two stride-2 convs; H and W divisible by 4)
    c.model.conv_channels = (32, 64)  # conv: channels of the encoder convs (decoder mirrors them)

    c.objective = ml_collections.ConfigDict()
    c.objective.name = "elbo"
    c.objective.kl_weight = 1.0
    # Fields of the objectives in objectives_extra.py (each reads only its own):
    c.objective.warmup_steps = 0    # elbo_warmup: KL weight rises linearly 0 -> kl_weight over N steps
    c.objective.cycles = 4          # elbo_cyclical: M ramps over the first anneal_steps steps,
    c.objective.cycle_ratio = 0.5   #   each rising over a fraction R of its period
    c.objective.anneal_steps = 0
    c.objective.free_bits = 0.0     # elbo_free_bits: per-dimension KL floor λ (nats)
    c.objective.iwae_k = 5          # iwae: importance samples per example
    c.objective.noise_type = "gaussian"  # denoising_ae: gaussian | masking
    c.objective.noise_std = 0.5     # denoising_ae, gaussian: std of the additive noise
    c.objective.mask_prob = 0.25    # denoising_ae, masking: probability a pixel is zeroed
    c.objective.l1_weight = 1e-3    # sparse_ae: weight of Σ_d |z_d|

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adam"          # adam | adamw | sgd
    c.optim.learning_rate = 1e-3
    c.optim.weight_decay = 0.0
    c.optim.grad_clip_norm = 0.0   # 0: off
    c.optim.b1 = 0.9               # Adam moments and ε
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.momentum = 0.9         # sgd: heavy-ball momentum (0: plain gradient descent)
    c.optim.nesterov = False       # sgd: Nesterov's form of the momentum
    c.optim.stage_epochs = ()      # () constant lr; (e0, e1, ...): stage i has e_i epochs at
    c.optim.stage_decay = 1.0      #   learning_rate·stage_decay^i (IWAE paper: 3^i, 10^(-1/7))

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 10
    c.train.batch_size = 128
    c.train.eval_every = 1         # epochs between test evaluations
    c.train.checkpoint_every = 1   # epochs between checkpoints (the last epoch is always saved)
    c.train.eval_batch_size = 1000
    c.train.nan_policy = "stop"    # stop | skip
    c.train.data_parallel = "auto"  # auto | on | off: split batches over all devices (parallel.py)
    c.train.fused_adam = "auto"    # auto | on | off: one-pass Adam kernel on CPU (fused_adam.py)
    c.train.progress = True
    c.train.tensorboard = True

    c.report = ml_collections.ConfigDict()
    c.report.num_images = 64
    c.report.enabled = True

    # Application modes (interpolate, latents, inpaint, colorize): see vae_jax/tasks/common.py.
    from vae_jax.tasks.common import task_config
    c.tasks = task_config()

    # --mode=evaluate (IWAE NLL, diagnostics, Fréchet distance): see vae_jax/evaluate_run.py.
    from vae_jax.evaluate_run import eval_config
    c.eval = eval_config()
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
    from vae_jax.tasks.common import shrink_for_tests
    shrink_for_tests(c.tasks)
    from vae_jax.evaluate_run import shrink_eval_for_tests
    shrink_eval_for_tests(c.eval)
    return c
