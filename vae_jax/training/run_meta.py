"""What a run records about itself: config.json, run_meta.json (data, seed, versions), eval.json."""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import sys


def versions() -> dict[str, str]:
    import flax
    import jax
    import numpy
    import optax
    import orbax.checkpoint

    return {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jax.lib.__version__
            if hasattr(jax.lib, "__version__") else "", "flax": flax.__version__,
            "optax": optax.__version__, "orbax": orbax.checkpoint.__version__,
            "numpy": numpy.__version__}


def config_to_dict(config) -> dict:
    return json.loads(config.to_json_best_effort())


def _write_json_atomic(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


@contextlib.contextmanager
def open_workdir(workdir: str, config, data_meta: dict):
    """Claims ``workdir`` (write probe, lock held until the body exits, same-config check: see
    vae_jax/workdir.py), then records config.json and run_meta.json for this run."""
    with open_workdirs([workdir], [config], data_meta):
        yield workdir


@contextlib.contextmanager
def open_workdirs(workdirs, configs, data_meta: dict):
    """open_workdir for the runs of a vmapped sweep group: nothing is recorded in any of them until
    all are claimed, so a refusal of one leaves the others as they were."""
    import vae_jax.training.workdir as workdir_lib

    with workdir_lib.claim_all(workdirs, [config_to_dict(c) for c in configs], data_meta):
        for d, c in zip(workdirs, configs):
            _record(d, c, data_meta)
        yield list(workdirs)


def _record(workdir: str, config, data_meta: dict) -> None:
    import jax
    import vae_jax.models.conv as conv
    import vae_jax.prng as prng

    _write_json_atomic(os.path.join(workdir, "config.json"), config_to_dict(config))
    meta = {"data": data_meta, "seed": config.seed, "versions": versions(),
            "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "conv_impl": conv.impl(), "threefry_lowering": prng.active() if jax.default_backend() == "cpu" else "jax",
            "command": sys.argv, "started": datetime.datetime.now().isoformat(timespec="seconds")}
    _write_json_atomic(os.path.join(workdir, "run_meta.json"), meta)


def update_run_meta(workdir: str, fields: dict) -> None:
    """Adds what is known only after the workdir is claimed (e.g. the number of processes)."""
    path = os.path.join(workdir, "run_meta.json")
    current = json.load(open(path)) if os.path.exists(path) else {}
    current.update(fields)
    _write_json_atomic(path, current)


def update_eval_json(workdir: str, metrics: dict) -> dict:
    """Merges ``metrics`` into ``workdir/eval.json`` (other modes add their own keys)."""
    path = os.path.join(workdir, "eval.json")
    current = json.load(open(path)) if os.path.exists(path) else {}
    current.update(metrics)
    _write_json_atomic(path, current)
    return current
