"""Training several sweep points in one compiled program: ``jax.vmap`` over a member axis.

Members share every array shape and differ only in ``expand.VMAP_FIELDS``: the seed (their PRNG
keys are stacked), the learning rate (each member's optimizer state carries its own, injected by
``optax.inject_hyperparams``) and the KL weight β (a per-member ``hparams`` argument of the step).
Each member is the same computation as ``runs.train_and_evaluate`` of its config: same init, data
order, noise, checkpoint format and output files, so a point can be resumed either way
(tests/test_vmap_sweep.py checks member == alone to float tolerance). Training goes through the
one loop (``training/loop.py``).

When it pays (``choose``) depends on the model and the machine, so it is measured: a short probe
times PROBE_STEPS steps of the vmapped group against one member and picks vmap when the group's
throughput is ≥ PROBE_MIN_SPEEDUP. With several devices the member axis is sharded over them.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp

from vae_jax import data as data_lib
from vae_jax import models
import vae_jax.training.checkpointing as checkpointing
import vae_jax.training.loop as loop
import vae_jax.training.parallel as parallel
import vae_jax.training.run_meta as run_meta
import vae_jax.training.runs as runs
import vae_jax.training.trainer as trainer

PROBE_STEPS = 30
PROBE_MIN_SPEEDUP = 1.2


def _init_members(configs, model, ds, steps_per_epoch):
    """Per-member keys, states (exactly as a single run creates them, with the member's learning
    rate in its optimizer state) and step hparams."""
    keys = [trainer.split_keys(c.seed) for c in configs]
    states = []
    for c, k in zip(configs, keys):
        st = trainer.init_model_state(configs[0], model, k["init"], ds.image_shape, ds.train_images,
                                      steps_per_epoch)
        # One optax object for all: TrainState keeps ``tx`` as static pytree metadata, and states
        # from separate make_optimizer calls have unequal metadata, so loop.stack refused them.
        st = st.replace(tx=states[0].tx) if states else st
        states.append(st.replace(opt_state=trainer.set_learning_rate(st.opt_state, c.optim.learning_rate)))
    hparams = loop.stack([trainer.hparams_of(c) for c in configs])
    return keys, states, hparams


def train_group(configs, workdirs, ds) -> list[dict]:
    """Trains the configs of one vmap group, each into its own workdir; returns final metrics.
    Members that resume from different epochs train in sub-groups by start epoch. Every member's
    workdir is claimed before anything is computed and stays locked until the last result is
    written; one member in use by a live run refuses the whole group."""
    with run_meta.open_workdirs(workdirs, configs, ds.meta):
        base = configs[0]
        model = models.build_model(base.model, ds.image_shape)
        steps_per_epoch = len(ds.train_images) // base.train.batch_size
        keys, states, hparams = _init_members(configs, model, ds, steps_per_epoch)
        starts = []
        for i, d in enumerate(workdirs):
            ckpt = checkpointing.Checkpointer(os.path.join(d, "checkpoints"))
            restored = ckpt.restore_latest(states[i])
            ckpt.close()
            if restored is not None:
                states[i], start = restored
                print(f"{d}: resumed from checkpoint at epoch {start}", flush=True)
            starts.append(0 if restored is None else start)
        results = [None] * len(configs)
        for start in sorted(set(starts)):
            idx = [i for i, s in enumerate(starts) if s == start]
            out = _train_members([configs[i] for i in idx], [workdirs[i] for i in idx],
                                 [keys[i] for i in idx], [states[i] for i in idx],
                                 jax.tree.map(lambda h: h[jnp.asarray(idx)], hparams), start, model, ds)
            for i, r in zip(idx, out):
                results[i] = r
        return results


def _train_members(configs, workdirs, keys, states, hparams, start_epoch, model, ds) -> list[dict]:
    base, m = configs[0], len(configs)
    sharding = parallel.member_sharding(m)
    epoch_fn, steps = trainer.make_epoch(model, base, len(ds.train_images), vmapped=True)
    stacked = parallel.shard_members(loop.stack(states), sharding)
    data_keys = parallel.shard_members(jnp.stack([k["data"] for k in keys]), sharding)
    noise_keys = parallel.shard_members(jnp.stack([k["noise"] for k in keys]), sharding)
    hparams = parallel.shard_members(hparams, sharding)
    members = [loop.Member(c, ckpt=checkpointing.Checkpointer(os.path.join(d, "checkpoints")),
                           log=loop.MetricsLog(d, start_epoch, c.train.tensorboard),
                           evaluate=runs.make_evaluator(c, model, ds, k["eval"]))
               for c, d, k in zip(configs, workdirs, keys)]
    try:
        stacked = loop.run_epochs(epoch_fn, stacked, jax.device_put(ds.train_images), data_keys, noise_keys,
                                  hparams, members, start_epoch, base.train.epochs, steps, vmapped=True,
                                  batch_size=base.train.batch_size)
    finally:
        for mem in members:
            mem.close()
    results = []
    for i, (mem, d) in enumerate(zip(members, workdirs)):
        st = loop.member(stacked, i)
        final = dict(mem.last_eval or mem.evaluate(st.params), epoch=base.train.epochs, step=int(st.step))
        run_meta.update_eval_json(d, final)
        results.append(final)
    return results


# ---------------------------------------------------------------------------- vmap or not
def probe_speedup(configs, ds, steps: int = PROBE_STEPS) -> float:
    """Group throughput / one member's, timed over ``steps`` steps after compilation."""
    base = configs[0]
    n = min(len(ds.train_images), steps * base.train.batch_size)
    model = models.build_model(base.model, ds.image_shape)
    images = jax.device_put(ds.train_images[:n])

    def timed(cfgs):
        keys, states, hparams = _init_members(cfgs, model, ds, n // base.train.batch_size)
        fn, _ = trainer.make_epoch(model, base, n, vmapped=True)
        st = loop.stack(states)
        ek = jnp.stack([k["data"] for k in keys])
        nk = jnp.stack([k["noise"] for k in keys])
        st, _ = fn(st, images, ek, nk, hparams)  # compile
        jax.block_until_ready(st)
        t0 = time.perf_counter()
        st, metrics = fn(st, images, ek, nk, hparams)
        jax.block_until_ready(metrics)
        return time.perf_counter() - t0

    return len(configs) * timed(configs[:1]) / timed(configs)


def choose(points, mode: str) -> str:
    """'vmap' or 'sequential' for one group of same-shape points (see the module docstring)."""
    if len(points) < 2 or mode == "off":
        return "sequential"
    if mode == "on":
        return "vmap"
    speedup = probe_speedup([p.config for p in points], data_lib.load(points[0].config.data))
    how = "vmap" if speedup >= PROBE_MIN_SPEEDUP else "sequential"
    print(f"vmap probe ({len(points)} members, {jax.default_backend()}): {speedup:.2f}x -> {how}", flush=True)
    return how
