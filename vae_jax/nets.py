"""Flax linen building blocks: MLP encoders and decoders over images [B, H, W, C]."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

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
