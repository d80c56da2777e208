"""Non-finite loss or gradients: stop with the step and the metric (keeping the last good
checkpoint, exit status 3), or with train.nan_policy='skip' skip the update and count it.

Faults are injected by test-only objectives (registered here, removed afterwards) that turn the
ELBO into NaN/Inf at chosen global steps.
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config

from vae_jax.training import checkpointing
from vae_jax import models
from vae_jax import objectives
from vae_jax.training import runs
from vae_jax.training import trainer as train
from vae_jax import main as main_lib

STEPS_PER_EPOCH = 8  # tiny config: 512 training images / batch 64


def _bad_at(step, steps):
    return jnp.any(jnp.asarray(steps) == step)


def nan_loss(model, params, x, key, step, cfg):
    """ELBO times NaN at the steps in BAD_STEPS: loss and gradients both non-finite."""
    loss, metrics = objectives.get_objective("elbo")(model, params, x, key, step, cfg)
    loss = loss * jnp.where(_bad_at(step, BAD_STEPS), jnp.nan, 1.0)
    return loss, dict(metrics, loss=loss)


def inf_grad(model, params, x, key, step, cfg):
    """Finite loss, infinite/NaN gradient at BAD_STEPS (d sqrt(u)/du at u = 0)."""
    loss, metrics = objectives.get_objective("elbo")(model, params, x, key, step, cfg)
    leaf = jax.tree.leaves(params)[0].ravel()[0]
    extra = jax.lax.cond(_bad_at(step, BAD_STEPS), lambda p: jnp.sqrt(jnp.abs(p) * 0.0),
                         lambda p: 0.0 * p, leaf)
    return loss + extra, metrics


BAD_STEPS = (11,)


@pytest.fixture
def injected(monkeypatch):
    """Registers the faulty objectives for one test; ``set(steps)`` picks the faulty steps."""
    for name, fn in (("test_nan_loss", nan_loss), ("test_inf_grad", inf_grad)):
        objectives.register(name)(fn)
    yield lambda steps: monkeypatch.setattr(sys.modules[__name__], "BAD_STEPS", tuple(steps))
    for name in ("test_nan_loss", "test_inf_grad"):
        objectives.OBJECTIVES.pop(name)


def _cfg(objective, policy="stop", epochs=3):
    c = load_config("vae_mnist")
    c.objective.name = objective
    c.train.nan_policy = policy
    c.train.epochs = epochs
    c.train.tensorboard = False
    c.report.enabled = False
    return c


def _epochs_saved(workdir):
    return sorted(int(e) for e in os.listdir(os.path.join(workdir, "checkpoints")) if e.isdigit())


@pytest.mark.parametrize("objective,metric", [("test_nan_loss", "loss"), ("test_inf_grad", "gradients")])
def test_stop_names_step_and_metric_and_keeps_last_good_checkpoint(tmp_path, capsys, injected,
                                                                   objective, metric):
    injected([11])  # epoch 2 (steps 8..15)
    workdir = str(tmp_path / "run")
    with pytest.raises(SystemExit) as info:
        main_lib.run_mode("train", _cfg(objective), workdir)
    assert info.value.code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"non-finite value at step 11 in {metric}" in err[0], err
    assert _epochs_saved(workdir) == [1]  # the NaN epoch was never saved
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == [1]
    assert "step 11" in open(os.path.join(workdir, "error.log")).read()
    assert not os.path.exists(os.path.join(workdir, "run.lock"))  # the lock was released

    # The kept checkpoint restores to finite parameters at the end of epoch 1.
    c = _cfg(objective)
    model = models.build_model(c.model, (28, 28, 1))
    state = train.init_model_state(c, model, train.split_keys(0)["init"], (28, 28, 1), None, STEPS_PER_EPOCH)
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    restored, epoch = ckpt.restore_latest(state)
    ckpt.close()
    assert epoch == 1 and int(restored.step) == STEPS_PER_EPOCH
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(restored.params))


def test_skip_policy_skips_and_counts(tmp_path, injected):
    injected([3, 11, 12])  # one bad step in epoch 1, two in epoch 2
    workdir = str(tmp_path / "run")
    final = runs.train_and_evaluate(_cfg("test_nan_loss", policy="skip"), workdir)
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["train/skipped_updates"] for r in rows] == [1, 3, 3]
    # epoch means are over the applied steps, so they stay finite
    assert all(np.isfinite(r["train/loss"]) and np.isfinite(r["train/neg_elbo"]) for r in rows)
    assert np.isfinite(final["neg_elbo"]) and final["step"] == 3 * STEPS_PER_EPOCH


def test_skipped_update_leaves_params_and_optimizer_bit_identical(injected):
    injected([0])
    c = _cfg("test_nan_loss", policy="skip")
    model = models.build_model(c.model, (28, 28, 1))
    state = train.init_model_state(c, model, jax.random.PRNGKey(0), (28, 28, 1), None, STEPS_PER_EPOCH)
    step = jax.jit(train.make_train_step(model, c))
    batch, hparams = jnp.full((8, 28, 28, 1), 128, jnp.uint8), train.hparams_of(c)
    new, metrics = step(state, batch, jax.random.PRNGKey(1), hparams)
    assert float(metrics["finite"]) == 0.0 and int(new.skipped) == 1 and int(new.step) == 1
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), (state.params, state.opt_state),
                        (new.params, new.opt_state))
    assert all(jax.tree.leaves(same))
    # the next (finite) step is applied
    newer, metrics = step(new, batch, jax.random.PRNGKey(1), hparams)
    assert float(metrics["finite"]) == 1.0 and int(newer.skipped) == 1
    assert not bool(jnp.array_equal(jax.tree.leaves(newer.params)[0], jax.tree.leaves(state.params)[0]))
