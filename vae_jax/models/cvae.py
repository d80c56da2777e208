"""Conditional VAE p(y | c, z) p(z) with encoder q(z | y, c), and the deterministic regressor with
the same decoder network (its input z is fixed at 0) used as its baseline.

``y`` is the target image [B, H, W, C_y] and ``c`` the condition image [B, H, W, C_c] (e.g. a masked
digit and its mask, or a grayscale image). Both nets are MLPs from ``nets.py``; the decoder adds a
learned σ when the likelihood asks for one, exactly as the unconditional models do.

    model = CVAE((500,), (500,), 20, target_shape=(28, 28, 1), likelihood="bernoulli")
    params = model.init({"params": k}, y, c, k)["params"]
    lik_params, mean, logvar = model.apply({"params": params}, y, c, key)
    lik_params = model.apply({"params": params}, z, c, method="decode")

Models never train: the tasks fit these through the one training loop (``vae_jax/tasks/fit.py``)
with an objective that builds (y, c) from the data batch on device and calls ``conditional_elbo``
or ``regression_nll``.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

import vae_jax.models.distributions as D
from vae_jax import models
import vae_jax.models.autoencoders as autoencoders
import vae_jax.models.nets as nets
import vae_jax.models.protocol as protocol


def _flat(a):
    return a.reshape(a.shape[0], -1)


class _Conditional(nn.Module):
    """Fields and networks of the CVAE and of its regressor baseline (which has no encoder)."""
    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latent_dim: int
    target_shape: Sequence[int]
    likelihood: str = "bernoulli"
    activation: str = "relu"
    min_log_sigma: float = -4.6
    sigma: float = 1.0
    num_mixtures: int = D.DEFAULT_NUM_MIXTURES  # read by 'discretized_mix_logistic' only
    is_vae = True

    def setup(self):
        if self.is_vae:
            self.encoder = nets.MLPEncoder(self.encoder_hidden, self.latent_dim, 2, self.activation)
        self.decoder = autoencoders.DecoderWithScale(self.decoder_hidden, tuple(self.target_shape),
                                                    self.likelihood, self.activation, self.min_log_sigma,
                                                    num_mixtures=self.num_mixtures)

    def decode(self, z, c):
        return self.decoder(jnp.concatenate([z, _flat(c)], -1))


class CVAE(_Conditional):
    def encode(self, y, c):
        return self.encoder(jnp.concatenate([_flat(y), _flat(c)], -1))

    def __call__(self, y, c, key):
        mean, logvar = self.encode(y, c)
        z = D.reparameterize(key, mean, logvar)
        return self.decode(z, c), mean, logvar


class Regressor(_Conditional):
    """The CVAE's decoder network alone, fed z = 0: one deterministic output per condition
    (``encoder_hidden`` is unused)."""
    is_vae = False

    def decode(self, z, c):
        return super().decode(jnp.zeros_like(z), c)

    def __call__(self, y, c, key=None):
        return self.decode(jnp.zeros((c.shape[0], self.latent_dim), c.dtype), c)


def build(model_cfg, target_shape, deterministic: bool = False):
    """A CVAE (or its regressor baseline) with the sizes of a ``model`` config section."""
    common = dict(latent_dim=model_cfg.latent_dim, target_shape=tuple(target_shape),
                  likelihood=model_cfg.likelihood, activation=model_cfg.activation,
                  min_log_sigma=model_cfg.get("min_log_sigma", -4.6), sigma=model_cfg.get("sigma", 1.0),
                  num_mixtures=model_cfg.get("num_mixtures", D.DEFAULT_NUM_MIXTURES))
    if deterministic:
        return Regressor((), tuple(model_cfg.decoder_hidden), **common)
    return CVAE(tuple(model_cfg.encoder_hidden), tuple(model_cfg.decoder_hidden), **common)


def _masked_log_prob(model, y, lik_params, weight):
    """log p(y | ·) summed over the pixels where ``weight`` is 1 (all when ``weight`` is None)."""
    lik = models.likelihood_of(model)
    if weight is not None:
        return protocol.observed_log_prob(lik, y, lik_params, weight)
    lp = lik.log_prob(y, lik_params, event_ndim=0)  # per value
    return lp.reshape(lp.shape[0], -1).sum(-1)


def conditional_elbo(model, params, y, c, key, weight=None, kl_weight: float = 1.0, output_fn=None):
    """(loss, metrics): single-sample −ELBO of log p(y | c) ≥ E_q log p(y|c,z) − KL(q(z|y,c) ‖ N(0,I)).
    ``output_fn(lik_params, c)``, if given, maps the decoder's output to the likelihood parameters
    (e.g. colorization scales a predicted chroma-per-luminance by the gray input)."""
    lik_params, mean, logvar = model.apply({"params": params}, y, c, key)
    if output_fn is not None:
        lik_params = output_fn(lik_params, c)
    rec = -_masked_log_prob(model, y, lik_params, weight)
    kl = D.kl_diag_gaussian_std_normal(mean, logvar).sum(-1)
    loss = jnp.mean(rec + kl_weight * kl)
    return loss, {"loss": loss, "rec_loss": rec.mean(), "kl": kl.mean(), "neg_elbo": (rec + kl).mean()}


def regression_nll(model, params, y, c, key=None, weight=None, output_fn=None):
    """(loss, metrics): −log p(y | c) of the deterministic regressor (MSE for a fixed-σ Gaussian)."""
    lik_params = model.apply({"params": params}, y, c)
    if output_fn is not None:
        lik_params = output_fn(lik_params, c)
    rec = -_masked_log_prob(model, y, lik_params, weight)
    loss = rec.mean()
    return loss, {"loss": loss, "rec_loss": loss}


def sample(model, params, c, key, num_samples: int, output_fn=None):
    """Likelihood parameters of ``num_samples`` draws z ~ N(0, I) per condition: [N, B, ...]."""
    if not model.is_vae:  # the regressor: the same output N times
        out = model.apply({"params": params}, None, c)
        out = out if output_fn is None else output_fn(out, c)
        return jnp.broadcast_to(out, (num_samples,) + out.shape)
    z = jax.random.normal(key, (num_samples, c.shape[0], model.latent_dim))
    cs = jnp.broadcast_to(c, (num_samples,) + c.shape).reshape((-1,) + c.shape[1:])
    out = model.apply({"params": params}, z.reshape(-1, model.latent_dim), cs, method="decode")
    out = out if output_fn is None else output_fn(out, cs)
    return out.reshape((num_samples, c.shape[0]) + out.shape[1:])
