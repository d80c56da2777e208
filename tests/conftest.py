import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


def load_config(name: str, arg: str | None = "tiny"):
    """Loads configs/<name>.py the way the CLI does (by path)."""
    from ml_collections import config_flags  # noqa: F401  (import side effects not needed)
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cfg_{name}", os.path.join(CONFIGS, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


@pytest.fixture
def tiny_config():
    return lambda name="vae_mnist": load_config(name, "tiny")


def run_cli(args, cwd=ROOT, timeout=600, env=None):
    import subprocess

    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "vae_jax.main", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=e)
