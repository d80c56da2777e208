"""Colour data (the offline 'photos' source, TFDS colour sets through tfds.testing.mock_data), the
decoder of likelihoods whose parameter count depends on the instance, the checks that need the
data's shape, and bits/dim."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from vae_jax import config as config_lib
from vae_jax import data as data_lib
from vae_jax import models
from vae_jax.errors import ConfigError
import vae_jax.data.photos as photos
import vae_jax.evaluation.diagnostics as diagnostics
import vae_jax.models.distributions as D


@pytest.fixture(scope="module")
def photo_set():
    c = config_lib.base_config()
    c.data.source, c.data.name, c.data.binarization = "photos", "photos", "none"
    return data_lib.load(c.data)


# ---------------------------------------------------------------------------- photos
def test_photos_are_colour_patches_with_whole_photos_held_out(photo_set):
    ds = photo_set
    assert ds.train_images.dtype == np.uint8 and ds.image_shape == (32, 32, 3)
    assert ds.test_images.shape[1:] == (32, 32, 3)
    names = list(photos.PHOTOS)
    train_photos = {names[i] for i in np.unique(ds.train_labels)}
    test_photos = {names[i] for i in np.unique(ds.test_labels)}
    assert test_photos == set(photos.TEST_PHOTOS) and not train_photos & test_photos
    assert len(train_photos) == 5
    # No test patch is byte-equal to a training patch.
    train_bytes = {p.tobytes() for p in ds.train_images}
    assert not any(p.tobytes() in train_bytes for p in ds.test_images)
    # Colour, not grey stored three times: the channels differ on most patches.
    differs = np.abs(ds.train_images[..., 0].astype(int) - ds.train_images[..., 2]).mean(axis=(1, 2)) > 2
    assert differs.mean() > 0.5
    assert ds.meta["source"] == "photos" and len(ds.meta["fingerprint"]) == 16


def test_photos_prefix_holds_every_training_photo():
    c = config_lib.base_config()
    c.data.source, c.data.name, c.data.binarization = "photos", "photos", "none"
    c.data.train_subset, c.data.test_subset = 200, 100
    ds = data_lib.load(c.data)
    assert len(ds.train_images) == 200 and len(set(ds.train_labels.tolist())) == 5
    assert len(set(ds.test_labels.tolist())) == 2


def test_photo_patches_are_exact_crops_of_box_downscaled_photos():
    """Against PIL's own box reduction (Image.reduce) of the decoded photo: within rounding."""
    img = photos.read_photo(photos.photo_path("chelsea"))
    for factor in photos.SCALES[1:]:
        ours = photos.box_downscale(img, factor)
        ref = np.asarray(Image.fromarray(img).reduce(factor))[: ours.shape[0], : ours.shape[1]]
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    p = photos.patches(img, 32, 32)
    assert p.shape == ((img.shape[0] // 32) * (img.shape[1] // 32), 32, 32, 3)
    np.testing.assert_array_equal(p[1], img[0:32, 32:64])


def test_photos_refuse_other_names():
    c = config_lib.base_config()
    c.data.source, c.data.name = "photos", "cifar10"
    with pytest.raises(ConfigError, match=r"^data\.name: 'cifar10' is not held by data\.source='photos'"):
        data_lib.validate(c)


# ---------------------------------------------------------------------------- TFDS colour sets
@pytest.mark.parametrize("name", ["cifar10", "svhn_cropped"])
def test_tfds_colour_sets_keep_their_channels(name):
    tfds = pytest.importorskip("tensorflow_datasets")
    c = config_lib.base_config()
    c.data.source, c.data.name, c.data.binarization = "tfds", name, "none"
    with tfds.testing.mock_data(num_examples=6):
        ds = data_lib.load(c.data)
    assert ds.train_images.shape == (6, 32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.test_images.shape == (6, 32, 32, 3)
    assert ds.train_labels.dtype == np.int32 and ds.train_labels.min() >= 0
    assert ds.meta["image_shape"] == [32, 32, 3] and len(ds.meta["fingerprint"]) == 16
    # Bernoulli on these colour pixels is refused once the data's shape is known.
    c.model.likelihood = "bernoulli"
    with pytest.raises(ConfigError, match=r"^model\.likelihood: 'bernoulli' models binary pixels .* 3 colour"):
        config_lib.validate_against_data(c, 128, ds.image_shape)


# ---------------------------------------------------------------------------- validation
def _photos_config(**model):
    c = config_lib.load_config_file(config_lib.sibling(__file__, "../configs/vae_photos.py"), "tiny")
    for k, v in model.items():
        c.model[k] = v
    return c


@pytest.mark.parametrize("override, binarization, message", [
    (dict(num_mixtures=0), "none", r"^model\.num_mixtures: 0 must be an integer >= 1"),
    (dict(likelihood="discretized_logistic", num_mixtures=4), "none",
     r"^model\.num_mixtures: set to 4 but it is read only with model\.likelihood='discretized_mix_logistic'"),
    (dict(), "dynamic", r"^model\.likelihood: 'discretized_mix_logistic' models the 8-bit pixel values"),
])
def test_mixture_fields_are_checked(override, binarization, message):
    c = _photos_config(**override)
    c.data.binarization = binarization
    with pytest.raises(ConfigError, match=message):
        config_lib.validate(c)


def test_checks_that_need_the_data_shape():
    c = _photos_config()
    config_lib.validate(c)
    config_lib.validate_against_data(c, 512, (32, 32, 3))
    c.model.conv_channels = (8, 16, 32, 64, 128, 256)  # 2^6 = 64 does not divide 32
    with pytest.raises(ConfigError, match=r"^model\.conv_channels: .* divisible by 64, .* is 32x32"):
        config_lib.validate_against_data(c, 512, (32, 32, 3))
    c.model.conv_channels = (8, 16, 32)
    with pytest.raises(ConfigError, match=r"^model\.conv_channels: .* divisible by 8, .* is 28x28"):
        config_lib.validate_against_data(c, 512, (28, 28, 1))
    c = _photos_config(likelihood="bernoulli", num_mixtures=10)
    c.data.binarization = "dynamic"
    config_lib.validate(c)
    config_lib.validate_against_data(c, 512, (28, 28, 1))  # grey: fine
    with pytest.raises(ConfigError, match=r"^model\.likelihood: 'bernoulli' models binary pixels"):
        config_lib.validate_against_data(c, 512, (32, 32, 3))


# ---------------------------------------------------------------------------- decoder and bits/dim
def _zero_decoder(params):
    return {**params, "decoder": jax.tree.map(jnp.zeros_like, params["decoder"])}


@pytest.mark.parametrize("shape, k", [((8, 8, 3), 4), ((8, 8, 1), 2)])
def test_mixture_decoder_emits_the_instances_parameter_count(shape, k):
    c = _photos_config(num_mixtures=k)
    model = models.build_model(c.model, shape)
    params = models.init_params(model, jax.random.PRNGKey(0), shape)
    out = model.apply({"params": params}, jnp.zeros((2, c.model.latent_dim)), method="decode")
    assert out.shape == (2,) + shape + (k * (3 + shape[-1] - 1),)
    lik = models.likelihood_of(model)
    assert lik.num_params == out.shape[-1]
    assert models.reconstruct(model, params, jnp.zeros((2,) + shape)).shape == (2,) + shape


def _logistic_cdf(t):
    return 1.0 / (1.0 + np.exp(-t))


def test_bits_per_dim_of_a_zero_decoder_against_the_logistic_pmf():
    """All-zero decoder outputs: equal mixture weights, μ = 0, s = 1, no channel coupling, so every
    channel value v has P(v) = F(y + 1/255) − F(y − 1/255) (edge bins: the tails) with F the
    standard logistic CDF and y = 2v/255 − 1 (float64 here). bits/dim = (−Σ log₂ P + KL/ln 2)/D."""
    shape = (8, 8, 3)
    c = _photos_config(num_mixtures=3)
    model = models.build_model(c.model, shape)
    params = _zero_decoder(models.init_params(model, jax.random.PRNGKey(1), shape))
    images = np.random.default_rng(0).integers(0, 256, (20,) + shape).astype(np.uint8)
    out = diagnostics.evaluate_with_diagnostics(model, params, images, jax.random.PRNGKey(2), "none", 10)
    y = 2.0 * images.astype(np.float64) / 255.0 - 1.0
    upper = np.where(images == 255, 1.0, _logistic_cdf(y + 1 / 255))
    lower = np.where(images == 0, 0.0, _logistic_cdf(y - 1 / 255))
    nll = -np.log(upper - lower).reshape(len(images), -1).sum(-1).mean()
    d = int(np.prod(shape))
    np.testing.assert_allclose(out["rec_loss"], nll, rtol=1e-5)
    np.testing.assert_allclose(out["bits_per_dim"], (nll + out["kl"]) / (d * math.log(2)), rtol=1e-5)


def test_bits_per_dim_of_a_fair_coin_decoder_is_one_bit_plus_the_rate():
    """Bernoulli with logits 0 codes every binary pixel in exactly one bit."""
    shape = (6, 6, 1)
    c = config_lib.base_config()
    c.model.encoder_hidden, c.model.decoder_hidden, c.model.latent_dim = (16,), (16,), 4
    model = models.build_model(c.model, shape)
    params = _zero_decoder(models.init_params(model, jax.random.PRNGKey(0), shape))
    images = np.random.default_rng(1).integers(0, 256, (12,) + shape).astype(np.uint8)
    out = diagnostics.evaluate_with_diagnostics(model, params, images, jax.random.PRNGKey(3), "dynamic", 12)
    d = int(np.prod(shape))
    np.testing.assert_allclose(out["bits_per_dim"] - out["kl"] / (d * math.log(2)), 1.0, rtol=1e-6)
    assert D.LIKELIHOODS["discretized_mix_logistic"] is not None  # registered beside the others


@pytest.mark.slow
def test_cli_trains_and_evaluates_photos(tmp_path):
    """configs/vae_photos.py:tiny end to end, the training command alone (train.evaluate_after):
    eval.json holds bits/dim and nll_iwae in nats and bits/dim."""
    import json
    import subprocess
    import sys
    w = str(tmp_path / "w")
    root = config_lib.sibling(__file__, "..")
    subprocess.run([sys.executable, "-m", "vae_jax.main", f"--workdir={w}", "--config=configs/vae_photos.py:tiny"],
                   cwd=root, check=True, timeout=900)
    ev = json.load(open(f"{w}/eval.json"))
    d = 32 * 32 * 3
    np.testing.assert_allclose(ev["bits_per_dim"], ev["neg_elbo"] / (d * math.log(2)), rtol=1e-6)
    np.testing.assert_allclose(ev["nll_iwae_bits_per_dim"], ev["nll_iwae"] / (d * math.log(2)), rtol=1e-6)
    assert ev["nll_iwae"] <= ev["neg_elbo"] + 1.0
