"""Tiny trained runs shared by the application-mode tests (trained once per test process)."""
import functools
import tempfile

from conftest import load_config


@functools.lru_cache(maxsize=None)
def trained_run(config_name: str = "vae_mnist", **overrides) -> str:
    """Trains ``configs/<config_name>.py:tiny`` (with ``overrides``: dotted field -> value) in a
    fresh temp dir and returns that workdir."""
    from vae_jax.training import trainer as train

    cfg = load_config(config_name, "tiny")
    cfg.train.tensorboard = False
    for field, value in overrides.items():
        node = cfg
        *parents, leaf = field.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    workdir = tempfile.mkdtemp(prefix=f"vae_jax_task_{config_name}_")
    train.train_and_evaluate(cfg, workdir)
    return workdir


def tiny_config(name: str = "vae_mnist"):
    return load_config(name, "tiny")
