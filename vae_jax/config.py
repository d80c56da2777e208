"""Configs: the base every ``configs/*.py`` file starts from (one place for defaults), the variant
parser those files share, and ``validate`` — which asks each room to check its own section.

    from vae_jax import config as config_base

    def get_config(arg=None):
        variants = config_base.parse_arg(arg, {"tiny"}, __file__)
        c = config_base.base_config()
        ...
        return config_base.apply_variants(c, variants)
"""
from __future__ import annotations

import importlib.util
import os

import ml_collections

from vae_jax import checks, data, models, objectives
from vae_jax.errors import ConfigError
import vae_jax.evaluation.settings as eval_settings
import vae_jax.report.html as report_html
import vae_jax.tasks.settings as task_settings
import vae_jax.training.trainer as trainer


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "mnist"
    c.data.source = "idx"          # idx | bundled | tfds | photos
    c.data.dir = ""                # idx: directory of *-ubyte.gz ($VAE_JAX_DATA_DIR if empty)
    c.data.binarization = "dynamic"  # dynamic | static | none
    c.data.static_seed = 0
    c.data.train_subset = 0        # >0: keep only the first N training images
    c.data.test_subset = 0

    c.model = ml_collections.ConfigDict()
    c.model.kind = "vae"           # a registered family: vae | ae | linear_ae | linear_ae_orth | two_layer | iaf | ...
    c.model.encoder_hidden = (500,)
    c.model.decoder_hidden = (500,)
    c.model.latent_dim = 20
    c.model.activation = "relu"
    c.model.likelihood = "bernoulli"
    c.model.sigma = 1.0            # fixed σ of the 'gaussian' likelihood
    c.model.min_log_sigma = -4.6   # floor of the learned log σ ('gaussian_learned'); log(0.01)
    c.model.num_mixtures = 10      # components K of 'discretized_mix_logistic' (PixelCNN++: 10)
    c.model.offset_init = "zeros"  # linear_ae_orth: 'zeros' | 'data_mean' (b starts at the training mean)
    # 'zeros' | 'data_mean': the Bernoulli MLP decoder's output bias starts at the logit of the
    # training set's mean pixel (Burda et al. 2015's recipe; models.init_decoder_bias)
    c.model.decoder_bias_init = "zeros"
    c.model.net = "mlp"            # mlp | conv (conv: two stride-2 convs; H and W divisible by 4)
    c.model.conv_channels = (32, 64)  # conv: channels of the encoder convs (decoder mirrors them)
    # Each family's own fields, cfg.model.<kind>.* (defaults beside the family's definition in
    # vae_jax/models/families/; refused when set for another model.kind).
    for name, family in models.FAMILIES.items():
        if family.defaults:
            c.model[name] = ml_collections.ConfigDict(family.defaults)

    c.objective = ml_collections.ConfigDict()
    c.objective.name = "elbo"
    c.objective.kl_weight = 1.0
    # Fields of the objectives in objectives_extra.py (each reads only its own):
    c.objective.warmup_steps = 0    # elbo_warmup: KL weight rises linearly 0 -> kl_weight over N steps
    c.objective.cycles = 4          # elbo_cyclical: M ramps over the first anneal_steps steps,
    c.objective.cycle_ratio = 0.5   #   each rising over a fraction R of its period
    c.objective.anneal_steps = 0
    c.objective.free_bits = 0.0     # elbo_free_bits: per-dimension KL floor λ (nats)
    c.objective.iwae_k = 5          # iwae, miwae, piwae, ciwae: importance samples K per bound
    c.objective.iwae_m = 1          # miwae, piwae: M bounds of K samples each (objectives/tighter.py)
    c.objective.ciwae_beta = 0.5    # ciwae: β·ELBO + (1 − β)·IWAE
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
    c.train.unroll = 1             # training steps per scan iteration (lax.scan unroll); >1 helps
    #                                 latency-bound small-batch steps on GPU/TPU, the numbers are the same
    c.train.data_parallel = "auto"  # auto | on | off: split batches over all devices (training/parallel.py)
    c.train.progress = True
    c.train.evaluate_after = False  # True: the CLI evaluates the finished run as --mode=evaluate does
    c.train.tensorboard = True

    c.report = ml_collections.ConfigDict()
    c.report.num_images = 64
    c.report.enabled = True

    # Application modes (interpolate, latents, inpaint, colorize): see vae_jax/tasks/common.py.
    c.tasks = task_settings.task_config()

    # --mode=evaluate (IWAE NLL, diagnostics, Fréchet distance): see vae_jax/evaluate_run.py.
    c.eval = eval_settings.eval_config()
    return c


def tiny(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks any config for tests: bundled data subset, small nets, two short epochs."""
    c.data.source = "bundled"
    c.data.dir = ""
    c.data.train_subset = 512
    c.data.test_subset = 256
    family = models.get_family(c.model.kind)
    if family.shrink is not None:  # each family shrinks the fields it reads (small nets, ≤ 8 latents)
        family.shrink(c.model)
    c.train.epochs = 2
    c.train.eval_every = 1
    c.train.checkpoint_every = 1
    c.train.batch_size = 64
    c.train.eval_batch_size = 128
    c.train.progress = False
    c.report.num_images = 16
    task_settings.shrink_for_tests(c.tasks)
    eval_settings.shrink_eval_for_tests(c.eval)
    return c


# ---------------------------------------------------------------------------- variants
def parse_arg(arg, allowed, config_file: str) -> set[str]:
    """``--config=FILE:a,b`` -> {'a', 'b'}; an unknown variant is a ConfigError naming the file."""
    parts = {p.strip() for p in (arg or "").split(",") if p.strip()}
    unknown = parts - set(allowed)
    if unknown:
        raise ConfigError(f"--config={os.path.basename(config_file)}:{arg}: unknown variant(s) "
                          f"{sorted(unknown)}; combine {sorted(allowed)} with commas, or give none")
    return parts


def apply_variants(c: ml_collections.ConfigDict, variants) -> ml_collections.ConfigDict:
    """The variants every config file understands (today ``tiny``), applied last."""
    if "tiny" in variants:
        tiny(c)
    return c


def load_config_file(path: str, arg=None) -> ml_collections.ConfigDict:
    """``get_config(arg)`` of a config file given by path (``configs/*.py`` use it for a sibling
    file, so nothing depends on the current directory)."""
    spec = importlib.util.spec_from_file_location(f"vae_jax_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def sibling(config_file: str, name: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(config_file)), name)


# ---------------------------------------------------------------------------- validation
def validate(cfg) -> None:
    """Checks every field before any work starts: each room validates its own section against the
    defaults (a field set away from its default where nothing reads it is refused)."""
    defaults = base_config()
    checks.positive_int(cfg, "seed", allow_zero=True)
    for section in cfg:
        if section not in defaults and section not in EXTRA_SECTIONS:
            raise ConfigError(f"{section}: unknown config section; known: {sorted(defaults)}")
    data.validate(cfg, defaults)
    models.validate(cfg, defaults)
    objectives.validate(cfg, defaults)
    trainer.validate(cfg, defaults)
    report_html.validate(cfg)
    task_settings.validate_tasks(cfg)
    eval_settings.validate_eval(cfg)


# Sections some configs add beside the base ones (read by the tasks that train CVAEs).
EXTRA_SECTIONS = ("cvae",)


def validate_against_data(cfg, n_train: int, image_shape=None) -> None:
    """Checks that need the loaded data: its size, and (given ``image_shape``) the model's fit to
    the images (``models.validate_against_data``: colour vs binary likelihoods, conv halvings)."""
    if cfg.train.batch_size > n_train:
        raise ConfigError(f"train.batch_size: {cfg.train.batch_size} exceeds the {n_train} training "
                          "images; choose a value <= the training set size")
    if image_shape is not None:
        models.validate_against_data(cfg, image_shape)
