"""Burda et al. (2015) Table 1, one stochastic layer: train (or resume) a config, then estimate the
test NLL with the k=5000 importance-weighted bound (vae_jax.iwae), and record it in results.json.

    python experiments/iwae_table1/run.py --config=configs/iwae_table1.py:cpu \
        --workdir=runs/iwae_table1/cpu_vae --config.data.dir=/path/to/mnist [--nll_subset=N]

A finished run is not retrained (train_and_evaluate resumes from its last checkpoint), so this
script also just (re)evaluates a run trained earlier by `python -m vae_jax.main`.
"""
from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

HERE = os.path.dirname(os.path.abspath(__file__))
config_flags.DEFINE_config_file("config", None, "configs/iwae_table1.py[:variant]", lock_config=True)
flags.DEFINE_string("workdir", None, "run directory")
flags.DEFINE_integer("nll_k", 5000, "importance samples for the NLL estimate")
flags.DEFINE_integer("nll_subset", 0, "evaluate the NLL on the first N test images only (0: all)")
flags.DEFINE_integer("nll_batch", 100, "test images per NLL batch")
flags.DEFINE_bool("skip_train", False, "only evaluate the latest checkpoint (no training)")
flags.DEFINE_string("label", None, "key in results.json (default: the workdir's name)")
flags.DEFINE_string("results", os.path.join(HERE, "results.json"), "where to merge the numbers")
FLAGS = flags.FLAGS


def main(argv):
    import jax

    from vae_jax.training import checkpointing
    from vae_jax import data as data_lib
    from vae_jax.evaluation import iwae
    from vae_jax import models
    from vae_jax.training import run_meta
    from vae_jax.training import trainer as train

    logging.set_verbosity(logging.WARNING)
    config, workdir = FLAGS.config, FLAGS.workdir
    t0 = time.perf_counter()
    if FLAGS.skip_train:
        path = os.path.join(workdir, "eval.json")  # absent when training was cut short
        final = json.load(open(path)) if os.path.exists(path) else {}
    else:
        final = train.train_and_evaluate(config, workdir)
    train_s = time.perf_counter() - t0
    ds = data_lib.load(config.data)
    model = models.build_model(config.model, ds.image_shape)
    keys = train.split_keys(config.seed)
    state = train.create_state(config, model, keys["init"], ds.image_shape,
                               len(ds.train_images) // config.train.batch_size)
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    restored, epoch = ckpt.restore_latest(state)
    params = restored.params
    ckpt.close()
    test = ds.test_images[: FLAGS.nll_subset or None]
    x = iwae.evaluation_inputs(test, keys["eval"], config.data.binarization, config.train.eval_batch_size)
    nll = iwae.iwae_dataset(model, params, x, jax.random.fold_in(keys["eval"], 5000), FLAGS.nll_k,
                            FLAGS.nll_batch, progress=False)
    nll["nll_test_images"] = len(test)
    run_meta.update_eval_json(workdir, nll)
    label = FLAGS.label or os.path.basename(os.path.normpath(workdir))
    row = {"config": config_flags.get_config_filename(FLAGS["config"]),
           "objective": config.objective.name, "trained_epochs": epoch, "iwae_k_train": config.objective.get("iwae_k", 1)
           if config.objective.name == "iwae" else 1, "epochs": config.train.epochs,
           "test_neg_elbo": final.get("neg_elbo"), "test_nll_iwae": nll["nll_iwae"],
           "nll_k": FLAGS.nll_k, "nll_test_images": len(test), "nll_seconds": nll["iwae_seconds"],
           "active_units": final.get("active_units"),
           "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
           "wall_s_this_call": time.perf_counter() - t0, "train_s_this_call": train_s}
    results = json.load(open(FLAGS.results)) if os.path.exists(FLAGS.results) else {}
    results[label] = row
    with open(FLAGS.results, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print(json.dumps({label: row}, indent=1))


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
