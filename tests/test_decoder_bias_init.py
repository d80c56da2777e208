"""``model.decoder_bias_init='data_mean'`` (Burda et al. 2015's recipe): the Bernoulli decoder's
output bias starts at the logit of the training mean pixel, for every family with an MLP decoder,
in the trainer and in the vmapped sweep; nothing else in the initial parameters changes."""
from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest
import scipy.special
from conftest import load_config

from vae_jax import config as config_lib
from vae_jax import models
from vae_jax.errors import ConfigError
from vae_jax.sweeps import vmap_group
from vae_jax.training import trainer

SHAPE = (28, 28, 1)
FAMILY_CONFIGS = {"vae": "vae_mnist", "two_layer": "iwae_two_layer", "ladder": "ladder_mnist", "vamp": "vamp_mnist",
                  "iaf": "iaf_mnist"}


def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n,) + SHAPE, dtype=np.uint8)
    images[:, :2] = 0      # pixels that are always off and always on: the clip at 0.001 / 0.999
    images[:, -2:] = 255
    return images


def _bias(params):
    return np.asarray(params["decoder"]["net"]["mlp"]["out"]["bias"])


@pytest.mark.parametrize("kind", sorted(FAMILY_CONFIGS))
def test_bias_is_the_logit_of_the_training_mean_and_nothing_else_changes(kind):
    c = load_config(FAMILY_CONFIGS[kind])
    c.model.decoder_bias_init = "data_mean"
    config_lib.validate(c)
    assert c.model.kind == kind
    images = _images()
    model = models.build_model(c.model, SHAPE)
    key = jax.random.PRNGKey(3)
    state = trainer.init_model_state(c, model, key, SHAPE, images, steps_per_epoch=2)
    mean = images.reshape(len(images), -1).astype(np.float64).mean(0) / 255.0
    want = scipy.special.logit(np.clip(mean, 0.001, 0.999))
    np.testing.assert_allclose(_bias(state.params), want, rtol=1e-5, atol=1e-5)
    assert np.isclose(_bias(state.params).min(), scipy.special.logit(0.001), atol=1e-4)
    assert np.isclose(_bias(state.params).max(), scipy.special.logit(0.999), atol=1e-4)
    # Everything else is the plain initialisation from the same key.
    c.model.decoder_bias_init = "zeros"
    plain = trainer.init_model_state(c, model, key, SHAPE, images, steps_per_epoch=2).params
    assert not _bias(plain).any()
    flat, flat_plain = (jax.tree_util.tree_leaves_with_path(p) for p in (state.params, plain))
    changed = [jax.tree_util.keystr(k) for (k, a), (_, b) in zip(flat, flat_plain) if not np.array_equal(a, b)]
    assert changed == ["['decoder']['net']['mlp']['out']['bias']"]


def test_vmapped_sweep_members_start_from_the_same_bias():
    c = load_config("iwae_table1")
    assert c.model.decoder_bias_init == "data_mean"     # the Table 1 recipe sets it
    images = _images(32, seed=1)
    model = models.build_model(c.model, SHAPE)
    ds = SimpleNamespace(image_shape=SHAPE, train_images=images)
    _, states, _ = vmap_group._init_members([c, c], model, ds, 1)
    want = scipy.special.logit(np.clip(images.reshape(32, -1).mean(0) / 255.0, 0.001, 0.999))
    for s in states:
        np.testing.assert_allclose(_bias(s.params), want, rtol=1e-5, atol=1e-5)


def test_a_decoder_without_an_mlp_output_bias_is_refused_naming_the_family():
    with pytest.raises(ConfigError, match=r"model.decoder_bias_init.*model.kind='hvae'"):
        models.init_decoder_bias({"decoder": {"net": {"out": {"bias": np.zeros(3)}}}}, np.zeros(3), "hvae")
    with pytest.raises(ConfigError, match=r"model.decoder_bias_init.*shape"):
        models.init_decoder_bias({"decoder": {"net": {"mlp": {"out": {"bias": np.zeros(5)}}}}}, np.zeros(3), "vae")
