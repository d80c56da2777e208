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
    "train": "vae_jax.training.runs:train_and_evaluate",
    "interpolate": "vae_jax.tasks.interpolation:run_interpolate",
    "latents": "vae_jax.tasks.latents:run_latents",
    "inpaint": "vae_jax.tasks.inpainting:run_inpaint",
    "colorize": "vae_jax.tasks.colorization:run_colorize",
    "evaluate": "vae_jax.evaluation.run:run_evaluate",
}

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file, optionally ':arg' (e.g. ':tiny').",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, eval.json and the report.")
flags.DEFINE_string("mode", "train", f"What to do: one of {sorted(MODES)}.")
flags.DEFINE_integer("iwae_k", None, "--mode=evaluate: importance samples per test example "
                     "(overrides config eval.iwae_k, default 5000).")
# Modes that read the trained run's own config.json, so --config is optional for them.
CONFIG_OPTIONAL_MODES = ("evaluate",)
# Modes that claim the workdir themselves (probe, lock, same-config check, config.json). The others
# add files to a trained run, so run_mode only holds its lock: they refuse while that run is still
# training, and two of them cannot write the same eval.json or report at once.
CLAIMING_MODES = ("train",)
# Modes after which the CLI (re)writes the run's report.html.
REPORTING_MODES = ("train", "evaluate")


flags.DEFINE_enum("on_config_mismatch", "refuse", ["refuse", "overwrite", "resume"],
                  "When --workdir holds a run with a different config: refuse, overwrite (delete "
                  "that run), or resume it with the new config.")

# Exit status per failure (README section failure-modes): 2 = bad config, data or workdir (nothing
# trained), 3 = non-finite loss/gradients (last good checkpoint kept).
EXIT_BAD_INPUT, EXIT_NONFINITE = 2, 3


def run_mode(mode: str, config, workdir: str):
    """Runs one mode; a known failure becomes one line on stderr, a line in <workdir>/error.log
    and a non-zero exit (SystemExit), anything else is logged there too and re-raised."""
    import jax
    from vae_jax.errors import ConfigError, DataError, NonFiniteError, WorkdirError
    import vae_jax.training.workdir as workdir_lib

    def fail(e, status):
        print(f"error: {e}", file=sys.stderr)
        workdir_lib.write_error_log(workdir, f"error: {e}")
        sys.exit(status)

    try:
        if mode not in MODES:
            raise ConfigError(f"--mode: {mode!r} is not one of {sorted(MODES)}")
        module, fn = MODES[mode].split(":")
        run = getattr(importlib.import_module(module), fn)
        if mode in CLAIMING_MODES:
            result = run(config, workdir)
            if mode == "train" and config.train.get("evaluate_after"):
                # train.evaluate_after (one process: main refuses it over several): the finished run
                # evaluated as --mode=evaluate would (its eval.* settings: diagnostics, nll_iwae in
                # nats and bits/dim, FD when eval.fid).
                import vae_jax.evaluation.run as evaluation
                with workdir_lib.hold(workdir):
                    result = evaluation.run_evaluate(None, workdir)
        else:
            with workdir_lib.hold(workdir):
                result = run(config, workdir)
        if mode in REPORTING_MODES and jax.process_index() == 0:  # several processes: process 0 writes
            write_report(workdir)
        return result
    except (ConfigError, DataError, WorkdirError) as e:
        fail(e, EXIT_BAD_INPUT)
    except NonFiniteError as e:
        fail(e, EXIT_NONFINITE)
    except OSError as e:
        if not workdir_lib.is_disk_full(e):
            workdir_lib.write_error_log(workdir, f"{type(e).__name__}: {e}")
            raise
        fail(f"disk full while writing {e.filename or workdir}: {e.strerror}; the last saved "
             "checkpoint is intact, free space and rerun the same command to resume", EXIT_BAD_INPUT)
    except Exception as e:
        workdir_lib.write_error_log(workdir, f"{type(e).__name__}: {e}")
        raise


def write_report(workdir: str) -> None:
    import vae_jax.report.run_report as run_report
    run_report.write(workdir)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        print("error: --workdir: required (the directory for this run's outputs)", file=sys.stderr)
        sys.exit(2)
    if FLAGS.config is None and FLAGS.mode not in CONFIG_OPTIONAL_MODES:
        print("error: --config: required (a file in configs/, e.g. --config=configs/vae_mnist.py)",
              file=sys.stderr)
        sys.exit(2)
    import vae_jax.models.conv as conv
    import vae_jax.prng as prng
    bad_env = conv.check_env() or prng.check_env()
    if bad_env:
        print(f"error: {bad_env}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    import vae_jax.training.workdir as workdir_lib
    workdir_lib.set_mismatch_policy(FLAGS.on_config_mismatch)
    import jax
    import vae_jax.training.distributed as distributed
    # VAE_JAX_DISTRIBUTED=1: join the process group first (training/distributed.py).
    if distributed.maybe_initialize_distributed() and jax.process_count() > 1 and FLAGS.mode != "train":
        print(f"error: --mode={FLAGS.mode}: runs in one process; only --mode=train spans several "
              "(start it once, without VAE_JAX_DISTRIBUTED)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    config = FLAGS.config
    if jax.process_count() > 1 and config is not None and config.get("train", {}).get("evaluate_after"):
        print("error: train.evaluate_after: evaluation runs in one process; set it False for a run over "
              f"{jax.process_count()} processes and evaluate afterwards with --mode=evaluate", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    if FLAGS.iwae_k is not None:
        if FLAGS.mode != "evaluate":
            print(f"error: --iwae_k: applies to --mode=evaluate only (got --mode={FLAGS.mode})", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        if config is None:
            from vae_jax.evaluation.run import eval_config
            import ml_collections
            config = ml_collections.ConfigDict({"eval": eval_config()})
        config.eval.iwae_k = FLAGS.iwae_k
    with distributed.exit_together():  # several processes: a failure ends them all (distributed.py)
        result = run_mode(FLAGS.mode, config, FLAGS.workdir)
    if FLAGS.mode == "train":
        import os
        print(f"results: {os.path.abspath(FLAGS.workdir)}/eval.json, report: "
              f"{os.path.abspath(FLAGS.workdir)}/report.html")
    return result


def _parse_flags(argv):
    """absl's parser, but a bad flag or --config.<field> override (unknown field, wrong type, a
    config file that fails) is one line on stderr and exit status 2, like every config error."""
    try:
        args = FLAGS(argv)
        if FLAGS.config is not None:
            FLAGS.config.get("seed")  # a config file that failed to load raises only when first read
        return args
    except flags.Error as e:
        print("error: " + _one_line(str(e)), file=sys.stderr)
    except (AttributeError, KeyError) as e:  # --config.<field>=... names no field
        while isinstance(e, BaseException) and e.args:
            e = e.args[0]
        print(f"error: --config.<field> override: no such field {_one_line(str(e))}", file=sys.stderr)
    except OSError as e:  # --config=FILE cannot be read
        print(f"error: --config: {_one_line(str(e))}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def _one_line(msg: str) -> str:
    """Squashes a (possibly traceback-carrying) message into one line: its head and its last line."""
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    if any(ln.startswith("Traceback") or "Traceback (most recent" in ln for ln in lines):
        return lines[0].split("Traceback")[0].strip() + " " + lines[-1]
    return " ".join(lines)


def entry():
    app.run(lambda argv: (main(argv), None)[1], flags_parser=_parse_flags)


if __name__ == "__main__":
    entry()
