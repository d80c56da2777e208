"""The ``tasks`` config section (interpolate, latents, inpaint, colorize): defaults, checks."""
from __future__ import annotations

import ml_collections

from vae_jax.errors import ConfigError

MASK_KINDS = ("bottom_half", "centre_square", "random", "quadrant")
CLASSIFIERS = ("auto", "cnn", "mlp", "none")


def task_config() -> ml_collections.ConfigDict:
    """Defaults of the ``tasks`` config section (``config_base.base_config`` holds one)."""
    t = ml_collections.ConfigDict()
    t.eval_subset = 1000           # test images used for the task metrics (0: all)
    t.data_dir = ""                # overrides the trained run's data.dir when the data moved
    t.classifier = "auto"          # digit classifier of the metrics: auto | cnn | mlp | none (see digit_classifier)

    t.interpolate = ml_collections.ConfigDict()
    t.interpolate.num_pairs = 200      # test-image pairs (different labels) measured
    t.interpolate.steps = 10           # frames per path = steps + 1 (endpoints included)
    t.interpolate.grid_pairs = 8       # pairs drawn in the grids
    t.interpolate.compare_workdirs = ""  # comma-separated other trained runs (e.g. an AE) to compare
    t.interpolate.nn_reference = 10000   # training images searched for the nearest-neighbour distance

    t.latents = ml_collections.ConfigDict()
    t.latents.grid_size = 20           # manifold grid (2-D latent): grid_size x grid_size
    t.latents.traversal_steps = 11
    t.latents.max_traversal_dims = 16  # traversal rows (dimensions with the largest KL)

    t.inpaint = ml_collections.ConfigDict()
    t.inpaint.masks = ",".join(MASK_KINDS)
    t.inpaint.random_hidden_fraction = 0.75  # mask 'random': fraction p of pixels hidden
    t.inpaint.num_samples = 16         # completions per image (best-of-N and the NLL mixture)
    t.inpaint.opt_steps = 200          # Adam steps on the per-image q(z) (masked ELBO)
    t.inpaint.opt_learning_rate = 0.05
    t.inpaint.opt_mc_samples = 4       # reparameterized samples per step
    t.inpaint.gibbs_steps = 30         # pseudo-Gibbs iterations per chain
    t.inpaint.cvae = True              # also train (or reuse) and measure the conditional VAE
    t.inpaint.grid_images = 8

    t.colorize = ml_collections.ConfigDict()
    t.colorize.palette_size = 6        # colours of equal luminance and equal saturation
    t.colorize.luminance = 0.5         # luminance (Rec. 601 Y) of every palette colour
    t.colorize.num_samples = 8
    t.colorize.kl_warmup_steps = 1000  # CVAE KL weight rises 0 -> 1 over these many steps
    t.colorize.palette_tolerance = 0.1  # RGB distance under which a sample's colour counts as a palette colour
    t.colorize.grid_images = 8
    return t


def shrink_for_tests(t: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ``tiny`` variant of the tasks section: seconds instead of minutes."""
    t.eval_subset = 48
    t.classifier = "mlp"  # seconds; the CNN of vae_jax.classifier trains for minutes on CPU
    t.interpolate.num_pairs = 8
    t.interpolate.steps = 6
    t.interpolate.grid_pairs = 4
    t.interpolate.nn_reference = 256
    t.latents.grid_size = 6
    t.latents.traversal_steps = 5
    t.latents.max_traversal_dims = 4
    t.inpaint.num_samples = 4
    t.inpaint.opt_steps = 20
    t.inpaint.opt_mc_samples = 2
    t.inpaint.gibbs_steps = 4
    t.inpaint.grid_images = 4
    t.colorize.num_samples = 4
    t.colorize.kl_warmup_steps = 40
    t.colorize.grid_images = 4
    return t


def mask_kinds(tasks) -> tuple[str, ...]:
    return tuple(m.strip() for m in tasks.inpaint.masks.split(",") if m.strip())


def validate_tasks(cfg) -> None:

    if "tasks" not in cfg:
        return
    t = cfg.tasks
    if t.get("classifier", "auto") not in CLASSIFIERS:
        raise ConfigError(f"tasks.classifier: {t.classifier!r} is not allowed; choose one of {list(CLASSIFIERS)}")
    if isinstance(t.eval_subset, bool) or not isinstance(t.eval_subset, int) or t.eval_subset < 0:
        raise ConfigError(f"tasks.eval_subset: {t.eval_subset!r} must be an integer >= 0 (0: all test images)")
    bad = [m for m in mask_kinds(t) if m not in MASK_KINDS]
    if bad or not mask_kinds(t):
        raise ConfigError(f"tasks.inpaint.masks: {t.inpaint.masks!r} must be a comma-separated subset of {list(MASK_KINDS)}")
    if not 0.0 < t.inpaint.random_hidden_fraction < 1.0:
        raise ConfigError(f"tasks.inpaint.random_hidden_fraction: {t.inpaint.random_hidden_fraction!r} must be in (0, 1)")
    for path in ("inpaint.num_samples", "inpaint.opt_steps", "inpaint.opt_mc_samples", "inpaint.gibbs_steps",
                 "colorize.num_samples", "colorize.palette_size", "interpolate.num_pairs", "interpolate.steps",
                 "latents.grid_size", "latents.traversal_steps"):
        sec, field = path.split(".")
        v = t[sec][field]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"tasks.{path}: {v!r} must be an integer >= 1")
    if t.colorize.palette_size < 2:
        raise ConfigError("tasks.colorize.palette_size: needs >= 2 colours (one colour is determined by gray)")
    if not 0.05 <= t.colorize.luminance <= 0.8:
        raise ConfigError(f"tasks.colorize.luminance: {t.colorize.luminance!r} must be in [0.05, 0.8] "
                          "(saturated colours exist only at moderate luminance)")
