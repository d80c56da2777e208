"""The jitted training epoch compiles once: later epochs (new epoch keys, new state) reuse it.

Counted two ways: XLA backend compilations reported by ``jax.monitoring`` while the epochs run,
and the entries of the jitted function's own cache. A change that makes an argument's shape,
dtype, weak type or a Python-level value differ between epochs (e.g. a step counter passed as a
Python int, a key re-created with another dtype) shows up as a second compilation here.
"""
import jax
import numpy as np
import pytest

from configs import vae_mnist
from vae_jax import data as data_lib
from vae_jax import models
from vae_jax.training import trainer as train

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class _CompileCounter:
    def __init__(self):
        self.count = 0
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event, duration, **_):
        if event == COMPILE_EVENT:
            self.count += 1


@pytest.fixture(scope="module")
def counter():
    return _CompileCounter()


def _setup(nan_policy="stop"):
    config = vae_mnist.get_config("tiny")
    config.train.nan_policy = nan_policy
    ds = data_lib.load(config.data)
    model = models.build_model(config.model, ds.image_shape)
    keys = train.split_keys(config.seed)
    state = train.init_model_state(config, model, keys["init"], ds.image_shape, None,
                                   len(ds.train_images) // config.train.batch_size)
    images = jax.device_put(ds.train_images)
    train_epoch, _ = train.make_epoch(model, config, len(ds.train_images))
    epoch_keys = [jax.random.fold_in(keys["data"], e) for e in range(1, 4)]
    jax.block_until_ready(epoch_keys)
    return train_epoch, state, images, epoch_keys, keys["noise"], train.hparams_of(config)


@pytest.mark.parametrize("nan_policy", ["stop", "skip"])
def test_epoch_compiles_once(counter, nan_policy):
    train_epoch, state, images, epoch_keys, noise_key, hparams = _setup(nan_policy)
    before = counter.count
    state, metrics = train_epoch(state, images, epoch_keys[0], noise_key, hparams)
    jax.block_until_ready(metrics)
    first = counter.count - before
    assert first >= 1, "the first epoch should compile (is the compile event still reported?)"
    losses = [float(np.mean(np.asarray(metrics["loss"])))]
    for key in epoch_keys[1:]:
        state, metrics = train_epoch(state, images, key, noise_key, hparams)
        jax.block_until_ready(metrics)
        losses.append(float(np.mean(np.asarray(metrics["loss"]))))
    assert counter.count - before == first, (
        f"training epoch recompiled: {counter.count - before - first} extra compilation(s) after the first epoch")
    assert train_epoch._cache_size() == 1
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]  # it did train
