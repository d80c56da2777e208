"""Bad configurations are refused before any work, with one line naming the field and what is allowed.

Most rows go through ``config_validation.validate`` in-process (the function the CLI calls first);
a few go through the real CLI in a subprocess to check the exit status, the single stderr line and
that nothing was trained.
"""
import os

import pytest
from conftest import load_config, run_cli

from vae_jax import config as config_validation
from vae_jax.errors import ConfigError


def _set(**fields):
    """A mutation setting dotted fields, e.g. _set(**{"model.latent_dim": 0})."""
    def mutate(c):
        for path, value in fields.items():
            node = c
            *parents, leaf = path.split(".")
            for p in parents:
                node = node[p]
            node[leaf] = value
    return mutate


# (id, mutation, field named in the message, text saying what is allowed)
BAD = [
    ("unknown_likelihood", _set(**{"model.likelihood": "poisson"}), "model.likelihood", "'bernoulli'"),
    ("unknown_objective", _set(**{"objective.name": "elbow"}), "objective.name", "'elbo'"),
    ("unknown_model_kind", _set(**{"model.kind": "gan"}), "model.kind", "'vae'"),
    ("unknown_optimizer", _set(**{"optim.name": "adagrad"}), "optim.name", "'adam'"),
    ("unknown_data_source", _set(**{"data.source": "web"}), "data.source", "'idx'"),
    ("unknown_binarization", _set(**{"data.binarization": "otsu"}), "data.binarization", "'dynamic'"),
    ("unknown_nan_policy", _set(**{"train.nan_policy": "ignore"}), "train.nan_policy", "'skip'"),
    ("zero_latent", _set(**{"model.latent_dim": 0}), "model.latent_dim", ">= 1"),
    ("negative_latent", _set(**{"model.latent_dim": -4}), "model.latent_dim", ">= 1"),
    ("zero_batch", _set(**{"train.batch_size": 0}), "train.batch_size", ">= 1"),
    ("zero_lr", _set(**{"optim.learning_rate": 0.0}), "optim.learning_rate", "> 0"),
    ("negative_lr", _set(**{"optim.learning_rate": -1e-3}), "optim.learning_rate", "> 0"),
    ("negative_kl_weight", _set(**{"objective.kl_weight": -0.5}), "objective.kl_weight", ">= 0"),
    ("iwae_k_zero", _set(**{"objective.name": "iwae", "objective.iwae_k": 0}), "objective.iwae_k", ">= 1"),
    ("zero_epochs", _set(**{"train.epochs": 0}), "train.epochs", ">= 1"),
    ("zero_hidden_width", _set(**{"model.encoder_hidden": (32, 0)}), "model.encoder_hidden", "positive integers"),
    ("zero_sigma", _set(**{"model.sigma": 0.0}), "model.sigma", "> 0"),
    ("negative_seed", _set(**{"seed": -1}), "seed", ">= 0"),
    ("ae_objective_on_vae", _set(**{"objective.name": "ae"}), "objective.name", "model.kind in"),
    ("elbo_on_ae", _set(**{"model.kind": "ae", "model.likelihood": "gaussian"}), "objective.name", "model.kind in"),
    ("linear_ae_with_bernoulli", _set(**{"model.kind": "linear_ae", "objective.name": "ae",
                                         "model.likelihood": "bernoulli"}), "model.likelihood", "'gaussian'"),
    ("bernoulli_on_unbinarized", _set(**{"data.binarization": "none"}), "model.likelihood", "'dynamic'"),
    ("bundled_not_mnist", _set(**{"data.name": "cifar10"}), "data.name", "'mnist'"),
    ("momentum_one", _set(**{"optim.name": "sgd", "optim.momentum": 1.0}), "optim.momentum", "< 1"),
    ("unknown_offset_init", _set(**{"model.offset_init": "pca"}), "model.offset_init", "'data_mean'"),
    ("offset_init_on_vae", _set(**{"model.offset_init": "data_mean"}), "model.offset_init", "'linear_ae_orth'"),
]


@pytest.mark.parametrize("name,mutate,field,allowed", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_refused_with_one_line(name, mutate, field, allowed):
    c = load_config("vae_mnist")
    config_validation.validate(c)  # the unmodified config is valid: the mutation is the only fault
    mutate(c)
    with pytest.raises(ConfigError) as info:
        config_validation.validate(c)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(field + ":") or f" {field}" in msg, msg
    assert allowed in msg, msg


def test_at_least_15_rows():
    assert len(BAD) >= 15


def test_batch_larger_than_dataset_is_refused():
    c = load_config("vae_mnist")
    c.train.batch_size = 1000
    with pytest.raises(ConfigError, match=r"^train\.batch_size: 1000 exceeds the 512 training images; "
                                          r"choose a value <= the training set size$"):
        config_validation.validate_against_data(c, 512)


def test_sweep_over_missing_field_is_refused():
    sweep = pytest.importorskip("vae_jax.sweep")
    c = load_config("vae_mnist")
    with pytest.raises(ConfigError) as info:
        sweep.expand(c, [{"model.latent_dim": 2}, {"model.latent_dimm": 4}])
    msg = str(info.value)
    assert "\n" not in msg and "model.latent_dimm: no such config field" in msg, msg
    assert "'latent_dim'" in msg  # the fields that do exist are listed


def test_sweep_point_with_bad_value_is_refused():
    sweep = pytest.importorskip("vae_jax.sweep")
    with pytest.raises(ConfigError, match=r"sweep point 1 .*objective\.kl_weight: -1\.0 must be >= 0"):
        sweep.expand(load_config("vae_mnist"), [{"objective.kl_weight": 1.0}, {"objective.kl_weight": -1.0}])


# Through the real CLI: exit status 2, exactly one stderr line, nothing trained, only error.log written.
CLI_BAD = [
    (["--config.model.likelihood=poisson"], "error: model.likelihood: 'poisson' is not allowed; choose one of"),
    (["--config.optim.learning_rate=-0.001"], "error: optim.learning_rate: -0.001 must be > 0"),
    (["--config.data.binarization=none"], "error: model.likelihood: 'bernoulli' needs binary pixels"),
    (["--config.model.latent_dimm=3"], "error: --config.<field> override: no such field 'latent_dimm'"),
    (["--config.train.batch_size=two"], "error: flag --config.train.batch_size=two:"),
]


@pytest.mark.parametrize("args,first_words", CLI_BAD, ids=[a[0][0] for a in CLI_BAD])
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
