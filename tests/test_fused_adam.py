"""The one-pass Adam kernel (vae_jax/fused_adam.py): exact float32 Adam, optax's numbers to the last
bit of rounding, its state structure, the finite flag, vmap, schedules, and the auto/on/off choice."""
import json
import re
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from vae_jax import fused_adam, train
from vae_jax.config_validation import ConfigError

def _kernel_unavailable() -> str:
    try:
        fused_adam.load()
        return ""
    except fused_adam.FusedAdamUnavailable as e:
        return str(e)


# Without a C++ compiler the trainer uses optax (tested everywhere else); these need the kernel.
_WHY_NOT = _kernel_unavailable()
needs_kernel = pytest.mark.skipif(bool(_WHY_NOT), reason=f"fused Adam kernel unavailable: {_WHY_NOT}")

OPTIM = ConfigDict({"name": "adam", "learning_rate": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8,
                    "grad_clip_norm": 0.0})


def _params(key, scale=0.05):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"w": jax.random.normal(k1, (300, 70)) * scale, "b": jax.random.normal(k2, (70,)) * scale,
            "v": jax.random.normal(k3, (5,)) * scale}


def _grads(params, i):
    # Gradients over eight orders of magnitude, so both Adam regimes (|m| ≪ sqrt(v) and ≈) occur.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(100 + i), len(leaves))
    return treedef.unflatten([jax.random.normal(k, x.shape) * 10.0 ** (i % 5 - 4) for k, x in zip(keys, leaves)])


def _fused_step(lr=1e-3):
    lr_tx = optax.scale_by_learning_rate(lr)
    return jax.jit(lambda p, g, s: fused_adam.apply(p, g, s, OPTIM, lr_tx))


def _optax_step(lr=1e-3):
    tx = optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)

    def step(p, g, s):
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s
    return tx, jax.jit(step)


_INV = jax.jit(lambda t: tuple(1.0 / (1 - b ** t).astype(jnp.float32) for b in (0.9, 0.999)))


def _exact_adam(p, g, m, v, t, lr):
    """optax.adam + apply_updates in numpy float32, with correctly rounded division and sqrt."""
    f = np.float32
    m = f(1 - 0.9) * g + f(0.9) * m
    v = f(1 - 0.999) * (g * g) + f(0.999) * v
    # The bias corrections are optax's own scalars (1 - β^t in float32) as the jitted step computes
    # them from a traced count (XLA's pow; an eager 0.999 ** 3 differs in the last bit).
    inv1, inv2 = (np.asarray(x) for x in _INV(jnp.int32(t)))
    u = ((m * inv1) / (np.sqrt(v * inv2) + f(1e-8))) * f(-lr)
    return p + u, m, v


@needs_kernel
def test_kernel_computes_exact_float32_adam():
    params = _params(jax.random.key(0))
    tx, _ = _optax_step()
    state = tx.init(params)
    step = _fused_step()
    ref = {k: (np.asarray(x), np.zeros(x.shape, np.float32), np.zeros(x.shape, np.float32)) for k, x in params.items()}
    for i in range(6):
        g = _grads(params, i)
        params, state, finite = step(params, g, state)
        ref = {k: _exact_adam(*ref[k][:1], np.asarray(g[k]), *ref[k][1:], i + 1, 1e-3) for k in ref}
        assert bool(finite)
        for k in ref:
            np.testing.assert_array_equal(params[k], ref[k][0], err_msg=f"p[{k}] step {i}")
            np.testing.assert_array_equal(state[0].mu[k], ref[k][1], err_msg=f"m[{k}] step {i}")
            np.testing.assert_array_equal(state[0].nu[k], ref[k][2], err_msg=f"v[{k}] step {i}")
    assert int(state[0].count) == 6


@needs_kernel
def test_kernel_matches_optax_up_to_rounding_and_keeps_its_state_structure():
    params = _params(jax.random.key(1))
    tx, optax_step = _optax_step()
    s_ref = s_fused = tx.init(params)
    p_ref = p_fused = params
    fused_step = _fused_step()
    for i in range(20):
        g = _grads(params, i)
        p_ref, s_ref = optax_step(p_ref, g, s_ref)
        p_fused, s_fused, _ = fused_step(p_fused, g, s_fused)
        if i == 0:  # the moments are products and sums only: identical to optax's
            for a, b in zip(jax.tree.leaves(s_ref), jax.tree.leaves(s_fused)):
                np.testing.assert_array_equal(a, b)
    # Checkpoints written with and without the kernel restore into each other.
    assert jax.tree.structure(s_ref) == jax.tree.structure(s_fused)
    for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_fused)):
        # XLA:CPU's vectorized division may differ from a correctly rounded one in the last bit.
        np.testing.assert_allclose(b, a, rtol=2e-6, atol=1e-8)
    assert int(s_fused[0].count) == int(s_ref[0].count) == 20


@needs_kernel
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_new_parameters_are_flagged(bad):
    params = _params(jax.random.key(2))
    tx, _ = _optax_step()
    g = _grads(params, 0)
    step = _fused_step()
    assert bool(step(params, g, tx.init(params))[2])
    g["b"] = g["b"].at[3].set(bad)
    assert not bool(step(params, g, tx.init(params))[2])


@needs_kernel
def test_vmapped_members_equal_separate_calls():
    """A vmapped sweep group calls the kernel once for all members (each with its own step count
    and learning rate); every member gets what its own call gives."""
    members = [_params(jax.random.key(10 + i)) for i in range(3)]
    tx, _ = _optax_step()
    states = [tx.init(p) for p in members]
    for i, s in enumerate(states):  # different step counts per member
        states[i] = (s[0]._replace(count=jnp.int32(5 * i)), s[1])
    grads = [_grads(p, i) for i, p in enumerate(members)]
    lrs = jnp.asarray([1e-3, 3e-4, 1e-2], jnp.float32)

    def one(p, g, s, lr):
        return fused_adam.apply(p, g, s, OPTIM, optax.scale_by_learning_rate(lr))

    stack = lambda trees: jax.tree.map(lambda *x: jnp.stack(x), *trees)  # noqa: E731
    batched = jax.jit(jax.vmap(one))(stack(members), stack(grads), stack(states), lrs)
    for i in range(3):
        single = jax.jit(one)(members[i], grads[i], states[i], lrs[i])
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched)):
            np.testing.assert_array_equal(np.asarray(b)[i], a)


@needs_kernel
def test_learning_rate_schedule_and_its_state_come_from_optax():
    sched = optax.join_schedules([optax.constant_schedule(1e-2), optax.constant_schedule(1e-3)], [3])
    tx = optax.adam(sched)
    params = _params(jax.random.key(3))
    p_ref = p_f = params
    s_ref = s_f = tx.init(params)
    lr_tx = optax.scale_by_learning_rate(sched)
    for i in range(6):  # crosses the boundary at step 3
        g = _grads(params, i)
        u, s_ref = tx.update(g, s_ref, p_ref)
        p_ref = optax.apply_updates(p_ref, u)
        p_f, s_f, _ = jax.jit(lambda p, g, s: fused_adam.apply(p, g, s, OPTIM, lr_tx))(p_f, g, s_f)
    assert int(s_f[1].count) == int(s_ref[1].count) == 6
    for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_f)):
        np.testing.assert_allclose(b, a, rtol=2e-6, atol=1e-8)


def _model_and_config(tiny_config, **train_fields):
    from vae_jax import models

    cfg = tiny_config()
    for k, v in train_fields.items():
        setattr(cfg.train, k, v) if k != "optim" else cfg.optim.update(v)
    return models.build_model(cfg.model, (28, 28, 1)), cfg


@needs_kernel
def test_plan_auto_on_off(tiny_config):
    model, cfg = _model_and_config(tiny_config)
    assert fused_adam.plan(cfg, model).use  # the default: auto, CPU, adam
    cfg.train.fused_adam = "off"
    assert not fused_adam.plan(cfg, model).use
    cfg.train.fused_adam = "auto"
    assert "devices" in fused_adam.plan(cfg, model, num_devices=4).reason
    cfg.optim.name = "sgd"
    p = fused_adam.plan(cfg, model)
    assert not p.use and "optim.name" in p.reason
    cfg.train.fused_adam = "on"
    with pytest.raises(ConfigError, match="train.fused_adam.*optim.name"):
        fused_adam.plan(cfg, model)
    cfg.optim.name, cfg.optim.grad_clip_norm = "adam", 1.0
    with pytest.raises(ConfigError, match="grad_clip_norm"):
        fused_adam.plan(cfg, model)
    cfg.train.fused_adam = "sometimes"
    with pytest.raises(ConfigError, match="train.fused_adam"):
        fused_adam.plan(cfg, model)


def test_missing_compiler_is_reported_not_hidden(tiny_config, tmp_path, monkeypatch):
    model, cfg = _model_and_config(tiny_config)
    monkeypatch.setattr(fused_adam, "_loaded", {})
    monkeypatch.setenv("VAE_JAX_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    p = fused_adam.plan(cfg, model)
    assert not p.use and "no C++ compiler" in p.reason and "no-such-compiler" in p.reason
    cfg.train.fused_adam = "on"
    with pytest.raises(ConfigError, match=re.escape("no C++ compiler")):
        fused_adam.plan(cfg, model)
    assert os.listdir(tmp_path / "native") == []  # no half-built library left behind


@needs_kernel
def test_trainer_with_and_without_the_kernel(tiny_config, tmp_path):
    """Two tiny runs that differ only in train.fused_adam: the choice is recorded, and the losses
    agree to float32 rounding accumulated over the run."""
    out = {}
    for mode in ("on", "off"):
        cfg = tiny_config()
        cfg.train.fused_adam = mode
        cfg.train.tensorboard = False
        cfg.report.enabled = False
        d = str(tmp_path / mode)
        out[mode] = train.train_and_evaluate(cfg, d)
        meta = json.load(open(os.path.join(d, "run_meta.json")))
        assert meta["fused_adam"] is (mode == "on"), meta
    for key in ("neg_elbo", "kl", "rec_loss"):
        np.testing.assert_allclose(out["on"][key], out["off"][key], rtol=1e-3, err_msg=key)
