"""A run is a workdir: train one (``train_and_evaluate``) or load a trained one (``load_run``).

``train_and_evaluate`` returns the final metrics; the CLI writes the report. Evaluation, the tasks
and the sweeps restore trained runs through ``load_run`` only.
"""
from __future__ import annotations

import dataclasses
import json
import os

import jax
import ml_collections

from vae_jax import config as config_lib
from vae_jax import data as data_lib
from vae_jax import models
from vae_jax.errors import ConfigError
import vae_jax.evaluation.diagnostics as diagnostics
import vae_jax.training.checkpointing as checkpointing
import vae_jax.training.distributed as distributed
import vae_jax.training.loop as loop
import vae_jax.training.parallel as parallel
import vae_jax.training.run_meta as run_meta
import vae_jax.training.trainer as trainer
import vae_jax.training.workdir as workdir_lib


def describe_data(ds) -> str:
    m = ds.meta
    path = m.get("dir") or m.get("file")  # tfds and photos name no single path
    where = f" from {path}" if path and m["source"] != "tfds" else ""
    return (f"data: {m['source']} {m['name']} ({m['n_train']} train / {m['n_test']} test, "
            f"binarization={m['binarization']}){where}")


def make_evaluator(config, model, ds, key):
    def evaluate(params):
        return diagnostics.evaluate_with_diagnostics(model, params, ds.test_images, key,
                                                     config.data.binarization, config.train.eval_batch_size)
    return evaluate


def train_and_evaluate(config, workdir: str) -> dict:
    """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint), evaluates on the test
    set; writes eval.json, metrics.jsonl, run_meta.json and config.json. Returns the final metrics."""
    config_lib.validate(config)
    ds = data_lib.load(config.data)
    config_lib.validate_against_data(config, len(ds.train_images), ds.image_shape)
    print(describe_data(ds), flush=True)
    model = models.build_model(config.model, ds.image_shape)
    placement = parallel.data_parallel(config)  # one device, or a batch-sharded mesh
    with distributed.open_workdir(workdir, config, ds.meta):  # run_meta.open_workdir, by process 0
        return _train(config, workdir, ds, model, placement)


def _train(config, workdir, ds, model, placement) -> dict:
    keys = trainer.split_keys(config.seed)
    steps_per_epoch = len(ds.train_images) // config.train.batch_size
    state = trainer.init_model_state(config, model, keys["init"], ds.image_shape, ds.train_images,
                                     steps_per_epoch)
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    workdir_lib.check_free_space(workdir, checkpointing.nbytes(state), ckpt.max_to_keep)
    start_epoch = 0
    restored = ckpt.restore_latest(state)
    if restored is not None:
        state, start_epoch = restored
        print(f"resumed from checkpoint at epoch {start_epoch} (step {int(state.step)})", flush=True)
    state, images = placement.place(state), placement.train_images(ds.train_images)
    epoch_fn, steps = placement.make_epoch(model, config, len(ds.train_images))
    log = loop.MetricsLog(workdir, start_epoch, config.train.tensorboard) if distributed.is_primary() else None
    member = loop.Member(config, ckpt=ckpt, log=log,
                         evaluate=make_evaluator(config, model, ds, keys["eval"]))
    try:
        state = loop.run_epochs(epoch_fn, state, images, keys["data"], keys["noise"], trainer.hparams_of(config),
                                [member], start_epoch, config.train.epochs, steps,
                                progress=config.train.progress, batch_size=config.train.batch_size,
                                main_metric="neg_elbo" if model.is_vae else "mse")
    finally:
        member.close()
    final_eval = member.last_eval or member.evaluate(state.params)  # resumed a finished run
    final = dict(final_eval, epoch=config.train.epochs, step=int(state.step))
    if distributed.is_primary():
        run_meta.update_eval_json(workdir, final)
    return final


# ---------------------------------------------------------------------------- trained runs
@dataclasses.dataclass
class Run:
    """A trained run: its config (from config.json), data, model, restored parameters and epoch."""
    workdir: str
    config: ml_collections.ConfigDict
    ds: data_lib.Dataset
    model: object
    params: object
    epoch: int

    @property
    def kind(self) -> str:
        return "vae" if self.model.is_vae else "ae"


def has_checkpoint(workdir: str) -> bool:
    d = os.path.join(workdir, "checkpoints")
    return os.path.isdir(d) and any(p.isdigit() for p in os.listdir(d))


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """``workdir/config.json`` as a ConfigDict, with the tuples JSON turned into lists restored."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise ConfigError(f"--workdir: {path} not found; train a run there first with --mode=train")
    saved = json.load(open(path))
    config = config_lib.base_config()

    def restore(node, values, where):
        for k, v in values.items():
            if k in node and isinstance(node[k], ml_collections.ConfigDict) and isinstance(v, dict):
                restore(node[k], v, f"{where}{k}.")
            elif k in node and isinstance(node[k], tuple):
                node[k] = tuple(v)
            elif k in node:
                node[k] = v
            else:  # a section or field the base has no default for (e.g. a family's own fields)
                node[k] = ml_collections.ConfigDict(v) if isinstance(v, dict) else v
    restore(config, saved, "")
    return config


def load_run(workdir: str, data_dir: str = "", ds=None) -> Run:
    """Rebuilds the model of ``workdir/config.json`` and restores its latest checkpoint."""
    config = load_config(workdir)
    if not has_checkpoint(workdir):
        raise ConfigError(f"--workdir: {workdir!r} holds no trained run (no checkpoints/); "
                          "train one first with --mode=train")
    if data_dir:
        config.data.dir = data_dir
    if ds is None:
        ds = data_lib.load(config.data)
    model = models.build_model(config.model, ds.image_shape)
    # The optimizer state's structure depends on the lr schedule, which needs steps per epoch.
    template = trainer.init_model_state(config, model, jax.random.PRNGKey(0), ds.image_shape, None,
                                        max(1, len(ds.train_images) // config.train.batch_size))
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), local=True)  # one reader
    try:
        restored = ckpt.restore_latest(template)
    finally:
        ckpt.close()
    state, epoch = restored
    return Run(workdir, config, ds, model, state.params, epoch)
