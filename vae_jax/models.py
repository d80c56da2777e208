"""AE and VAE as Flax modules; everything a caller needs is a pure function of ``params``.

    model = build_model(cfg.model, image_shape)
    params = model.init({"params": key}, x, key)["params"]
    mean, logvar = model.apply({"params": params}, x, method="encode")      # VAE
    lik_params   = model.apply({"params": params}, z, method="decode")
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import distributions as D
from vae_jax import nets

MODEL_KINDS = ("vae", "ae", "linear_ae")


class _DecoderWithScale(nn.Module):
    """Wraps the decoder; adds a learned, pixel-shared log σ when the likelihood needs one."""
    hidden: Sequence[int]
    image_shape: Sequence[int]
    likelihood: str
    activation: str
    min_log_sigma: float

    @nn.compact
    def __call__(self, z):
        if self.likelihood == "gaussian_learned":
            mean = nets.MLPDecoder(self.hidden, self.image_shape, 1, self.activation, name="net")(z)
            log_sigma = self.param("log_sigma", nn.initializers.zeros, ())
            log_sigma = jnp.maximum(log_sigma, self.min_log_sigma)
            return jnp.concatenate([mean, jnp.broadcast_to(log_sigma, mean.shape)], axis=-1)
        n = D.LIKELIHOODS[self.likelihood].num_params
        return nets.MLPDecoder(self.hidden, self.image_shape, n, self.activation, name="net")(z)


class VAE(nn.Module):
    """Gaussian encoder q(z|x) = N(μ(x), diag σ²(x)), N(0, I) prior, decoder p(x|z)."""
    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latent_dim: int
    image_shape: Sequence[int]
    likelihood: str = "bernoulli"
    activation: str = "relu"
    min_log_sigma: float = -4.6
    sigma: float = 1.0
    is_vae = True

    def setup(self):
        self.encoder = nets.MLPEncoder(self.encoder_hidden, self.latent_dim, 2, self.activation)
        self.decoder = _DecoderWithScale(self.decoder_hidden, self.image_shape, self.likelihood,
                                         self.activation, self.min_log_sigma)

    def encode(self, x):
        mean, logvar = self.encoder(x)
        return mean, logvar

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x, key):
        mean, logvar = self.encode(x)
        z = D.reparameterize(key, mean, logvar)
        return self.decode(z), mean, logvar, z


class AE(nn.Module):
    """Deterministic autoencoder; any latent size (under- or overcomplete). ``activation='identity'``
    with no hidden layers is the linear autoencoder."""
    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latent_dim: int
    image_shape: Sequence[int]
    likelihood: str = "gaussian"
    activation: str = "relu"
    min_log_sigma: float = -4.6
    sigma: float = 1.0
    is_vae = False

    def setup(self):
        self.encoder = nets.MLPEncoder(self.encoder_hidden, self.latent_dim, 1, self.activation)
        self.decoder = _DecoderWithScale(self.decoder_hidden, self.image_shape, self.likelihood,
                                         self.activation, self.min_log_sigma)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    def __call__(self, x, key=None):
        z = self.encode(x)
        return self.decode(z), z


def build_model(cfg, image_shape):
    kind = cfg.kind
    common = dict(latent_dim=cfg.latent_dim, image_shape=tuple(image_shape),
                  likelihood=cfg.likelihood, min_log_sigma=cfg.get("min_log_sigma", -4.6),
                  sigma=cfg.get("sigma", 1.0))
    if kind == "vae":
        return VAE(tuple(cfg.encoder_hidden), tuple(cfg.decoder_hidden), activation=cfg.activation, **common)
    if kind == "ae":
        return AE(tuple(cfg.encoder_hidden), tuple(cfg.decoder_hidden), activation=cfg.activation, **common)
    if kind == "linear_ae":
        return AE((), (), activation="identity", **common)
    raise ValueError(f"model.kind: {kind!r} is not one of {list(MODEL_KINDS)}")


def init_params(model, key, image_shape):
    x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    return model.init({"params": key}, x, key)["params"]


def reconstruct(model, params, x, key=None):
    """Mean of p(x|z) at z = E_q[z] (posterior mean for a VAE, the code for an AE)."""
    lik = likelihood_of(model)
    if model.is_vae:
        z, _ = model.apply({"params": params}, x, method="encode")
    else:
        z = model.apply({"params": params}, x, method="encode")
    return lik.mean(model.apply({"params": params}, z, method="decode"))


def sample(model, params, key, n: int):
    """Means of p(x|z) for z ~ N(0, I) (VAE only)."""
    z = jax.random.normal(key, (n, model.latent_dim))
    return likelihood_of(model).mean(model.apply({"params": params}, z, method="decode"))


def likelihood_of(model):
    return D.get_likelihood(model.likelihood, sigma=model.sigma)
