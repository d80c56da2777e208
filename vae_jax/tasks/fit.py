"""Fitting a task's conditional model (CVAE or regressor) through the one training loop.

The objective is a plain function ``fn(model, params, x, key, step, cfg)`` of the task (not a
registered training objective); ``cfg`` holds the task fields it reads.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections

import vae_jax.training.checkpointing as checkpointing
import vae_jax.training.loop as loop
import vae_jax.training.trainer as trainer


def checkpoint_dir(workdir: str, name: str) -> str:
    return os.path.join(workdir, name, "checkpoints")


def fit(model, config, objective_fn, objective_fields: dict, train_images_u8, init_shapes: tuple,
        directory: str, label: str = "cvae"):
    """Trains ``model`` on ``train_images_u8`` (taken as floats in [0, 1]; the objective builds its
    targets and conditions) with the epochs, batch size, optimizer, NaN policy and seed of
    ``config``. Checkpointed in ``directory`` each epoch: a finished model is reused and an
    interrupted one resumes. Returns the trained params."""
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.objective = ml_collections.ConfigDict(dict(objective_fields, name=label, kl_weight=1.0))
    keys = trainer.split_keys(config.seed)
    steps = max(1, len(train_images_u8) // cfg.train.batch_size)
    dummies = [jnp.zeros((1,) + tuple(s), jnp.float32) for s in init_shapes]
    params = model.init({"params": keys["init"]}, *dummies, keys["init"])["params"]
    state = trainer.create_state(params, model.apply, trainer.make_optimizer(cfg.optim, steps))
    ckpt = checkpointing.Checkpointer(directory)
    member = loop.Member(cfg, ckpt=ckpt, label=f"{label} ")
    try:
        start = 0
        restored = ckpt.restore_latest(state)
        if restored is not None:
            state, start = restored
        if start >= cfg.train.epochs:
            print(f"{label}: reusing the trained model in {directory} (epoch {start})", flush=True)
            return state.params
        epoch_fn, steps = trainer.make_epoch(model, cfg, len(train_images_u8), objective_fn=objective_fn,
                                             binarization="none")
        state = loop.run_epochs(epoch_fn, state, jax.device_put(train_images_u8), keys["data"], keys["noise"],
                                trainer.hparams_of(cfg), [member], start, cfg.train.epochs, steps,
                                batch_size=cfg.train.batch_size)
    finally:
        member.close()
    return state.params
