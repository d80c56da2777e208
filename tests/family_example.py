"""A model family in one file (the README's example, "Model families and the protocol"): a VAE whose
prior N(m, diag s²) is learned. In the package it would be vae_jax/models/families/learned_prior.py
plus its module name in the import list of vae_jax/models/__init__.py; tests/test_families.py
loads this file, registers it, validates, trains and evaluates it, and unregisters it.
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


def kl_diag_gaussians(mean_q, logvar_q, mean_p, logvar_p):
    """KL(N(mean_q, σ_q²) ‖ N(mean_p, σ_p²)) per unit."""
    return 0.5 * (logvar_p - logvar_q + (jnp.exp(logvar_q) + (mean_q - mean_p) ** 2) * jnp.exp(-logvar_p) - 1.0)


class LearnedPriorVAE(nn.Module):
    hidden: Sequence[int]
    latent_dim: int
    image_shape: Sequence[int]
    init_log_scale: float = 0.0
    likelihood: str = "bernoulli"
    sigma: float = 1.0                 # every family carries likelihood and sigma (protocol.likelihood_of)
    min_log_sigma: float = -4.6

    is_vae = True                      # speaks the latent-variable protocol
    has_analytic_kl = True             # so it gives posterior_sample_kl and analytic_kl too
    latent_layers = ("z",)

    def setup(self):
        self.encoder = nets.MLPEncoder(self.hidden, self.latent_dim, 2, "relu")
        self.decoder = autoencoders.DecoderWithScale(self.hidden, self.image_shape, self.likelihood, "relu",
                                                      self.min_log_sigma)
        self.prior_mean = self.param("prior_mean", nn.initializers.zeros, (self.latent_dim,))
        self.prior_logvar = self.param("prior_logvar", nn.initializers.constant(2.0 * self.init_log_scale),
                                       (self.latent_dim,))

    # ---- the protocol (vae_jax/models/protocol.py)
    def posterior_sample_kl(self, x, key, num_samples: int):
        mean, logvar = self.encoder(x)
        eps = jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps
        log_q = jnp.sum(-0.5 * (D.LOG_2PI + logvar + eps ** 2), axis=-1)
        return z, log_q, {"z": kl_diag_gaussians(mean, logvar, self.prior_mean, self.prior_logvar)}

    def posterior_sample(self, x, key, num_samples: int):
        z, log_q, _ = self.posterior_sample_kl(x, key, num_samples)
        return z, log_q

    def layer_kl(self, x, key):
        mean, logvar = self.encoder(x)
        return {"z": kl_diag_gaussians(mean, logvar, self.prior_mean, self.prior_logvar)}

    def analytic_kl(self, x):
        return self.layer_kl(x, None)["z"].sum(-1)

    def log_prior(self, z):
        return D.diag_gaussian_log_prob(z, self.prior_mean, self.prior_logvar)

    def decode(self, z):
        return self.decoder(z)

    def prior_sample(self, key, n: int):
        return D.reparameterize(key, self.prior_mean, self.prior_logvar, n)

    def posterior_mean(self, x):
        return self.encoder(x)[0]

    def __call__(self, x, key):
        """For ``init``: touches every parameter."""
        z, _ = self.posterior_sample(x, key, 1)
        return self.decode(z[0]), self.log_prior(z)


# ---- registration: build, own fields (cfg.model.learned_prior.*) and their check, tiny variant
def build(cfg, image_shape):
    own = cfg.learned_prior
    return LearnedPriorVAE(tuple(own.hidden), cfg.latent_dim, tuple(image_shape), own.init_log_scale,
                           likelihood=cfg.likelihood, sigma=cfg.sigma, min_log_sigma=cfg.min_log_sigma)


def validate(cfg) -> None:
    checks.int_tuple(cfg, "model.learned_prior.hidden", allow_empty=False)
    checks.number(cfg, "model.learned_prior.init_log_scale", low=-5.0, high=5.0)


def shrink(m) -> None:
    """``config.tiny``."""
    m.learned_prior.hidden = tuple(min(h, 32) for h in m.learned_prior.hidden)
    m.latent_dim = min(m.latent_dim, 8)


register_family("learned_prior", build=build, validate=validate,
                defaults={"hidden": (256,), "init_log_scale": 0.0},
                shared_fields=("latent_dim", "likelihood", "sigma", "min_log_sigma"), shrink=shrink)
