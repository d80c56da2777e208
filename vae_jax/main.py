"""Command line: flags + config in, one mode function called, nothing else.

    python -m vae_jax.main --config=configs/vae_mnist.py --workdir=runs/x [--config.a.b=v ...]
"""
from __future__ import annotations

import importlib
import sys

from absl import app, flags, logging
from ml_collections import config_flags

# mode -> "module:function"; each function takes (config, workdir) and does the whole job.
MODES = {
    "train": "vae_jax.train:train_and_evaluate",
}

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file, optionally ':arg' (e.g. ':tiny').",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, eval.json and the report.")
flags.DEFINE_string("mode", "train", f"What to do: one of {sorted(MODES)}.")


def run_mode(mode: str, config, workdir: str):
    from vae_jax.config_validation import ConfigError
    from vae_jax.data import DataError

    if mode not in MODES:
        raise ConfigError(f"--mode: {mode!r} is not one of {sorted(MODES)}")
    module, fn = MODES[mode].split(":")
    try:
        return getattr(importlib.import_module(module), fn)(config, workdir)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        print("error: --workdir: required (the directory for this run's outputs)", file=sys.stderr)
        sys.exit(2)
    result = run_mode(FLAGS.mode, FLAGS.config, FLAGS.workdir)
    if FLAGS.mode == "train":
        import os
        print(f"results: {os.path.abspath(FLAGS.workdir)}/eval.json, report: "
              f"{os.path.abspath(FLAGS.workdir)}/report.html")
    return result


def entry():
    app.run(lambda argv: (main(argv), None)[1])


if __name__ == "__main__":
    entry()
