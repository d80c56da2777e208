"""Checks every config field before any work starts; errors name the field and allowed values."""
from __future__ import annotations

from vae_jax import data as data_lib
import vae_jax.models.distributions as D
from vae_jax import models
import vae_jax.models.nets as nets
from vae_jax import objectives
from vae_jax import objectives as objectives_extra

OPTIMIZERS = ("adam", "adamw", "sgd")
NAN_POLICIES = ("stop", "skip")
# Model kinds that accept only some likelihoods: the linear AE is x̂ = W z + b, and a likelihood
# whose mean is a squashed decoder output (Bernoulli's sigmoid) would make it non-linear.
MODEL_LIKELIHOODS = {"linear_ae": ("gaussian", "gaussian_learned")}


class ConfigError(ValueError):
    """One line: ``<field>: <problem>; allowed: <values>``."""


def _choice(cfg, path, allowed):
    v = _get(cfg, path)
    if v not in allowed:
        raise ConfigError(f"{path}: {v!r} is not allowed; choose one of {sorted(allowed)}")


def _get(cfg, path):
    node = cfg
    for part in path.split("."):
        if part not in node:
            raise ConfigError(f"{path}: missing field")
        node = node[part]
    return node


def _positive_int(cfg, path, allow_zero=False):
    v = _get(cfg, path)
    if isinstance(v, bool) or not isinstance(v, int) or v < (0 if allow_zero else 1):
        raise ConfigError(f"{path}: {v!r} must be an integer {'>= 0' if allow_zero else '>= 1'}")


def _number(cfg, path, low=None, low_inclusive=True, high=None):
    v = _get(cfg, path)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{path}: {v!r} must be a number")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        raise ConfigError(f"{path}: {v!r} must be {'>=' if low_inclusive else '>'} {low}")
    if high is not None and v > high:
        raise ConfigError(f"{path}: {v!r} must be <= {high}")


def _hidden(cfg, path):
    v = _get(cfg, path)
    if not isinstance(v, (tuple, list)) or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in v):
        raise ConfigError(f"{path}: {v!r} must be a tuple of positive integers, e.g. (500,)")


# Extra checks registered by other modules (objectives, sweeps, ...): fn(cfg) raising ConfigError.
EXTRA_CHECKS = [objectives_extra.check_config]


def validate(cfg) -> None:
    _positive_int(cfg, "seed", allow_zero=True)
    # data
    _choice(cfg, "data.source", data_lib.SOURCES)
    _choice(cfg, "data.binarization", data_lib.BINARIZATIONS)
    if not isinstance(cfg.data.name, str) or not cfg.data.name:
        raise ConfigError("data.name: must be a dataset name such as 'mnist' or 'fashion_mnist'")
    if cfg.data.source == "bundled" and cfg.data.name != "mnist":
        raise ConfigError(f"data.name: {cfg.data.name!r} is not bundled; with data.source='bundled' choose one of ['mnist']")
    _positive_int(cfg, "data.train_subset", allow_zero=True)
    _positive_int(cfg, "data.test_subset", allow_zero=True)
    # model
    _choice(cfg, "model.kind", models.MODEL_KINDS)
    if "offset_init" in cfg.model:
        _choice(cfg, "model.offset_init", ("zeros", "data_mean"))
        if cfg.model.offset_init != "zeros" and cfg.model.kind != "linear_ae_orth":
            raise ConfigError(f"model.offset_init: {cfg.model.offset_init!r} applies to model.kind="
                              f"'linear_ae_orth' only (got {cfg.model.kind!r}); use 'zeros'")
    if cfg.model.kind == "linear_ae_orth" and cfg.model.likelihood != "gaussian":
        raise ConfigError(f"model.likelihood: {cfg.model.likelihood!r} does not apply to model.kind="
                          "'linear_ae_orth' (x̂ = UUᵀx is a mean); choose one of ['gaussian']")
    _choice(cfg, "model.likelihood", D.LIKELIHOODS)
    _choice(cfg, "model.activation", nets.ACTIVATIONS)
    _positive_int(cfg, "model.latent_dim")
    _hidden(cfg, "model.encoder_hidden")
    _hidden(cfg, "model.decoder_hidden")
    if "net" in cfg.model:
        _choice(cfg, "model.net", nets.NETS)
        _hidden(cfg, "model.conv_channels")
    _number(cfg, "model.sigma", low=0, low_inclusive=False)
    _number(cfg, "model.min_log_sigma")
    lik = D.LIKELIHOODS[cfg.model.likelihood]
    if cfg.model.kind in MODEL_LIKELIHOODS and cfg.model.likelihood not in MODEL_LIKELIHOODS[cfg.model.kind]:
        raise ConfigError(f"model.likelihood: {cfg.model.likelihood!r} does not apply to model.kind="
                          f"{cfg.model.kind!r}; choose one of {list(MODEL_LIKELIHOODS[cfg.model.kind])}")
    if lik.needs_binary_data and cfg.data.binarization == "none" and cfg.data.name != "binarized_mnist":
        raise ConfigError("model.likelihood: 'bernoulli' needs binary pixels but data.binarization='none' "
                          "gives values in [0,1]; use data.binarization in ['dynamic', 'static'] or "
                          "a likelihood for continuous data (gaussian, gaussian_learned)")
    # objective
    _choice(cfg, "objective.name", objectives.OBJECTIVES)
    kinds = objectives.OBJECTIVE_MODEL_KINDS[cfg.objective.name]
    if cfg.model.kind not in kinds:
        raise ConfigError(f"objective.name: {cfg.objective.name!r} does not apply to "
                          f"model.kind={cfg.model.kind!r}; it needs model.kind in {list(kinds)}")
    _number(cfg, "objective.kl_weight", low=0)
    # optim
    _choice(cfg, "optim.name", OPTIMIZERS)
    _number(cfg, "optim.learning_rate", low=0, low_inclusive=False)
    _number(cfg, "optim.weight_decay", low=0)
    _number(cfg, "optim.grad_clip_norm", low=0)
    if "stage_epochs" in cfg.optim:
        _hidden(cfg, "optim.stage_epochs")
        _number(cfg, "optim.stage_decay", low=0, low_inclusive=False)
        for f in ("b1", "b2"):
            _number(cfg, f"optim.{f}", low=0, high=1)
        _number(cfg, "optim.eps", low=0, low_inclusive=False)
    if "momentum" in cfg.optim:
        _number(cfg, "optim.momentum", low=0)
        if cfg.optim.momentum >= 1:
            raise ConfigError(f"optim.momentum: {cfg.optim.momentum!r} must be < 1")
    # train
    _positive_int(cfg, "train.epochs")
    _positive_int(cfg, "train.batch_size")
    _positive_int(cfg, "train.eval_every")
    _positive_int(cfg, "train.checkpoint_every")
    _positive_int(cfg, "train.eval_batch_size")
    _choice(cfg, "train.nan_policy", NAN_POLICIES)
    if "data_parallel" in cfg.train:
        _choice(cfg, "train.data_parallel", ("auto", "on", "off"))
    if "fused_adam" in cfg.train:
        _choice(cfg, "train.fused_adam", ("auto", "on", "off"))
    _positive_int(cfg, "report.num_images")
    for check in EXTRA_CHECKS:
        check(cfg)


def validate_against_data(cfg, n_train: int) -> None:
    if cfg.train.batch_size > n_train:
        raise ConfigError(f"train.batch_size: {cfg.train.batch_size} exceeds the {n_train} training "
                          "images; choose a value <= the training set size")
