"""Flax linen building blocks: MLP encoders and decoders over images [B, H, W, C]."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

import vae_jax.models.conv as conv

ACTIVATIONS: dict[str, Callable] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "softplus": nn.softplus,
    "leaky_relu": nn.leaky_relu,
    "identity": lambda x: x,
}


def get_activation(name: str) -> Callable:
    if name not in ACTIVATIONS:
        raise ValueError(f"model.activation: {name!r} is not one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense layers with ``activation`` between them and a linear last layer of ``out_dim``."""
    hidden: Sequence[int]
    out_dim: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, h):
        act = get_activation(self.activation)
        for i, width in enumerate(self.hidden):
            h = act(nn.Dense(width, name=f"hidden_{i}")(h))
        return nn.Dense(self.out_dim, name="out")(h)


class MLPEncoder(nn.Module):
    """Flattens x and maps it to ``num_outputs`` vectors of size ``latent_dim`` (e.g. μ, log σ²)."""
    hidden: Sequence[int]
    latent_dim: int
    num_outputs: int = 2
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        h = x.reshape(x.shape[0], -1)
        out = MLP(self.hidden, self.latent_dim * self.num_outputs, self.activation, name="mlp")(h)
        return jnp.split(out, self.num_outputs, axis=-1) if self.num_outputs > 1 else out


class MLPDecoder(nn.Module):
    """Maps z [B, n] to likelihood parameters [B, H, W, C, num_params]."""
    hidden: Sequence[int]
    image_shape: Sequence[int]
    num_params: int = 1
    activation: str = "relu"

    @nn.compact
    def __call__(self, z):
        d = int(np.prod(self.image_shape))
        out = MLP(self.hidden, d * self.num_params, self.activation, name="mlp")(z)
        # [B, num_params * D] -> [B, H, W, C, num_params]: parameter kinds are separate blocks.
        out = out.reshape((z.shape[0], self.num_params) + tuple(self.image_shape))
        return jnp.moveaxis(out, 1, -1)


# ---------------------------------------------------------------------------- conv nets
NETS = ("mlp", "conv")


class ConvEncoder(nn.Module):
    """Stride-2 3×3 convolutions (``channels``, each halving H and W), then dense ``hidden`` layers
    and a linear map to ``num_outputs`` vectors of size ``latent_dim``. For 28×28×1 (MNIST) and
    32×32×3 (CIFAR/SVHN) images with the default (32, 64): 28→14→7, 32→16→8."""
    hidden: Sequence[int]
    latent_dim: int
    num_outputs: int = 2
    activation: str = "relu"
    channels: Sequence[int] = (32, 64)

    @nn.compact
    def __call__(self, x):
        act = get_activation(self.activation)
        h = x
        for i, c in enumerate(self.channels):
            h = act(conv.Conv(c, (3, 3), strides=(2, 2), padding="SAME", name=f"conv_{i}")(h))
        h = h.reshape(h.shape[0], -1)
        out = MLP(self.hidden, self.latent_dim * self.num_outputs, self.activation, name="mlp")(h)
        return jnp.split(out, self.num_outputs, axis=-1) if self.num_outputs > 1 else out


class ConvDecoder(nn.Module):
    """Mirror of ``ConvEncoder``: dense layers to a [H/2^L, W/2^L, channels[-1]] map, then stride-2
    transposed convolutions back to [B, H, W, C, num_params] (last layer linear)."""
    hidden: Sequence[int]
    image_shape: Sequence[int]
    num_params: int = 1
    activation: str = "relu"
    channels: Sequence[int] = (32, 64)

    @nn.compact
    def __call__(self, z):
        act = get_activation(self.activation)
        height, width, colors = self.image_shape
        scale = 2 ** len(self.channels)
        if height % scale or width % scale:
            raise ValueError(f"model.net='conv' with model.conv_channels={tuple(self.channels)} needs image "
                             f"height and width divisible by {scale}; got {height}x{width}")
        h0, w0 = height // scale, width // scale
        h = z
        for i, width_i in enumerate(self.hidden):
            h = act(nn.Dense(width_i, name=f"hidden_{i}")(h))
        h = act(nn.Dense(h0 * w0 * self.channels[-1], name="to_map")(h))
        h = h.reshape((z.shape[0], h0, w0, self.channels[-1]))
        for i, c in enumerate(reversed(self.channels[:-1])):
            h = act(conv.ConvTranspose(c, (3, 3), strides=(2, 2), padding="SAME", name=f"deconv_{i}")(h))
        h = conv.ConvTranspose(colors * self.num_params, (3, 3), strides=(2, 2), padding="SAME", name="out")(h)
        return h.reshape((z.shape[0], height, width, colors, self.num_params))


def make_encoder(net: str, hidden, latent_dim, num_outputs, activation, channels=(32, 64), name=None):
    """``model.net`` -> encoder module (same call signature and outputs for every net)."""
    if net == "mlp":
        return MLPEncoder(hidden, latent_dim, num_outputs, activation, name=name)
    if net == "conv":
        return ConvEncoder(hidden, latent_dim, num_outputs, activation, tuple(channels), name=name)
    raise ValueError(f"model.net: {net!r} is not one of {list(NETS)}")


def make_decoder(net: str, hidden, image_shape, num_params, activation, channels=(32, 64), name=None):
    """``model.net`` -> decoder module emitting likelihood parameters [B, H, W, C, num_params]."""
    if net == "mlp":
        return MLPDecoder(hidden, image_shape, num_params, activation, name=name)
    if net == "conv":
        return ConvDecoder(hidden, image_shape, num_params, activation, tuple(channels), name=name)
    raise ValueError(f"model.net: {net!r} is not one of {list(NETS)}")
