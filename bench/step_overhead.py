"""What the training step's extra work costs: the trainer's epoch, then with the mse metric and the
per-step finite check over all gradients swapped out, timed round-robin in one process.

    python bench/step_overhead.py [MNIST_IDX_DIR]
"""
import gzip
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import load_config  # noqa: E402
from vae_jax import distributions as D, models, objectives, train  # noqa: E402
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data", "mnist")
imgs = np.frombuffer(gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")).read()[16:], np.uint8).reshape(-1, 28, 28, 1)[:25600]
images = jax.device_put(imgs)
N = len(imgs)
def manual_lp(self, x, params, event_ndim=3):  # jax.nn.softplus, the form used before
    x, params = D._flatten(x, params, event_ndim)
    l = params[..., 0]
    return jnp.sum(x * l - jax.nn.softplus(l), -1)
orig_lp = D.Bernoulli.log_prob
orig_mse = objectives._mse
orig_fin = train._tree_all_finite
def setv(v):
    D.Bernoulli.log_prob = manual_lp if v == 1 else orig_lp
    objectives._mse = (lambda m, x, p: jnp.zeros(())) if v >= 2 else orig_mse  # noqa: E731
    train._tree_all_finite = (lambda t: jnp.bool_(True)) if v >= 3 else orig_fin  # noqa: E731
eps = {}
c = load_config("vae_mnist", None)
m = models.build_model(c.model, (28, 28, 1))
keys = train.split_keys(0)
for v in range(4):
    setv(v)
    ep, _ = train.make_train_epoch(m, c, N)
    st = train.create_state(c, m, keys["init"], (28, 28, 1))
    st, ms = ep(st, images, keys["data"], keys["noise"]); jax.block_until_ready(ms)
    eps[v] = (ep, st)
res = {v: [] for v in range(4)}
for r in range(3):
    for v in range(4):
        ep, st = eps[v]
        t = time.perf_counter(); st, ms = ep(st, images, jax.random.fold_in(keys["data"], r), keys["noise"]); jax.block_until_ready(ms)
        res[v].append(N / (time.perf_counter() - t)); eps[v] = (ep, st)
for v in range(4):
    print(["trainer", "jax.nn.softplus instead", "+ no mse metric", "+ no finite check"][v], int(np.median(res[v])))
