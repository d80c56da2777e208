"""Same config and seed → identical metrics in two separate processes (CPU); another seed differs."""
import os
import subprocess
import sys

from conftest import ROOT
from test_kill_resume import learning_metrics

ARGS = ["--config=configs/vae_mnist.py:tiny", "--config.train.epochs=2", "--config.train.tensorboard=False",
        "--config.report.enabled=False"]


def test_two_processes_same_seed_identical_metrics(tmp_path):
    runs = {"a": ("0", "1"), "b": ("0", "2"), "other_seed": ("1", "1")}  # name: (seed, PYTHONHASHSEED)
    procs = {name: subprocess.Popen(
        [sys.executable, "-m", "vae_jax.main", *ARGS, f"--config.seed={seed}", f"--workdir={tmp_path / name}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONHASHSEED=hash_seed)) for name, (seed, hash_seed) in runs.items()}
    for name, p in procs.items():
        out = p.communicate(timeout=600)[0]
        assert p.returncode == 0, f"{name}: {out[-2000:]}"
    a, b, other = (learning_metrics(str(tmp_path / n)) for n in runs)
    assert a == b  # every per-epoch metric and eval.json value, exact float equality
    assert a[1]["neg_elbo"] != other[1]["neg_elbo"]  # the seed does matter: the check can fail
