"""Trainer: golden first step, the learning rate in the optimizer state, determinism,
resume == uninterrupted, epoch metrics."""
import json
import os
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from vae_jax import data
from vae_jax import models
from vae_jax.sweeps import vmap_group
from vae_jax.training import loop
from vae_jax.training import runs
from vae_jax.training import trainer as train


def _one_step_metrics(config):
    ds = data.load(config.data)
    keys = train.split_keys(config.seed)
    model = models.build_model(config.model, ds.image_shape)
    state = train.init_model_state(config, model, keys["init"], ds.image_shape)
    step = jax.jit(train.make_train_step(model, config))
    batch, hparams = jnp.asarray(ds.train_images[: config.train.batch_size]), train.hparams_of(config)
    state, metrics = step(state, batch, keys["noise"], hparams)
    state, metrics2 = step(state, batch, keys["noise"], hparams)
    return {k: float(v) for k, v in metrics.items()}, {k: float(v) for k, v in metrics2.items()}


def test_golden_first_steps():
    """One seeded step of the tiny VAE. If this fails after an intended change of the numerics
    (init, PRNG, objective), regenerate the numbers with this function and say why in the commit."""
    m1, m2 = _one_step_metrics(load_config("vae_mnist"))
    golden = {"neg_elbo": GOLDEN_NEG_ELBO, "kl": GOLDEN_KL}
    np.testing.assert_allclose([m1["neg_elbo"], m1["kl"]], [golden["neg_elbo"], golden["kl"]], rtol=1e-4)
    assert m2["neg_elbo"] < m1["neg_elbo"]  # the step moved downhill
    np.testing.assert_allclose(m1["neg_elbo"], m1["rec_loss"] + m1["kl"], rtol=1e-6)


# Dynamic binarization draws with jax.random.bernoulli. Regenerated with jax 0.10.2, flax 0.12.8,
# optax 0.2.8 (CPU) by, from the repository root:
#   .venv/bin/python -c "import sys; sys.path.insert(0, 'tests'); import test_train as t; \
#       print(t._one_step_metrics(t.load_config('vae_mnist'))[0])"
GOLDEN_NEG_ELBO = 596.17017
GOLDEN_KL = 0.37693423


def _quadratic_objective(model, params, x, key, step, cfg):
    """Σ_leaves Σ w·p² with w ∈ [0.5, 1.4) fixed per element: the gradient 2·w·p is known without
    running the model."""
    leaves = jax.tree.leaves(params)
    loss = sum(jnp.sum(_weights(p) * p * p) for p in leaves)
    return loss, {"loss": loss}


def _weights(p):
    return 0.5 + (jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape) % 7) / 7.0


@pytest.mark.slow
def test_vmapped_members_learning_rates_enter_through_the_optimizer_state():
    """Members of one vmapped step, set up as a sweep group sets them up (vmap_group._init_members:
    the group's optimizer is built from the first config, each member's learning rate goes into its
    optimizer state with set_learning_rate), each move exactly as optax.adam with that member's own
    learning rate does on the same gradient."""
    lrs = (0.05, 0.2, 0.0125)
    configs = []
    for lr in lrs:
        c = load_config("vae_mnist")
        c.optim.learning_rate = lr
        configs.append(c)
    model = models.build_model(configs[0].model, (28, 28, 1))
    ds = SimpleNamespace(image_shape=(28, 28, 1), train_images=np.zeros((64, 28, 28, 1), np.uint8))
    keys, states, hparams = vmap_group._init_members(configs, model, ds, 1)
    step = train.make_train_step(model, configs[0], objective_fn=_quadratic_objective)
    batch = jnp.zeros((4, 28, 28, 1), jnp.uint8)
    noise = jnp.stack([k["noise"] for k in keys])
    new, _ = jax.jit(jax.vmap(step, in_axes=(0, None, 0, 0)))(loop.stack(states), batch, noise, hparams)
    c = configs[0].optim
    for i, (st, lr) in enumerate(zip(states, lrs)):
        grads = jax.tree.map(lambda p: 2.0 * _weights(p) * p, st.params)
        tx = optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps)
        updates, _ = tx.update(grads, tx.init(st.params), st.params)
        want = optax.apply_updates(st.params, updates)
        got = loop.member(new.params, i)
        for g, w, p in zip(jax.tree.leaves(got), jax.tree.leaves(want), jax.tree.leaves(st.params)):
            # Compared as updates: the jitted step and eager optax round Adam's bias corrections
            # differently (measured: ≤ 3e-5 relative to the update).
            np.testing.assert_allclose(np.asarray(g - p), np.asarray(w - p), rtol=1e-4, atol=1e-9)
        # Adam's first step moves each parameter with a non-zero gradient by ≈ lr (|m̂/√v̂| = 1):
        # with the first member's rate for all, members 1 and 2 would fail here.
        delta = np.concatenate([np.abs(np.asarray(g - p)).ravel() for g, p in
                                zip(jax.tree.leaves(got), jax.tree.leaves(st.params))])
        assert np.max(delta) == pytest.approx(lr, rel=1e-3)


def test_set_learning_rate_changes_only_the_learning_rate():
    c = load_config("vae_mnist")
    model = models.build_model(c.model, (28, 28, 1))
    st = train.init_model_state(c, model, jax.random.PRNGKey(0), (28, 28, 1))
    new = train.set_learning_rate(st.opt_state, 0.125)
    assert float(new.hyperparams["learning_rate"]) == 0.125
    assert float(st.opt_state.hyperparams["learning_rate"]) == pytest.approx(c.optim.learning_rate)
    assert jax.tree.structure(new) == jax.tree.structure(st.opt_state)  # same jitted program fits
    assert jax.tree.map(jnp.shape, new) == jax.tree.map(jnp.shape, st.opt_state)


def test_same_seed_same_metrics_and_other_seed_differs(tmp_path):
    c = load_config("vae_mnist")
    c.train.tensorboard = False
    a = runs.train_and_evaluate(c, str(tmp_path / "a"))
    b = runs.train_and_evaluate(c, str(tmp_path / "b"))
    assert a == b
    c.seed = 1
    d = runs.train_and_evaluate(c, str(tmp_path / "d"))
    assert d["neg_elbo"] != a["neg_elbo"]


def test_resume_equals_uninterrupted(tmp_path):
    c = load_config("vae_mnist")
    c.train.epochs = 3
    full = runs.train_and_evaluate(c, str(tmp_path / "full"))
    c.train.epochs = 1
    runs.train_and_evaluate(c, str(tmp_path / "split"))
    c.train.epochs = 3
    resumed = runs.train_and_evaluate(c, str(tmp_path / "split"))
    assert resumed == full
    rows = [json.loads(line) for line in open(tmp_path / "split" / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    rows_full = [json.loads(line) for line in open(tmp_path / "full" / "metrics.jsonl")]
    assert rows[-1]["train/neg_elbo"] == rows_full[-1]["train/neg_elbo"]


def test_training_reduces_loss_and_logs_each_epoch(tmp_path):
    c = load_config("vae_mnist")
    c.train.epochs = 4
    out = runs.train_and_evaluate(c, str(tmp_path))
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert len(rows) == 4
    assert rows[-1]["train/neg_elbo"] < rows[0]["train/neg_elbo"] - 20
    assert out["neg_elbo"] == rows[-1]["test/neg_elbo"]
    assert os.path.isdir(tmp_path / "tb") and os.listdir(tmp_path / "tb")


def test_unroll_changes_no_number(tmp_path):
    """``train.unroll`` only changes how many steps one scan iteration runs (an accelerator
    latency setting); 3 does not divide the steps per epoch, so the remainder path runs too."""
    c = load_config("vae_mnist")
    c.train.tensorboard = False
    a = runs.train_and_evaluate(c, str(tmp_path / "a"))
    c.train.unroll = 3
    b = runs.train_and_evaluate(c, str(tmp_path / "b"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, err_msg=k)


def test_progress_line_shows_the_loss_of_an_objective_without_elbo(capsys):
    """The tasks' regressor has no ELBO: its progress line shows its loss, not 'neg_elbo nan'."""
    cfg = SimpleNamespace(train=SimpleNamespace(nan_policy="stop", eval_every=1, checkpoint_every=1))
    state = SimpleNamespace(step=np.int32(4), skipped=np.int32(0))

    def epoch_fn(state, images, data_key, noise_key, hparams):
        return state, {"loss": np.full(4, 0.25, np.float32), "finite": np.ones(4, bool)}
    loop.run_epochs(epoch_fn, state, None, jax.random.PRNGKey(0), jax.random.PRNGKey(1), {},
                    [loop.Member(cfg, label="regressor ")], 0, 1, 4, batch_size=2)
    out = capsys.readouterr().out
    assert "regressor epoch 1/1: train loss 0.2500" in out and "nan" not in out
