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


# ---------------------------------------------------------------------------- the matmul form (models/conv.py)
from jax import lax  # noqa: E402
import flax.linen as nn  # noqa: E402
from vae_jax.models import conv  # noqa: E402

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("k,stride,padding,lhs_dil,rhs_dil", [
    (3, 2, "SAME", 1, 1), (4, 2, "SAME", 1, 1), (5, 2, "VALID", 1, 1), (1, 1, "SAME", 1, 1),
    (3, 1, ((2, 1), (0, 3)), 2, 1), (3, 1, "SAME", 1, 2), (2, 3, ((1, -1), (0, 0)), 1, 1),
])
def test_matmul_conv_equals_xla_values_and_gradients(monkeypatch, k, stride, padding, lhs_dil, rhs_dil):
    """Value, input gradient and kernel gradient of the slices+matmul form against XLA's
    convolution, for strides, both padding modes, explicit (also negative) pads and dilations."""
    monkeypatch.setenv(conv.ENV, "matmul")
    kx, kw, kg = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (2, 9, 8, 5))
    w = jax.random.normal(kw, (k, k, 5, 7)) / k
    args = dict(window_strides=(stride, stride), padding=padding, lhs_dilation=(lhs_dil,) * 2,
                rhs_dilation=(rhs_dil,) * 2, dimension_numbers=NHWC)
    ref = lambda x, w: lax.conv_general_dilated(x, w, **args)
    ours = lambda x, w: conv.conv_general_dilated(x, w, **args)
    y_ref, y = ref(x, w), ours(x, w)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    g = jax.random.normal(kg, y.shape)
    for argnum in (0, 1):
        d_ref = jax.grad(lambda *a: jnp.sum(ref(*a) * g), argnum)(x, w)
        d = jax.grad(lambda *a: jnp.sum(ours(*a) * g), argnum)(x, w)
        np.testing.assert_allclose(d, d_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k,stride,padding", [(3, 2, "SAME"), (4, 2, "SAME"), (3, 1, "SAME"), (5, 3, "SAME"),
                                              (3, 2, "VALID"), (2, 2, "VALID")])
def test_conv_transpose_is_flax_conv_transpose(monkeypatch, k, stride, padding):
    """conv.ConvTranspose: the same parameters and the same function as nn.ConvTranspose, in both
    forms (a checkpoint of either loads in the other); with the output split by phase where the
    output divides into equal phases (SAME; VALID 2×2/2), the general slices otherwise (VALID 3×3/2)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 6, 4))
    ref = nn.ConvTranspose(5, (k, k), strides=(stride, stride), padding=padding)
    params = ref.init(jax.random.PRNGKey(1), x)
    pads = tuple(conv.transpose_padding(k, stride, padding) for _ in range(2))
    by_phase = conv._by_output_phase(x, params["params"]["kernel"], (stride, stride), pads, None)
    assert (by_phase is None) == (stride > 1 and (k, padding) == (3, "VALID")) or stride == 1
    for form in ("xla", "matmul"):
        monkeypatch.setenv(conv.ENV, form)
        ours = conv.ConvTranspose(5, (k, k), strides=(stride, stride), padding=padding)
        assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(1), x)) == jax.tree.map(jnp.shape, params)
        np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)


def test_conv_impl_choice_and_bad_value(monkeypatch, tmp_path):
    monkeypatch.delenv(conv.ENV, raising=False)
    assert conv.impl() == ("matmul" if jax.default_backend() == "cpu" else "xla")
    monkeypatch.setenv(conv.ENV, "xla")
    assert conv.impl() == "xla" and conv.check_env() is None
    monkeypatch.setenv(conv.ENV, "cudnn")
    assert conv.check_env() == "VAE_JAX_CONV: 'cudnn' is not one of ['auto', 'xla', 'matmul'] (unset it for 'auto')"
    with pytest.raises(ValueError, match="VAE_JAX_CONV"):
        conv.impl()


def test_cli_refuses_bad_conv_env_before_anything(tmp_path):
    from conftest import cli_run
    run = cli_run(str(tmp_path / "w"), ["--config=configs/vae_photos.py:tiny"], env={conv.ENV: "cudnn"})
    assert run.returncode == 2, run.stderr[-500:]
    assert run.stderr.strip().splitlines()[-1].startswith("error: VAE_JAX_CONV: 'cudnn'")
    assert run.files == [] and "Traceback" not in run.stderr


def test_run_meta_records_conv_impl(tmp_path, monkeypatch):
    monkeypatch.setenv(conv.ENV, "xla")
    from vae_jax.training import run_meta
    c = load_config("vae_mnist")
    with run_meta.open_workdir(str(tmp_path), c, {"source": "test"}):
        pass
    assert json.load(open(tmp_path / "run_meta.json"))["conv_impl"] == "xla"
