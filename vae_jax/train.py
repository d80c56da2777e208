"""Training: optax optimizer, on-device data, one jitted ``lax.scan`` epoch, checkpoints, logs.

Randomness: ``config.seed`` is split once by purpose (init, data order, training noise, eval);
epoch ``e`` shuffles with ``fold_in(data_key, e)`` and step ``s`` draws its noise (dynamic
binarization, ε of the reparameterization) from ``fold_in(noise_key, s)``, so a resumed run draws
exactly the numbers an uninterrupted one would.
"""
from __future__ import annotations

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from vae_jax import checkpointing
from vae_jax import config_validation
from vae_jax import data as data_lib
from vae_jax import diagnostics
from vae_jax import fused_adam as fused_adam_lib
from vae_jax import models, objectives, parallel, run_meta
from vae_jax import workdir as workdir_lib


class NonFiniteError(RuntimeError):
    """Raised when a loss or gradient is NaN/Inf (train.nan_policy='stop')."""


class TrainState(train_state.TrainState):
    skipped: jax.Array = None  # number of non-finite updates skipped (nan_policy='skip')


def learning_rate(cfg, steps_per_epoch: int | None = None):
    """Constant ``optim.learning_rate``, or with ``optim.stage_epochs=(e0, e1, ...)`` stage i runs
    e_i epochs at learning_rate·stage_decay^i (Burda et al. 2015: e_i = 3^i, decay 10^(-1/7))."""
    stages = tuple(cfg.get("stage_epochs", ()))
    if not stages:
        return cfg.learning_rate
    if not steps_per_epoch:
        raise ValueError("optim.stage_epochs needs the number of steps per epoch")
    bounds = np.cumsum(stages)[:-1] * steps_per_epoch
    values = [cfg.learning_rate * cfg.stage_decay ** i for i in range(len(stages))]
    return optax.join_schedules([optax.constant_schedule(v) for v in values], [int(b) for b in bounds])


def make_optimizer(cfg, steps_per_epoch: int | None = None) -> optax.GradientTransformation:
    lr = learning_rate(cfg, steps_per_epoch)
    if cfg.name == "adam":
        tx = optax.adam(lr, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), eps=cfg.get("eps", 1e-8))
    elif cfg.name == "adamw":
        tx = optax.adamw(lr, weight_decay=cfg.weight_decay)
    elif cfg.name == "sgd":
        tx = optax.sgd(lr, momentum=cfg.get("momentum", 0.9) or None, nesterov=cfg.get("nesterov", False))
    else:
        raise ValueError(f"optim.name: {cfg.name!r} is not one of {list(config_validation.OPTIMIZERS)}")
    if cfg.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
    return tx


def split_keys(seed: int) -> dict[str, jax.Array]:
    init, data, noise, evaluation = jax.random.split(jax.random.PRNGKey(seed), 4)
    return {"init": init, "data": data, "noise": noise, "eval": evaluation}


def create_state(config, model, key, image_shape, steps_per_epoch: int | None = None) -> TrainState:
    params = models.init_params(model, key, image_shape)
    state = TrainState.create(apply_fn=model.apply, params=params,
                              tx=make_optimizer(config.optim, steps_per_epoch),
                              skipped=jnp.zeros((), jnp.int32))
    # TrainState.create sets step to the Python int 0; the jitted epoch returns it as an array, and
    # jit keys its cache on that difference: epoch 2 recompiled (tests/test_no_recompile.py).
    return state.replace(step=jnp.zeros((), jnp.int32))


def init_from_data(config, model, state, train_images_u8):
    """Data-dependent initial values a config asks for; today ``model.offset_init='data_mean'``
    (linear_ae_orth's b starts at the training mean). Used by the trainer and the vmapped sweep."""
    if config.model.get("offset_init", "zeros") != "data_mean":
        return state
    mean = np.mean(train_images_u8, axis=0, dtype=np.float64) / 255.0
    return state.replace(params=model.init_offset(state.params, mean))


def _tree_all_finite(tree):
    """Whether every element of ``tree`` is finite, as one NaN/Inf-propagating sum per leaf.

    Applied to the *updated* parameters: a NaN or Inf anywhere in the gradients reaches them
    through Adam's update (Inf/Inf = NaN), and XLA fuses these sums with the update that writes
    the parameters, where an ``isfinite`` pass over the gradients is a second sweep over memory
    (bench/step_overhead.py: ≈ 5% of the step's CPU time saved)."""
    return jnp.isfinite(sum(jnp.sum(x) for x in jax.tree.leaves(tree)))


def make_train_step(model, config, fused: fused_adam_lib.Plan | None = None, steps_per_epoch: int | None = None):
    """Pure step: (state, uint8 batch, noise_key) -> (state, metrics). With ``fused.use`` the Adam
    update runs as one kernel pass (vae_jax/fused_adam.py) instead of optax's. The step's two
    halves are attributes of it, for ``scan_epoch`` to pipeline: ``prepare(batch_u8, noise_key,
    step)`` -> model input, and ``update(state, input, noise_key)`` -> (state, metrics)."""
    objective = objectives.get_objective(config.objective.name)
    use_fused = fused is not None and fused.use
    lr_transform = (optax.scale_by_learning_rate(learning_rate(config.optim, steps_per_epoch))
                    if use_fused else None)
    obj_cfg, binarization = config.objective, config.data.binarization
    skip_nonfinite = config.train.nan_policy == "skip"
    # A model whose parametrization has a redundant scale may offer ``retract(params)``: a change
    # of the raw parameters that leaves the model's function unchanged, applied after each update.
    retract = getattr(model, "retract", None)

    def loss_fn(params, x, key, step):
        return objective(model, params, x, key, step, obj_cfg)

    def step_keys(noise_key, step):
        return jax.random.split(jax.random.fold_in(noise_key, step))  # binarization, objective

    def prepare(batch_u8, noise_key, step):
        """The model's input for training step ``step`` (dynamic binarization drawn here)."""
        return data_lib.to_float(batch_u8, binarization, step_keys(noise_key, step)[0])

    def update(state, x, noise_key):
        k_obj = step_keys(noise_key, state.step)[1]
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, x, k_obj, state.step)
        if use_fused:
            params, opt_state, params_finite = fused_adam_lib.apply(state.params, grads, state.opt_state,
                                                                    config.optim, lr_transform)
            new = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
            finite = jnp.isfinite(loss) & params_finite
        else:
            new = state.apply_gradients(grads=grads)
            if retract is not None:
                new = new.replace(params=retract(new.params))
            finite = jnp.isfinite(loss) & _tree_all_finite(new.params)
        metrics = dict(metrics, finite=finite.astype(jnp.float32))
        if skip_nonfinite:
            new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
            new = new.replace(step=state.step + 1, skipped=state.skipped + (1 - finite.astype(jnp.int32)))
        return new, metrics

    def train_step(state, batch_u8, noise_key):
        return update(state, prepare(batch_u8, noise_key, state.step), noise_key)

    train_step.prepare, train_step.update = prepare, update
    return train_step


def scan_epoch(train_step, state, images_u8, epoch_key, noise_key, batch_size: int, num_steps: int,
               batch_sharding=None):
    """One epoch (not jitted; the sweep's vmapped trainer reuses it): shuffle by key, ``lax.scan``
    over full batches (the remainder is dropped). ``batch_sharding`` splits each batch over devices."""
    perm = jax.random.permutation(epoch_key, images_u8.shape[0])[: num_steps * batch_size]
    idx = perm.reshape(num_steps, batch_size)

    def batch(i):
        b = images_u8[i]
        if batch_sharding is not None:
            b = jax.lax.with_sharding_constraint(b, batch_sharding)
        return b

    # Each iteration also prepares the next step's input, which the loop carries as a materialized
    # array. Prepared inside the step that uses it, the input is fused into every consumer, and
    # XLA:CPU then recomputes the binarization's threefry hash in the loss and in its gradient:
    # 13% of the step at batch 512 (bench/ablate_step.py --variants trainer,prepare_in_step). The
    # numbers are the same either way; the last iteration prepares an input nobody uses.
    def body(carry, next_i):
        st, x = carry
        new, metrics = train_step.update(st, x, noise_key)
        return (new, train_step.prepare(batch(next_i), noise_key, st.step + 1)), metrics

    x0 = train_step.prepare(batch(idx[0]), noise_key, state.step)
    (state, _), metrics = jax.lax.scan(body, (state, x0), jnp.roll(idx, -1, axis=0))
    return state, metrics


def make_train_epoch(model, config, n_train: int, batch_sharding=None, fused: fused_adam_lib.Plan | None = None):
    """Jitted epoch, state donated. Returns the new state and the per-step metrics stacked [num_steps].
    ``fused``: the run's fused-Adam plan; resolved from ``config.train.fused_adam`` when not given."""
    batch_size = config.train.batch_size
    num_steps = n_train // batch_size
    if fused is None:
        fused = fused_adam_lib.plan(config, model, 1 if batch_sharding is None else batch_sharding.mesh.size)
    train_step = make_train_step(model, config, fused, num_steps)

    @functools.partial(jax.jit, donate_argnums=(0,))
    def train_epoch(state, images_u8, epoch_key, noise_key):
        return scan_epoch(train_step, state, images_u8, epoch_key, noise_key, batch_size, num_steps,
                          batch_sharding)

    return train_epoch, num_steps


def _summarize(step_metrics: dict[str, np.ndarray]) -> dict[str, float]:
    # Means over the steps that were applied: under nan_policy='skip' a skipped step's NaN would
    # otherwise turn the whole epoch's mean into NaN.
    finite = np.asarray(step_metrics["finite"]).astype(bool)
    keep = finite if finite.any() else slice(None)
    return {k: float(np.mean(np.asarray(v)[keep])) for k, v in step_metrics.items() if k != "finite"}


def _check_finite(step_metrics, first_step: int, policy: str):
    finite = np.asarray(step_metrics["finite"]).astype(bool)
    bad = np.flatnonzero(~finite)
    if len(bad) and policy == "stop":
        i = int(bad[0])
        culprit = [k for k, v in step_metrics.items() if k != "finite" and not np.all(np.isfinite(v[i]))]
        what = ", ".join(culprit) if culprit else "gradients"
        raise NonFiniteError(f"non-finite value at step {first_step + i} in {what}; "
                             "stopping and keeping the last good checkpoint")
    return int(len(bad))


class _Loggers:
    def __init__(self, workdir, config, resume_epoch: int):
        self.path = os.path.join(workdir, "metrics.jsonl")
        # On resume drop rows written after the checkpoint we restart from: no duplicated epochs.
        if os.path.exists(self.path):
            # A run killed mid-write may leave a partial last line: drop it (that epoch is redone).
            rows = [json.loads(line) for line in open(self.path) if line.strip().endswith("}")]
            with open(self.path, "w") as f:
                for r in rows:
                    if r["epoch"] <= resume_epoch:
                        f.write(json.dumps(r) + "\n")
        self.tb = None
        if config.train.tensorboard:
            from tensorboardX import SummaryWriter
            self.tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, row: dict):
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.tb.add_scalar(k, v, row["step"])
            self.tb.flush()

    def close(self):
        if self.tb is not None:
            self.tb.close()


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint), evaluates on the test
    set, writes eval.json, metrics.jsonl, run_meta.json, config.json and the report."""
    config_validation.validate(config)
    ds = data_lib.load(config.data)
    config_validation.validate_against_data(config, len(ds.train_images))
    print(f"data: {ds.meta['source']} {ds.meta['name']} ({ds.meta['n_train']} train / "
          f"{ds.meta['n_test']} test, binarization={ds.meta['binarization']})"
          + (f" from {ds.meta.get('dir') or ds.meta.get('file')}" if ds.meta['source'] != 'tfds' else ""),
          flush=True)
    model = models.build_model(config.model, ds.image_shape)
    placement = parallel.data_parallel(config)  # one device, or a batch-sharded mesh
    # Resolved before the workdir is touched: train.fused_adam='on' where it cannot apply is refused
    # like any other bad config value.
    fused = fused_adam_lib.plan(config, model, placement.num_devices)
    with run_meta.open_workdir(workdir, config, ds.meta):
        return _train(config, workdir, ds, model, placement, fused)


def _train(config, workdir, ds, model, placement, fused) -> dict:
    keys = split_keys(config.seed)
    state = create_state(config, model, keys["init"], ds.image_shape,
                         len(ds.train_images) // config.train.batch_size)
    state = init_from_data(config, model, state, ds.train_images)
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    workdir_lib.check_free_space(workdir, checkpointing.nbytes(state), ckpt.max_to_keep)
    start_epoch = 0
    restored = ckpt.restore_latest(state)
    if restored is not None:
        state, start_epoch = restored
        print(f"resumed from checkpoint at epoch {start_epoch} (step {int(state.step)})", flush=True)

    state, train_images = placement.place(state), placement.place(ds.train_images)
    print(f"fused adam: {'on' if fused.use else 'off'} ({fused.reason})", flush=True)
    run_meta.update_run_meta(workdir, fused.as_dict())
    train_epoch, steps_per_epoch = make_train_epoch(model, config, len(ds.train_images),
                                                    placement.batch_sharding, fused)
    loggers = _Loggers(workdir, config, start_epoch)
    epochs = config.train.epochs
    progress = None
    if config.train.progress:
        from tqdm import tqdm
        progress = tqdm(total=epochs, initial=start_epoch, desc="train", unit="epoch", dynamic_ncols=True)
    eval_metrics = {}
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            first_step = int(state.step)
            t0 = time.perf_counter()
            state, step_metrics = train_epoch(state, train_images, jax.random.fold_in(keys["data"], epoch),
                                              keys["noise"])
            step_metrics = jax.device_get(step_metrics)  # the one host sync of the epoch
            dt = time.perf_counter() - t0
            _check_finite(step_metrics, first_step, config.train.nan_policy)
            row = {"epoch": epoch, "step": int(state.step), "epoch_time_s": dt,
                   "examples_per_s": steps_per_epoch * config.train.batch_size / dt}
            row.update({f"train/{k}": v for k, v in _summarize(step_metrics).items()})
            if config.train.nan_policy == "skip":
                row["train/skipped_updates"] = int(state.skipped)
            if epoch % config.train.eval_every == 0 or epoch == epochs:
                eval_metrics = diagnostics.evaluate_with_diagnostics(  # + rate/distortion, active units
                    model, state.params, ds.test_images, keys["eval"], config.data.binarization,
                    config.train.eval_batch_size)
                row.update({f"test/{k}": v for k, v in eval_metrics.items()})
            loggers.write(row)
            if epoch % config.train.checkpoint_every == 0 or epoch == epochs:
                ckpt.save(epoch, state)
            if progress is not None:
                shown = {k.replace("/", "_"): f"{v:.3g}" for k, v in row.items()
                         if k in ("train/neg_elbo", "test/neg_elbo", "train/mse", "test/mse")}
                progress.set_postfix(shown)
                progress.update(1)
            else:
                main_metric = "neg_elbo" if model.is_vae else "mse"
                print(f"epoch {epoch}/{epochs}: train {main_metric} "
                      f"{row.get('train/' + main_metric, float('nan')):.4f}"
                      + (f", test {eval_metrics[main_metric]:.4f}" if f"test/{main_metric}" in row else "")
                      + f" ({row['examples_per_s']:.0f} ex/s)", flush=True)
    finally:
        if progress is not None:
            progress.close()
        loggers.close()
        ckpt.close()

    if not eval_metrics:  # resumed a finished run: evaluate the restored state
        eval_metrics = diagnostics.evaluate_with_diagnostics(
            model, state.params, ds.test_images, keys["eval"], config.data.binarization,
            config.train.eval_batch_size)
    final = dict(eval_metrics, epoch=epochs, step=int(state.step))
    run_meta.update_eval_json(workdir, final)
    if config.report.enabled:
        from vae_jax import report
        report.write_run_report(workdir, config, model, state.params, ds, keys["eval"])
    return final
