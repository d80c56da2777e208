"""Training several sweep points in one compiled program: ``jax.vmap`` over a member axis.

Members share every array shape and differ only in ``sweep.VMAP_FIELDS``: the seed (their PRNG
keys are stacked), and ``objective.kl_weight`` / ``optim.learning_rate``, which enter the traced
step as per-member scalars (the objective and the optimizer are rebuilt inside the vmapped function
around them). Each member is the same computation as ``train.train_and_evaluate`` of its config:
same init, same data order, same noise, same checkpoint format and output files, so a point can be
resumed either way (tests/test_vmap_sweep.py checks member == alone to float tolerance).

When it pays (``choose``) depends on the model and the machine, so it is measured: a short probe
times PROBE_STEPS steps of the vmapped group against one member and picks vmap when the group's
throughput is ≥ 1.2x. Measured (bench/vmap_probe.py, groups of 8): on the 2-core CPU 0.71x for the
784-500-20 VAE at batch 128 (its matmuls already fill the cores) but 1.51x for the 784-200-200-50
VAE at batch 20; on an H100 3.67x and 5.32x. With several devices the member axis is sharded over
them (``parallel.member_sharding``).
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import checkpointing, diagnostics, fused_adam, models, parallel, run_meta, train

SCALAR_FIELDS = ("objective.kl_weight", "optim.learning_rate")
PROBE_STEPS = 30
PROBE_MIN_SPEEDUP = 1.2


class _Traced:
    """Read-only view of a ConfigDict in which some dotted fields hold traced values."""

    def __init__(self, base, values: dict, prefix: str = ""):
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name):
        path = self._prefix + name
        if path in self._values:
            return self._values[path]
        value = getattr(self._base, name)
        if hasattr(value, "keys") and any(k.startswith(path + ".") for k in self._values):
            return _Traced(value, self._values, path + ".")
        return value

    __getitem__ = __getattr__

    def __contains__(self, name):
        return name in self._base

    def get(self, name, default=None):
        return getattr(self, name) if name in self._base else default


def _stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def make_group_epoch(model, config, n_train: int, fused=None):
    """Jitted, vmapped epoch: (stacked state, images, epoch keys [M], noise keys [M],
    scalars {field: [M]}) -> (stacked state, per-member step metrics [M, steps]). ``fused``: the
    fused-Adam plan (vae_jax/fused_adam.py), resolved for one device when not given."""
    bs = config.train.batch_size
    num_steps = n_train // bs
    if fused is None:
        fused = fused_adam.plan(config, model, 1)

    def member_epoch(state, images_u8, epoch_key, noise_key, scalars):
        cfg = _Traced(config, scalars)
        tx = train.make_optimizer(cfg.optim, num_steps)  # this member's learning rate
        step = train.make_train_step(model, cfg, fused, num_steps)  # this member's KL weight
        new, metrics = train.scan_epoch(step, state.replace(tx=tx), images_u8, epoch_key, noise_key,
                                        bs, num_steps)
        return new.replace(tx=state.tx), metrics

    epoch = jax.jit(jax.vmap(member_epoch, in_axes=(0, None, 0, 0, 0)), donate_argnums=(0,))
    return epoch, num_steps


def _scalars(configs):
    return {f: jnp.asarray([float(c[f.split(".")[0]][f.split(".")[1]]) for c in configs], jnp.float32)
            for f in SCALAR_FIELDS}


def _init_members(configs, model, ds, steps_per_epoch):
    """Per-member keys and states exactly as train._train creates them (the base config's tx is
    kept as the static structure; the member's own learning rate is injected in the step)."""
    keys = [train.split_keys(c.seed) for c in configs]
    states = [train.init_from_data(configs[0], model,
                                   train.create_state(configs[0], model, k["init"], ds.image_shape, steps_per_epoch),
                                   ds.train_images) for k in keys]
    return keys, [s.replace(tx=states[0].tx) for s in states]  # one static tx: stackable pytrees


def train_group(configs, workdirs, ds) -> list[dict]:
    """Trains the configs of one vmap group, each into its own workdir; returns final metrics.
    Members that resume from different epochs train in sub-groups by start epoch. Every member's
    workdir is claimed (run_meta.open_workdirs) before anything is computed and stays locked until
    the last result is written; one member in use by a live run refuses the whole group."""
    with run_meta.open_workdirs(workdirs, configs, ds.meta):  # writes config.json and run_meta.json
        return _train_group(configs, workdirs, ds)


def _train_group(configs, workdirs, ds) -> list[dict]:
    base = configs[0]
    model = models.build_model(base.model, ds.image_shape)
    steps_per_epoch = len(ds.train_images) // base.train.batch_size
    keys, states = _init_members(configs, model, ds, steps_per_epoch)
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
                             [keys[i] for i in idx], [states[i] for i in idx], start, model, ds)
        for i, r in zip(idx, out):
            results[i] = r
    return results


def _train_members(configs, workdirs, keys, states, start_epoch, model, ds) -> list[dict]:
    base, m = configs[0], len(configs)
    sharding = parallel.member_sharding(m)
    fused = fused_adam.plan(base, model, 1 if sharding is None else sharding.mesh.size)
    for d in workdirs:
        run_meta.update_run_meta(d, fused.as_dict())
    epoch_fn, steps = make_group_epoch(model, base, len(ds.train_images), fused)
    stacked = parallel.shard_members(_stack(states), sharding)
    data_keys = parallel.shard_members(jnp.stack([k["data"] for k in keys]), sharding)
    noise_keys = parallel.shard_members(jnp.stack([k["noise"] for k in keys]), sharding)
    scalars = parallel.shard_members(_scalars(configs), sharding)
    images = jax.device_put(ds.train_images)
    loggers = [train._Loggers(d, c, start_epoch) for c, d in zip(configs, workdirs)]
    ckpts = [checkpointing.Checkpointer(os.path.join(d, "checkpoints")) for d in workdirs]
    epochs = base.train.epochs
    evals = [{} for _ in configs]

    def evaluate(i, params):
        return diagnostics.evaluate_with_diagnostics(model, params, ds.test_images, keys[i]["eval"],
                                                     base.data.binarization, base.train.eval_batch_size)
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            t0 = time.perf_counter()
            epoch_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(data_keys, epoch)
            stacked, step_metrics = epoch_fn(stacked, images, epoch_keys, noise_keys, scalars)
            step_metrics = jax.device_get(step_metrics)
            dt = time.perf_counter() - t0
            for i, (c, d) in enumerate(zip(configs, workdirs)):
                mine = {k: v[i] for k, v in step_metrics.items()}
                first_step = int(stacked.step[i]) - steps
                train._check_finite(mine, first_step, c.train.nan_policy)
                row = {"epoch": epoch, "step": first_step + steps, "epoch_time_s": dt, "vmap_members": m,
                       "examples_per_s": m * steps * base.train.batch_size / dt}
                row.update({f"train/{k}": v for k, v in train._summarize(mine).items()})
                state_i = _member(stacked, i)
                if epoch % base.train.eval_every == 0 or epoch == epochs:
                    evals[i] = evaluate(i, state_i.params)
                    row.update({f"test/{k}": v for k, v in evals[i].items()})
                loggers[i].write(row)
                if epoch % base.train.checkpoint_every == 0 or epoch == epochs:
                    ckpts[i].save(epoch, state_i)
            print(f"vmap x{m} epoch {epoch}/{epochs}: train neg_elbo "
                  + " ".join(f"{float(np.mean(step_metrics['neg_elbo'][i])):.2f}" for i in range(m))
                  + f" ({m * steps * base.train.batch_size / dt:.0f} ex/s)", flush=True)
    finally:
        for lg, ck in zip(loggers, ckpts):
            lg.close()
            ck.close()
    results = []
    for i, (c, d) in enumerate(zip(configs, workdirs)):
        params = _member(stacked, i).params
        final = dict(evals[i] or evaluate(i, params), epoch=epochs, step=int(stacked.step[i]))
        run_meta.update_eval_json(d, final)
        if c.report.enabled:
            from vae_jax import report
            report.write_run_report(d, c, model, params, ds, keys[i]["eval"])
        results.append(final)
    return results


# ---------------------------------------------------------------------------- vmap or not
def probe_speedup(configs, ds, steps: int = PROBE_STEPS) -> float:
    """Group throughput / one member's, timed over ``steps`` steps after compilation."""
    base = configs[0]
    n = min(len(ds.train_images), steps * base.train.batch_size)
    small = ds.train_images[:n]
    model = models.build_model(base.model, ds.image_shape)
    images = jax.device_put(small)

    def timed(cfgs):
        keys, states = _init_members(cfgs, model, ds, n // base.train.batch_size)
        fn, _ = make_group_epoch(model, base, n)
        st = _stack(states)
        ek = jnp.stack([k["data"] for k in keys])
        nk = jnp.stack([k["noise"] for k in keys])
        sc = _scalars(cfgs)
        st, _ = fn(st, images, ek, nk, sc)  # compile
        jax.block_until_ready(st)
        t0 = time.perf_counter()
        st, metrics = fn(st, images, ek, nk, sc)
        jax.block_until_ready(metrics)
        return time.perf_counter() - t0

    return len(configs) * timed(configs[:1]) / timed(configs)


def choose(points, mode: str) -> str:
    """'vmap' or 'sequential' for one group of same-shape points (see the module docstring)."""
    if len(points) < 2 or mode == "off":
        return "sequential"
    if mode == "on":
        return "vmap"
    from vae_jax import data as data_lib
    speedup = probe_speedup([p.config for p in points], data_lib.load(points[0].config.data))
    how = "vmap" if speedup >= PROBE_MIN_SPEEDUP else "sequential"
    print(f"vmap probe ({len(points)} members, {jax.default_backend()}): {speedup:.2f}x -> {how}", flush=True)
    return how
