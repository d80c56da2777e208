"""VAE with a VampPrior (Tomczak & Welling 2018, "VAE with a VampPrior"): one Gaussian stochastic
layer whose prior is the mixture of the variational posteriors at K learned pseudo-inputs,

    p(z) = (1/K) Σ_k q(z | u_k),     q(z|x) = N(μ(x), diag σ²(x))  (the same encoder for both).

The pseudo-inputs are parameters of the model, ``u = clip(ũ, 0, 1)`` (the paper's hard-tanh onto
the pixel range) with ũ drawn from N(0.05, 0.01²): inside (0, 1), so every pseudo-pixel gets a
gradient from the first step (the clip has none outside it).

Config ``model.kind='vamp'``: ``model.vamp.num_pseudo_inputs`` (K); shared with the one-layer VAE:
``model.encoder_hidden``, ``decoder_hidden``, ``latent_dim``, ``activation``, ``net``,
``conv_channels``, ``likelihood`` (and its σ fields).

``has_analytic_kl = False``: KL(q(z|x) ‖ p(z)) against a mixture has no closed form, so the ELBO
uses log q − log p on the sample. ``layer_kl`` reports, per unit u, the one-sample Monte-Carlo
estimate of KL(q(z_u|x) ‖ p(z_u)) between the MARGINALS of unit u: p(z_u) = (1/K) Σ_k N(z_u; μ_ku,
σ_ku²) is exactly the prior's marginal on that unit. The mixture does not factorise over units, so
these do not sum to the total KL (which the ELBO's rate term reports).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import checks
import vae_jax.models.autoencoders as autoencoders
import vae_jax.models.distributions as D
import vae_jax.models.nets as nets
from vae_jax.models.families import register_family

PSEUDO_INIT_MEAN, PSEUDO_INIT_STD = 0.05, 0.01


def mixture_log_prob(z, means, logvars):
    """log (1/K) Σ_k N(z; μ_k, diag σ_k²) for z [..., n], components [K, n] -> [...].

    (z − μ_k)² is formed directly: the matmul expansion (z²/σ² − 2zμ/σ² + μ²/σ²) cancels in
    float32 when a component is narrow (evaluation/diagnostics.py measured it); XLA fuses the
    [..., K, n] difference into the reduction."""
    diff = z[..., None, :] - means
    log_k = -0.5 * jnp.sum(D.LOG_2PI + logvars + diff ** 2 * jnp.exp(-logvars), axis=-1)  # [..., K]
    return jax.nn.logsumexp(log_k, axis=-1) - jnp.log(means.shape[0])


def unit_mixture_log_prob(z, means, logvars):
    """Per-unit marginals of the mixture: log (1/K) Σ_k N(z_u; μ_ku, σ_ku²), z [..., n] -> [..., n]."""
    diff = z[..., None, :] - means
    log_k = -0.5 * (D.LOG_2PI + logvars + diff ** 2 * jnp.exp(-logvars))                 # [..., K, n]
    return jax.nn.logsumexp(log_k, axis=-2) - jnp.log(means.shape[0])


def _pseudo_init(key, shape, dtype=jnp.float32):
    return PSEUDO_INIT_MEAN + PSEUDO_INIT_STD * jax.random.normal(key, shape, dtype)


class VampVAE(nn.Module):
    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latent_dim: int
    num_pseudo_inputs: int
    image_shape: Sequence[int]
    likelihood: str = "bernoulli"
    activation: str = "relu"
    sigma: float = 1.0
    min_log_sigma: float = -4.6
    net: str = "mlp"
    conv_channels: Sequence[int] = (32, 64)

    is_vae = True
    has_analytic_kl = False
    latent_layers = ("z",)

    def setup(self):
        self.encoder = nets.make_encoder(self.net, self.encoder_hidden, self.latent_dim, 2, self.activation,
                                         self.conv_channels)
        self.decoder = autoencoders.DecoderWithScale(self.decoder_hidden, self.image_shape, self.likelihood,
                                                     self.activation, self.min_log_sigma, self.net,
                                                     self.conv_channels)
        self.pseudo_raw = self.param("pseudo_inputs", _pseudo_init,
                                     (self.num_pseudo_inputs,) + tuple(self.image_shape))

    def pseudo_inputs(self):
        """u_k = hard-tanh onto [0, 1] of the raw parameters, [K, H, W, C]."""
        return jnp.clip(self.pseudo_raw, 0.0, 1.0)

    def encode(self, x):
        mean, logvar = self.encoder(x)
        return mean, logvar

    def prior_components(self):
        """(μ_k, log σ_k²) of q(z | u_k), [K, n] each."""
        return self.encode(self.pseudo_inputs())

    # ------------------------------------------------------------------ the protocol
    def posterior_sample(self, x, key, num_samples: int):
        mean, logvar = self.encode(x)
        eps = jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps
        log_q = jnp.sum(-0.5 * (D.LOG_2PI + logvar + eps ** 2), axis=-1)  # log N(z; μ, σ²) at z = μ + σε
        return z, log_q

    def log_prior(self, z):
        means, logvars = self.prior_components()
        return mixture_log_prob(z, means, logvars)

    def decode(self, z):
        return self.decoder(z)

    def prior_sample(self, key, n: int):
        k_component, k_noise = jax.random.split(key)
        means, logvars = self.prior_components()
        k = jax.random.randint(k_component, (n,), 0, self.num_pseudo_inputs)
        return D.reparameterize(k_noise, means[k], logvars[k])

    def posterior_mean(self, x):
        return self.encode(x)[0]

    def layer_kl(self, x, key):
        mean, logvar = self.encode(x)
        eps = jax.random.normal(key, mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps
        log_q = -0.5 * (D.LOG_2PI + logvar + eps ** 2)                                    # [B, n] per unit
        means, logvars = self.prior_components()
        return {"z": log_q - unit_mixture_log_prob(z, means, logvars)}

    def __call__(self, x, key):
        """For ``init``: touches every parameter (encoder, pseudo-inputs, decoder)."""
        z, log_q = self.posterior_sample(x, key, 1)
        return self.decode(z[0]), log_q, self.log_prior(z)


# ---------------------------------------------------------------------------- registration
DEFAULTS = {"num_pseudo_inputs": 500}
SHARED_FIELDS = ("encoder_hidden", "decoder_hidden", "latent_dim", "activation", "net", "conv_channels",
                 "likelihood", "sigma", "min_log_sigma", "decoder_bias_init")


def build(cfg, image_shape):
    return VampVAE(tuple(cfg.encoder_hidden), tuple(cfg.decoder_hidden), cfg.latent_dim, cfg.vamp.num_pseudo_inputs,
                   tuple(image_shape), likelihood=cfg.likelihood, activation=cfg.activation,
                   sigma=cfg.get("sigma", 1.0), min_log_sigma=cfg.get("min_log_sigma", -4.6),
                   net=cfg.get("net", "mlp"), conv_channels=tuple(cfg.get("conv_channels", (32, 64))))


def validate(cfg) -> None:
    checks.positive_int(cfg, "model.vamp.num_pseudo_inputs")


def shrink(cfg) -> None:
    """``config.tiny``: few pseudo-inputs and small nets for tests."""
    cfg.vamp.num_pseudo_inputs = min(cfg.vamp.num_pseudo_inputs, 16)
    cfg.encoder_hidden = tuple(min(h, 32) for h in cfg.encoder_hidden)
    cfg.decoder_hidden = tuple(min(h, 32) for h in cfg.decoder_hidden)
    cfg.latent_dim = min(cfg.latent_dim, 8)


register_family("vamp", build=build, validate=validate, defaults=DEFAULTS, shared_fields=SHARED_FIELDS,
                shrink=shrink)
