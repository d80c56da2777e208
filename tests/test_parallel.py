"""Data-parallel training over 4 simulated CPU devices equals 1-device training; the vmapped sweep
axis sharded over 4 devices equals training each member alone. XLA_FLAGS must be set before jax
is imported, so the check runs in a subprocess."""
import json
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT, job, run_process

SCRIPT = r"""
import json, os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
import jax
from conftest import load_config
from vae_jax import data as data_lib
from vae_jax.sweeps import expand
from vae_jax.sweeps import vmap_group as sweep_vmap
import vae_jax.training.parallel as parallel
import vae_jax.training.runs as runs

assert len(jax.devices()) == 4, jax.devices()
out = {}
cfg = load_config("vae_mnist", "tiny")
cfg.train.tensorboard = False
cfg.report.enabled = False
rows = lambda d: [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
for mode in ("off", "on"):
    c = cfg.copy_and_resolve_references()
    c.train.data_parallel = mode
    d = os.path.join(sys.argv[2], mode)
    out[mode] = {"final": runs.train_and_evaluate(c, d), "rows": rows(d),
                 "devices": parallel.data_parallel(c).num_devices}
# 4 vmapped members (β × seed), member axis sharded 1 per device.
members = [expand.apply_overrides(cfg, o, "m") for o in
           expand.product(expand.axis("objective.kl_weight", [1.0, 0.5]), expand.axis("seed", [0, 1]))]
out["member_sharding"] = str(parallel.member_sharding(4))
out["members"] = sweep_vmap.train_group(members, [os.path.join(sys.argv[2], f"m{i}") for i in range(4)],
                                        data_lib.load(cfg.data))
print("RESULT" + json.dumps(out))
"""


@job
def four_device_runs(directory) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return run_process([sys.executable, "-c", SCRIPT, ROOT, directory], timeout=900, env=env)


def test_four_devices_equal_one(four_device_runs):
    p = four_device_runs
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.split("RESULT")[-1])
    one, four = out["off"], out["on"]
    assert one["devices"] == 1 and four["devices"] == 4
    assert "data parallel: batch of 64 split over 4 devices" in p.stdout
    for key in ("neg_elbo", "kl", "rec_loss", "mse"):
        np.testing.assert_allclose(four["final"][key], one["final"][key], rtol=1e-5, err_msg=key)
    for r1, r4 in zip(one["rows"], four["rows"]):
        assert r1["step"] == r4["step"]
        np.testing.assert_allclose(r4["train/neg_elbo"], r1["train/neg_elbo"], rtol=1e-5)
    # Member 0 (β=1, seed 0) is the 1-device run's config: sharded vmap gives the same numbers.
    assert "members" in out["member_sharding"]
    for key in ("neg_elbo", "kl", "rec_loss"):
        np.testing.assert_allclose(out["members"][0][key], one["final"][key], rtol=2e-5, err_msg=key)
    assert abs(out["members"][0]["neg_elbo"] - out["members"][3]["neg_elbo"]) > 1.0
