"""Where to check for NaN/Inf in the training step: CPU time per epoch of the same step with the
check over the gradients (isfinite per leaf, or one sum per leaf), over the updated parameters
(one sum per leaf, what train.py does), or on the loss only. Round-robin, one process.

    python bench/finite_check.py [MNIST_IDX_DIR]
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
from vae_jax import data as data_lib, models, objectives, train  # noqa: E402

DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data", "mnist")
imgs = np.frombuffer(gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")).read()[16:],
                     np.uint8).reshape(-1, 28, 28, 1)[:25600]
images = jax.device_put(imgs); N = len(imgs)
c = load_config("vae_mnist", None); m = models.build_model(c.model, (28, 28, 1)); keys = train.split_keys(0)
objective = objectives.get_objective("elbo")
def make_step(mode):
    def train_step(state, batch_u8, noise_key):
        k_bin, k_obj = jax.random.split(jax.random.fold_in(noise_key, state.step))
        x = data_lib.to_float(batch_u8, "dynamic", k_bin)
        (loss, metrics), grads = jax.value_and_grad(lambda p: objective(m, p, x, k_obj, state.step, c.objective), has_aux=True)(state.params)
        new = state.apply_gradients(grads=grads)
        if mode == "grads":
            finite = jnp.isfinite(loss) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        elif mode == "newparams_sum":
            finite = jnp.isfinite(loss) & train._tree_all_finite(new.params)
        elif mode == "grads_sum":
            finite = jnp.isfinite(loss) & jnp.isfinite(sum(jnp.sum(g) for g in jax.tree.leaves(grads)))
        else:
            finite = jnp.isfinite(loss)
        return new, dict(metrics, finite=finite.astype(jnp.float32))
    return train_step
modes = ["grads", "newparams_sum", "grads_sum", "loss_only"]
eps = {}
for mode in modes:
    step = make_step(mode)
    ep = jax.jit(lambda st, im, ek, nk, step=step: train.scan_epoch(step, st, im, ek, nk, 128, N // 128), donate_argnums=(0,))
    st = train.create_state(c, m, keys["init"], (28, 28, 1))
    st, ms = ep(st, images, keys["data"], keys["noise"]); jax.block_until_ready(ms); eps[mode] = [ep, st]
res = {k: [] for k in modes}
for r in range(3):
    for mode in modes:
        ep, st = eps[mode]
        t = time.process_time(); st, ms = ep(st, images, jax.random.fold_in(keys["data"], r), keys["noise"]); jax.block_until_ready(ms)
        res[mode].append(time.process_time() - t); eps[mode][1] = st
base = np.median(res["grads"])
for mode in modes:
    print(mode, "cpu time vs grads-check:", round(float(np.median(res[mode]) / base), 3))
