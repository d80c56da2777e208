"""Bad configurations are refused before any work, with one line naming the field and what is allowed.

Most rows go through ``vae_jax.config.validate`` in-process (the function the CLI calls first);
a few go through the real CLI in a subprocess to check the exit status, the single stderr line and
that nothing was trained.
"""
import os

import ml_collections
import pytest
from conftest import load_config, run_cli

from vae_jax import config as config_lib
from vae_jax import data as data_lib
from vae_jax import models, objectives
from vae_jax.errors import ConfigError
from vae_jax.models import distributions as D
from vae_jax.sweeps import expand


def _apply(c, fields):
    """Sets dotted ``fields`` on ``c``, e.g. {"model.latent_dim": 0}."""
    for path, value in fields.items():
        node = c
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return c


# (id, config file, fields set, field named in the message, text saying what is allowed).
# Each row's config file validates unmodified, so the fields set are the only fault.
BAD = [
    ("unknown_likelihood", "vae_mnist", {"model.likelihood": "poisson"}, "model.likelihood", "'bernoulli'"),
    ("unknown_objective", "vae_mnist", {"objective.name": "elbow"}, "objective.name", "'elbo'"),
    ("unknown_model_kind", "vae_mnist", {"model.kind": "gan"}, "model.kind", "'vae'"),
    ("unknown_optimizer", "vae_mnist", {"optim.name": "adagrad"}, "optim.name", "'adam'"),
    ("unknown_data_source", "vae_mnist", {"data.source": "web"}, "data.source", "'idx'"),
    ("unknown_binarization", "vae_mnist", {"data.binarization": "otsu"}, "data.binarization", "'dynamic'"),
    ("unknown_nan_policy", "vae_mnist", {"train.nan_policy": "ignore"}, "train.nan_policy", "'skip'"),
    ("zero_latent", "vae_mnist", {"model.latent_dim": 0}, "model.latent_dim", ">= 1"),
    ("negative_latent", "vae_mnist", {"model.latent_dim": -4}, "model.latent_dim", ">= 1"),
    ("zero_batch", "vae_mnist", {"train.batch_size": 0}, "train.batch_size", ">= 1"),
    ("zero_unroll", "vae_mnist", {"train.unroll": 0}, "train.unroll", ">= 1"),
    ("hvae_zero_blocks", "hvae_photos", {"model.kind": "hvae", "model.hvae.blocks": 0}, "model.hvae.blocks", ">= 1"),
    ("zero_lr", "vae_mnist", {"optim.learning_rate": 0.0}, "optim.learning_rate", "> 0"),
    ("negative_lr", "vae_mnist", {"optim.learning_rate": -1e-3}, "optim.learning_rate", "> 0"),
    ("negative_kl_weight", "vae_mnist", {"objective.name": "elbo", "objective.kl_weight": -0.5},
     "objective.kl_weight", ">= 0"),
    ("iwae_k_zero", "vae_mnist", {"objective.name": "iwae", "objective.iwae_k": 0}, "objective.iwae_k", ">= 1"),
    ("warmup_steps_zero", "vae_mnist", {"objective.name": "elbo_warmup", "objective.warmup_steps": 0},
     "objective.warmup_steps", ">= 1"),
    ("cycle_ratio_zero", "vae_mnist", {"objective.name": "elbo_cyclical", "objective.anneal_steps": 8,
                                       "objective.cycle_ratio": 0.0}, "objective.cycle_ratio", "> 0"),
    ("negative_free_bits", "vae_mnist", {"objective.name": "elbo_free_bits", "objective.free_bits": -1.0},
     "objective.free_bits", ">= 0"),
    ("unknown_noise_type", "ae_mnist", {"objective.name": "denoising_ae", "objective.noise_type": "salt"},
     "objective.noise_type", "'masking'"),
    ("negative_l1_weight", "ae_mnist", {"objective.name": "sparse_ae", "objective.l1_weight": -0.1},
     "objective.l1_weight", ">= 0"),
    ("miwae_zero_m", "vae_mnist", {"objective.name": "miwae", "objective.iwae_m": 0}, "objective.iwae_m", ">= 1"),
    ("piwae_zero_k", "vae_mnist", {"objective.name": "piwae", "objective.iwae_k": 0}, "objective.iwae_k", ">= 1"),
    ("ciwae_beta_above_one", "vae_mnist", {"objective.name": "ciwae", "objective.ciwae_beta": 1.5},
     "objective.ciwae_beta", "<= 1"),
    ("zero_epochs", "vae_mnist", {"train.epochs": 0}, "train.epochs", ">= 1"),
    ("zero_hidden_width", "vae_mnist", {"model.encoder_hidden": (32, 0)}, "model.encoder_hidden", "positive integers"),
    ("zero_sigma", "ae_mnist", {"model.likelihood": "gaussian", "model.sigma": 0.0}, "model.sigma", "> 0"),
    ("negative_seed", "vae_mnist", {"seed": -1}, "seed", ">= 0"),
    ("ae_objective_on_vae", "vae_mnist", {"model.kind": "vae", "objective.name": "ae"}, "objective.name",
     "model.kind in"),
    ("elbo_on_ae", "vae_mnist", {"model.kind": "ae", "model.likelihood": "gaussian"}, "objective.name",
     "model.kind in"),
    ("linear_ae_with_bernoulli", "linear_ae_mnist", {"model.kind": "linear_ae", "model.likelihood": "bernoulli"}, "model.likelihood",
     "'gaussian'"),
    ("orth_with_learned_sigma", "linear_ae_mnist", {"model.kind": "linear_ae_orth",
                                                    "model.likelihood": "gaussian_learned"},
     "model.likelihood", "['gaussian']"),
    ("bernoulli_on_unbinarized", "vae_mnist", {"model.likelihood": "bernoulli", "data.binarization": "none"},
     "model.likelihood", "'dynamic'"),
    ("continuous_bernoulli_on_linear_ae", "linear_ae_mnist", {"model.likelihood": "continuous_bernoulli"},
     "model.likelihood", "'gaussian_learned'"),
    ("discretized_logistic_on_binarized", "vae_mnist", {"model.likelihood": "discretized_logistic"},
     "model.likelihood", "data.binarization='none'"),
    ("zero_mixtures", "vae_mnist", {"model.likelihood": "discretized_mix_logistic", "data.binarization": "none",
                                    "model.num_mixtures": 0}, "model.num_mixtures", ">= 1"),
    ("dequantized_gaussian_without_dequantize", "vae_mnist", {"model.likelihood": "dequantized_gaussian",
                                                              "data.binarization": "none"},
     "model.likelihood", "data.binarization='dequantize'"),
    ("iaf_zero_steps", "vae_mnist", {"model.kind": "iaf", "model.iaf.steps": 0}, "model.iaf.steps", ">= 1"),
    ("vamp_zero_pseudo_inputs", "vae_mnist", {"model.kind": "vamp", "model.vamp.num_pseudo_inputs": 0},
     "model.vamp.num_pseudo_inputs", ">= 1"),
    ("ladder_without_layers", "ladder_mnist", {"model.kind": "ladder", "model.ladder.latent_dims": ()},
     "model.ladder.latent_dims", "at least one"),
    # vae_mnist:tiny's MLP fields (not read by two_layer) are put back to their defaults first.
    ("two_layer_width_per_layer", "vae_mnist", {"model.kind": "two_layer", "model.encoder_hidden": (500,),
                                                "model.decoder_hidden": (500,), "model.latent_dim": 20,
                                                "model.two_layer.hidden": (200,)},
     "model.two_layer.hidden", "one width per"),
    # (ConfigDict iterates its fields sorted: decoder_hidden is the first unread one.)
    ("two_layer_with_mlp_fields", "vae_mnist", {"model.kind": "two_layer"}, "model.decoder_hidden",
     "read only with model.kind in"),
    ("bundled_not_mnist", "vae_mnist", {"data.name": "cifar10"}, "data.name", "'mnist'"),
    ("momentum_one", "vae_mnist", {"optim.name": "sgd", "optim.momentum": 1.0}, "optim.momentum", "< 1"),
    ("unknown_offset_init", "vae_mnist", {"model.offset_init": "pca"}, "model.offset_init", "'data_mean'"),
    ("offset_init_on_vae", "vae_mnist", {"model.offset_init": "data_mean"}, "model.offset_init", "'linear_ae_orth'"),
    ("unknown_decoder_bias_init", "vae_mnist", {"model.decoder_bias_init": "logit"}, "model.decoder_bias_init",
     "'data_mean'"),
    ("decoder_bias_init_gaussian", "vae_mnist", {"model.likelihood": "gaussian", "model.decoder_bias_init": "data_mean"},
     "model.decoder_bias_init", "model.likelihood='bernoulli'"),
    ("decoder_bias_init_conv", "vae_photos", {"model.decoder_bias_init": "data_mean"}, "model.decoder_bias_init",
     "model.net='mlp'"),
    ("decoder_bias_init_hvae", "hvae_photos", {"model.decoder_bias_init": "data_mean"}, "model.decoder_bias_init",
     "model.kind in"),
]


@pytest.mark.parametrize("name,config_name,fields,field,allowed", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_refused_with_one_line(name, config_name, fields, field, allowed):
    c = load_config(config_name)
    config_lib.validate(c)  # the unmodified config is valid: the fields set are the only fault
    _apply(c, fields)
    with pytest.raises(ConfigError) as info:
        config_lib.validate(c)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(field + ":") or f" {field}" in msg, msg
    assert allowed in msg, msg


@pytest.mark.parametrize("registry,field", [
    (objectives.OBJECTIVES, "objective.name"),
    (D.LIKELIHOODS, "model.likelihood"),
    (models.MODEL_KINDS, "model.kind"),
])
def test_every_registered_name_has_a_bad_input_row(registry, field):
    """Each objective, likelihood and model kind the package registers is set explicitly by at
    least one row of BAD, so registering a new one without a refusal case fails here."""
    exercised = {fields[field] for _, _, fields, _, _ in BAD if field in fields}
    missing = sorted(set(registry) - exercised)
    assert not missing, f"no BAD row sets {field} to {missing}"


# ---------------------------------------------------------------------------- unread fields
# A field set away from its default where nothing reads it is refused (it would be silently
# ignored). (id, config file, fields set, words the message must hold: the fields at fault.)
UNREAD = [
    ("data_dir_with_bundled", "vae_mnist", {"data.source": "bundled", "data.dir": "/some/mnist"},
     ["data.dir", "data.source"]),
    ("iwae_k_with_elbo", "vae_mnist", {"objective.name": "elbo", "objective.iwae_k": 50},
     ["objective.iwae_k", "objective.name"]),
    ("sigma_with_bernoulli", "vae_mnist", {"model.likelihood": "bernoulli", "model.sigma": 0.5},
     ["model.sigma", "model.likelihood"]),
    ("momentum_with_adam", "vae_mnist", {"optim.name": "adam", "optim.momentum": 0.5},
     ["optim.momentum", "optim.name"]),
    ("stage_epochs_shorter_than_epochs", "vae_mnist", {"train.epochs": 3, "optim.stage_epochs": (1, 1)},
     ["optim.stage_epochs", "train.epochs"]),
    ("unknown_section", "vae_mnist", {"optimiser": ml_collections.ConfigDict({"learning_rate": 0.1})},
     ["optimiser", "unknown config section"]),
]


@pytest.mark.parametrize("name,config_name,fields,words", UNREAD, ids=[u[0] for u in UNREAD])
def test_unread_field_is_refused_naming_it(name, config_name, fields, words):
    c = load_config(config_name)
    config_lib.validate(c)
    _apply(c, fields)
    with pytest.raises(ConfigError) as info:
        config_lib.validate(c)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(words[0] + ":"), msg
    for w in words:
        assert w in msg, msg


def test_stage_epochs_covering_epochs_is_accepted():
    """The boundary of the stage_epochs rule: stages covering train.epochs exactly pass."""
    c = load_config("vae_mnist")
    _apply(c, {"train.epochs": 3, "optim.stage_epochs": (1, 2), "optim.stage_decay": 0.5})
    config_lib.validate(c)


def test_data_dir_env_with_bundled_is_refused(monkeypatch, tmp_path):
    c = load_config("vae_mnist")
    assert c.data.source == "bundled"
    monkeypatch.delenv(data_lib.DATA_DIR_ENV, raising=False)
    config_lib.validate(c)
    monkeypatch.setenv(data_lib.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigError) as info:
        config_lib.validate(c)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"${data_lib.DATA_DIR_ENV}:") and "data.source" in msg and str(tmp_path) in msg, msg
    c.data.source, c.data.dir = "idx", ""  # the source that reads it is accepted
    config_lib.validate(c)


def test_batch_larger_than_dataset_is_refused():
    c = load_config("vae_mnist")
    c.train.batch_size = 1000
    with pytest.raises(ConfigError, match=r"^train\.batch_size: 1000 exceeds the 512 training images; "
                                          r"choose a value <= the training set size$"):
        config_lib.validate_against_data(c, 512)


def test_sweep_over_missing_field_is_refused():
    c = load_config("vae_mnist")
    with pytest.raises(ConfigError) as info:
        expand.expand(c, [{"model.latent_dim": 2}, {"model.latent_dimm": 4}])
    msg = str(info.value)
    assert "\n" not in msg and "model.latent_dimm: no such config field" in msg, msg
    assert "'latent_dim'" in msg  # the fields that do exist are listed


def test_sweep_point_with_bad_value_is_refused():
    with pytest.raises(ConfigError, match=r"sweep point 1 .*objective\.kl_weight: -1\.0 must be >= 0"):
        expand.expand(load_config("vae_mnist"), [{"objective.kl_weight": 1.0}, {"objective.kl_weight": -1.0}])


# Through the real CLI: exit status 2, exactly one stderr line, nothing trained, only error.log written.
CLI_BAD = [
    (["--config.model.likelihood=poisson"], "error: model.likelihood: 'poisson' is not allowed; choose one of"),
    (["--config.optim.learning_rate=-0.001"], "error: optim.learning_rate: -0.001 must be > 0"),
    (["--config.data.binarization=none"], "error: model.likelihood: 'bernoulli' needs binary pixels"),
    (["--config.objective.iwae_k=50"], "error: objective.iwae_k: set to 50 but objective.name='elbo' does not read it"),
    (["--config.model.latent_dimm=3"], "error: --config.<field> override: no such field 'latent_dimm'"),
    (["--config.train.batch_size=two"], "error: flag --config.train.batch_size=two:"),
]


# Each case is one CLI process (~10 s of imports on 2 cores): two stay in `make test`, all in test-all.
FAST_CLI_BAD = ("--config.model.likelihood=poisson", "--config.model.latent_dimm=3")


@pytest.mark.parametrize("args,first_words", [
    pytest.param(a, w, id=a[0], marks=() if a[0] in FAST_CLI_BAD else pytest.mark.slow) for a, w in CLI_BAD])
def test_cli_exits_2_with_one_line_before_training(tmp_path, args, first_words):
    workdir = tmp_path / "run"
    r = run_cli(["--config=configs/vae_mnist.py:tiny", f"--workdir={workdir}", *args])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith(first_words), r.stderr
    assert "epoch" not in r.stdout
    # Errors found by validate() leave one error.log line; flag-parsing errors happen before the
    # workdir is even known and leave nothing.
    left = sorted(os.listdir(workdir)) if workdir.exists() else []
    assert left in ([], ["error.log"])
    if left:
        assert first_words in (workdir / "error.log").read_text()
