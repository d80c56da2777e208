"""Conv encoder/decoder (model.net='conv'): shapes for 28×28×1 and 32×32×3, config routing and
validation, and a conv VAE that trains end-to-end on the tiny config."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from vae_jax import config as config_lib
from vae_jax import models
from vae_jax.models import nets
from vae_jax.training import runs
from vae_jax.errors import ConfigError


@pytest.mark.parametrize("kind,likelihood,shape", [
    ("vae", "bernoulli", (28, 28, 1)),
    ("vae", "gaussian_learned", (32, 32, 3)),
    ("ae", "gaussian", (32, 32, 3)),
])
def test_conv_model_shapes(kind, likelihood, shape):
    c = load_config("vae_mnist")
    c.model.kind, c.model.likelihood, c.model.net = kind, likelihood, "conv"
    model = models.build_model(c.model, shape)
    params = models.init_params(model, jax.random.PRNGKey(0), shape)
    assert "conv_0" in params["encoder"] and "out" in params["decoder"]["net"]
    x = jnp.zeros((3,) + shape)
    n_params = 2 if likelihood == "gaussian_learned" else 1
    if kind == "vae":
        lik_params, mean, logvar, z = model.apply({"params": params}, x, jax.random.PRNGKey(1))
        assert mean.shape == logvar.shape == (3, c.model.latent_dim)
    else:
        lik_params, z = model.apply({"params": params}, x)
        assert z.shape == (3, c.model.latent_dim)
    assert lik_params.shape == (3,) + shape + (n_params,)
    assert models.reconstruct(model, params, x).shape == (3,) + shape


def test_conv_decoder_pixels_depend_on_code():
    """The transposed convolutions reach every pixel: changing z changes the whole image."""
    dec = nets.ConvDecoder((16,), (28, 28, 1), 1)
    z = jax.random.normal(jax.random.PRNGKey(0), (2, 4))
    params = dec.init(jax.random.PRNGKey(1), z)
    out = dec.apply(params, z)
    assert float(jnp.mean(jnp.abs(out[0] - out[1]) > 1e-6)) > 0.99


def test_conv_needs_divisible_image_size():
    with pytest.raises(ValueError, match="model.net='conv'.*divisible by 4; got 30x30"):
        nets.ConvDecoder((), (30, 30, 1), 1).init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))


def test_net_validation_names_field_and_choices():
    c = load_config("vae_mnist")
    c.model.net = "resnet"
    with pytest.raises(ConfigError, match=r"model.net: 'resnet' is not allowed; choose one of \['conv', 'mlp'\]"):
        config_lib.validate(c)
    c.model.net, c.model.conv_channels = "conv", (32, 0)
    with pytest.raises(ConfigError, match="model.conv_channels"):
        config_lib.validate(c)


def test_conv_vae_trains_end_to_end(tmp_path):
    c = load_config("vae_mnist")
    c.model.net, c.model.conv_channels = "conv", (8, 16)
    c.train.tensorboard = False
    final = runs.train_and_evaluate(c, str(tmp_path))
    rows = [json.loads(line) for line in open(os.path.join(tmp_path, "metrics.jsonl"))]
    assert rows[-1]["train/neg_elbo"] < rows[0]["train/neg_elbo"]
    assert np.isfinite(final["neg_elbo"]) and final["neg_elbo"] < 543.5  # 784·log 2 at init
