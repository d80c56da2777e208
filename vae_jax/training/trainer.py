"""The pure pieces of training: optimizer, train state, one jitted step, one ``lax.scan`` epoch.

Randomness: ``config.seed`` is split once by purpose (init, data order, training noise, eval);
epoch ``e`` shuffles with ``fold_in(data_key, e)`` and step ``s`` draws its noise (dynamic
binarization, ε of the reparameterization) from ``fold_in(noise_key, s)``, so a resumed run draws
exactly the numbers an uninterrupted one would.

Per-run scalars that a vmapped sweep group varies between members enter as explicit arguments:
the learning rate is an ``optax.inject_hyperparams`` entry of the optimizer state, and the KL
weight β is the ``hparams["kl_weight"]`` argument of the step.
"""
from __future__ import annotations

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from vae_jax import checks, models
from vae_jax import data as data_lib
from vae_jax import objectives
from vae_jax.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
NAN_POLICIES = ("stop", "skip")
# optim fields read only by some optimizers (set away from the default elsewhere: refused).
_OPTIM_FIELDS = {"b1": ("adam",), "b2": ("adam",), "eps": ("adam",), "weight_decay": ("adamw",),
                 "momentum": ("sgd",), "nesterov": ("sgd",)}


class TrainState(train_state.TrainState):
    skipped: jax.Array = None  # number of non-finite updates skipped (nan_policy='skip')


def validate(cfg, defaults) -> None:
    """``optim.*`` and ``train.*``."""
    o = cfg.optim
    checks.choice(cfg, "optim.name", OPTIMIZERS)
    checks.number(cfg, "optim.learning_rate", low=0, low_inclusive=False)
    checks.number(cfg, "optim.weight_decay", low=0)
    checks.number(cfg, "optim.grad_clip_norm", low=0)
    checks.int_tuple(cfg, "optim.stage_epochs")
    checks.positive_int(cfg, "train.unroll")
    checks.number(cfg, "optim.stage_decay", low=0, low_inclusive=False)
    for f in ("b1", "b2"):
        checks.number(cfg, f"optim.{f}", low=0, high=1)
    checks.number(cfg, "optim.eps", low=0, low_inclusive=False)
    checks.number(cfg, "optim.momentum", low=0)
    if o.momentum >= 1:
        raise ConfigError(f"optim.momentum: {o.momentum!r} must be < 1")
    for field, names in _OPTIM_FIELDS.items():
        if o[field] != defaults.optim[field] and o.name not in names:
            raise ConfigError(f"optim.{field}: set to {o[field]!r} but optim.name={o.name!r} does not "
                              f"read it (read with optim.name in {list(names)}); remove the override")
    if not o.stage_epochs and o.stage_decay != defaults.optim.stage_decay:
        raise ConfigError(f"optim.stage_decay: set to {o.stage_decay!r} but optim.stage_epochs is empty "
                          "(a constant learning rate); set optim.stage_epochs or remove the override")
    if o.stage_epochs and sum(o.stage_epochs) < cfg.train.epochs:
        raise ConfigError(f"optim.stage_epochs: {tuple(o.stage_epochs)} covers {sum(o.stage_epochs)} "
                          f"epochs but train.epochs={cfg.train.epochs}; the last stage would be extended "
                          "silently, so make them agree")
    for f in ("epochs", "batch_size", "eval_every", "checkpoint_every", "eval_batch_size"):
        checks.positive_int(cfg, f"train.{f}")
    checks.choice(cfg, "train.nan_policy", NAN_POLICIES)
    checks.boolean(cfg, "train.evaluate_after")
    checks.choice(cfg, "train.data_parallel", ("auto", "on", "off"))


def learning_rate_scale(cfg, steps_per_epoch: int | None = None):
    """The learning rate relative to ``optim.learning_rate``: 1, or with ``optim.stage_epochs=(e0,
    e1, ...)`` stage_decay^i during stage i (Burda et al. 2015: e_i = 3^i, decay 10^(-1/7))."""
    stages = tuple(cfg.get("stage_epochs", ()))
    if not stages:
        return None
    if not steps_per_epoch:
        raise ValueError("optim.stage_epochs needs the number of steps per epoch")
    bounds = np.cumsum(stages)[:-1] * steps_per_epoch
    values = [cfg.stage_decay ** i for i in range(len(stages))]
    return optax.join_schedules([optax.constant_schedule(v) for v in values], [int(b) for b in bounds])


def make_optimizer(cfg, steps_per_epoch: int | None = None) -> optax.GradientTransformation:
    """The optax optimizer of ``optim``; its learning rate lives in the optimizer state
    (``inject_hyperparams``), so members of a vmapped group can carry different ones."""
    if cfg.name == "adam":
        base = optax.inject_hyperparams(optax.adam)(cfg.learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    elif cfg.name == "adamw":
        base = optax.inject_hyperparams(optax.adamw)(cfg.learning_rate, weight_decay=cfg.weight_decay)
    elif cfg.name == "sgd":
        base = optax.inject_hyperparams(optax.sgd)(cfg.learning_rate, momentum=cfg.momentum or None,
                                                   nesterov=cfg.nesterov)
    else:
        raise ConfigError(f"optim.name: {cfg.name!r} is not one of {list(OPTIMIZERS)}")
    parts = [base]
    scale = learning_rate_scale(cfg, steps_per_epoch)
    if scale is not None:
        parts.append(optax.scale_by_schedule(scale))
    if cfg.grad_clip_norm:
        parts.insert(0, optax.clip_by_global_norm(cfg.grad_clip_norm))
    return optax.chain(*parts) if len(parts) > 1 else base


# optax.inject_hyperparams builds an InjectStatefulHyperparamsState (optax 0.2.8), which is not a
# subclass of InjectHyperparamsState: checking for the latter alone left the learning rate unchanged.
_INJECTED_STATES = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


def set_learning_rate(opt_state, lr):
    """A copy of ``opt_state`` whose injected learning rate is ``lr``."""
    def fix(s):
        if isinstance(s, _INJECTED_STATES):
            return s._replace(hyperparams={**s.hyperparams, "learning_rate": jnp.asarray(lr, jnp.float32)})
        return s
    return jax.tree.map(fix, opt_state, is_leaf=lambda s: isinstance(s, _INJECTED_STATES))


def split_keys(seed: int) -> dict[str, jax.Array]:
    init, data, noise, evaluation = jax.random.split(jax.random.PRNGKey(seed), 4)
    return {"init": init, "data": data, "noise": noise, "eval": evaluation}


def create_state(params, apply_fn, tx) -> TrainState:
    state = TrainState.create(apply_fn=apply_fn, params=params, tx=tx, skipped=jnp.zeros((), jnp.int32))
    # TrainState.create sets step to the Python int 0; the jitted epoch returns it as an array, and
    # jit keys its cache on that difference: epoch 2 recompiled (tests/test_no_recompile.py).
    return state.replace(step=jnp.zeros((), jnp.int32))


def init_model_state(config, model, key, image_shape, train_images_u8=None, steps_per_epoch=None):
    """The initial state of a run of ``config`` (data-dependent init where the model asks for it)."""
    params = models.init_params(model, key, image_shape)
    offset, bias = (config.model.get(f, "zeros") == "data_mean" for f in ("offset_init", "decoder_bias_init"))
    if train_images_u8 is not None and (offset or bias):   # the mean only where an init reads it
        mean = np.mean(train_images_u8, axis=0, dtype=np.float64) / 255.0
        if offset:
            params = model.init_offset(params, mean)
        if bias:
            params = models.init_decoder_bias(params, mean, config.model.kind)
    return create_state(params, model.apply, make_optimizer(config.optim, steps_per_epoch))


def hparams_of(config) -> dict[str, jax.Array]:
    """The per-run scalars the step takes as arguments."""
    return {"kl_weight": jnp.asarray(config.objective.kl_weight, jnp.float32)}


def _tree_all_finite(tree):
    """Whether every element of ``tree`` is finite, as one NaN/Inf-propagating sum per leaf. Applied
    to the *updated* parameters: a NaN or Inf anywhere in the gradients reaches them through the
    update, and XLA fuses these sums with the update instead of a second pass over the gradients."""
    return jnp.isfinite(sum(jnp.sum(x) for x in jax.tree.leaves(tree)))


def make_train_step(model, config, objective_fn=None, binarization: str | None = None):
    """Pure step ``(state, uint8 batch, noise_key, hparams) -> (state, metrics)``.

    ``objective_fn`` defaults to the registered ``objective.name``; the objective sees the
    ``objective`` section with ``kl_weight`` taken from ``hparams``."""
    objective = objective_fn or objectives.get_objective(config.objective.name)
    obj_fields = dict(config.objective.items())
    binarization = config.data.binarization if binarization is None else binarization
    skip_nonfinite = config.train.nan_policy == "skip"
    # A model whose parametrization has a redundant scale may offer ``retract(params)``: a change
    # of the raw parameters that leaves the model's function unchanged, applied after each update.
    retract = getattr(model, "retract", None)

    def step_keys(noise_key, step):
        return jax.random.split(jax.random.fold_in(noise_key, step))  # binarization, objective

    def prepare(batch_u8, noise_key, step):
        """The model's input for training step ``step`` (dynamic binarization drawn here)."""
        return data_lib.to_float(batch_u8, binarization, step_keys(noise_key, step)[0])

    def update(state, x, noise_key, hparams):
        k_obj = step_keys(noise_key, state.step)[1]
        obj_cfg = types.SimpleNamespace(**dict(obj_fields, **hparams))

        def loss_fn(params):
            return objective(model, params, x, k_obj, state.step, obj_cfg)

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        new = state.apply_gradients(grads=grads)
        if retract is not None:
            new = new.replace(params=retract(new.params))
        finite = jnp.isfinite(loss) & _tree_all_finite(new.params)
        metrics = dict(metrics, finite=finite.astype(jnp.float32))
        if skip_nonfinite:
            new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
            new = new.replace(step=state.step + 1, skipped=state.skipped + (1 - finite.astype(jnp.int32)))
        return new, metrics

    def train_step(state, batch_u8, noise_key, hparams):
        return update(state, prepare(batch_u8, noise_key, state.step), noise_key, hparams)

    # The two halves, for scan_epoch to pipeline (the input of step s+1 is prepared in step s).
    train_step.prepare, train_step.update = prepare, update
    return train_step


def epoch_order(epoch_key, n_train: int, batch_size: int, num_steps: int):
    """The example indices of an epoch's steps, [num_steps, batch_size]: shuffled by key, the
    remainder dropped. (Also drawn on the host by the multi-process epoch, training/parallel.py.)"""
    perm = jax.random.permutation(epoch_key, n_train)[: num_steps * batch_size]
    return perm.reshape(num_steps, batch_size)


def scan_epoch(train_step, state, images_u8, epoch_key, noise_key, hparams, batch_size: int,
               num_steps: int, batch_sharding=None, unroll: int = 1):
    """One epoch: ``lax.scan`` over the batches of ``epoch_order``. ``batch_sharding`` splits
    each batch over devices; ``unroll`` steps per loop iteration (``train.unroll``: fewer loop
    round trips for latency-bound small steps on accelerators; the same numbers)."""
    def batch(idx):
        b = images_u8[idx]
        if batch_sharding is not None:
            b = jax.lax.with_sharding_constraint(b, batch_sharding)
        return b

    # Each iteration also prepares the next step's input, which the loop carries as a materialized
    # array. Prepared inside the step that uses it, the input is fused into every consumer and
    # XLA:CPU recomputes the binarization's random bits in the loss and again in its gradient
    # (8-13 % of the step; BENCHMARKS.md, past measurements). The numbers are the same either way;
    # the last iteration prepares an input nobody uses.
    def body(carry, next_idx):
        st, x = carry
        new, metrics = train_step.update(st, x, noise_key, hparams)
        return (new, train_step.prepare(batch(next_idx), noise_key, st.step + 1)), metrics

    order = epoch_order(epoch_key, images_u8.shape[0], batch_size, num_steps)
    x0 = train_step.prepare(batch(order[0]), noise_key, state.step)
    (state, _), metrics = jax.lax.scan(body, (state, x0), jnp.roll(order, -1, axis=0), unroll=unroll)
    return state, metrics


def make_epoch(model, config, n_train: int, *, objective_fn=None, binarization=None,
               batch_sharding=None, vmapped: bool = False):
    """Jitted epoch ``(state, images_u8, epoch_key, noise_key, hparams) -> (state, step metrics)``
    with the state donated. ``vmapped``: every argument but the images has a leading member axis
    (a sweep group trained as one program). Returns (epoch_fn, steps per epoch)."""
    batch_size = config.train.batch_size
    num_steps = n_train // batch_size
    step = make_train_step(model, config, objective_fn, binarization)

    def epoch(state, images_u8, epoch_key, noise_key, hparams):
        return scan_epoch(step, state, images_u8, epoch_key, noise_key, hparams, batch_size, num_steps,
                          batch_sharding, config.train.get("unroll", 1))

    if vmapped:
        epoch = jax.vmap(epoch, in_axes=(0, None, 0, 0, 0))
    return jax.jit(epoch, donate_argnums=(0,)), num_steps


make_train_epoch = functools.partial(make_epoch, vmapped=False)
