"""The stacked Gaussian VAE of Burda, Grosse & Salakhutdinov 2015 ("Importance Weighted
Autoencoders", §5): stochastic layers z_1 (next to x) ... z_L, inference bottom-up, generation
top-down, MLP blocks of ``hidden_layers`` tanh layers between consecutive layers.

    inference   x → [h_1 × hidden_layers] → q(z_1|x) → [h_2 × ...] → q(z_2|z_1) → ...
    generative  z_L ~ N(0, I) → [h_L × ...] → p(z_{L-1}|z_L) → ... → z_1 → [h_1 × ...] → p(x|z_1)

Every q and p(z_l|z_{l+1}) is a diagonal Gaussian (mean and log-variance from a linear head). The
paper's two-layer model is the default: x → 200, 200 → z_1 (100) → 100, 100 → z_2 (50), and the
mirror image back (``model.two_layer.latent_dims=(100, 50)``, ``hidden=(200, 100)``; one entry
each gives the paper's one-layer model, more entries deeper stacks).

The total KL has no closed form (p(z_1|z_2) depends on the sample), so ``has_analytic_kl = False``
and the ELBO uses log q − log p on the sample. ``layer_kl`` (the draw of ``posterior_sample(x,
key, 1)``): the top layer's per-unit KL(q(z_L|z_{L-1}) ‖ N(0, I)) in closed form given the layer
below; every lower layer's per-unit log q(z_l|z_{l-1}) − log p(z_l|z_{l+1}) on the sample. (A
closed form "given the sampled z_{l+1}" would be biased here: inference is bottom-up, so z_{l+1}
was drawn from z_l and is correlated with it.) The sum over layers and units is an unbiased
estimate of the total KL. ``posterior_mean`` chains the means (μ_2(μ_1(x)) for z_2: the
mean of q(z_2|z_1) at z_1's mean, not E_q[z_2]; active units of z_2 use it).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import checks
from vae_jax.errors import ConfigError
import vae_jax.models.autoencoders as autoencoders
import vae_jax.models.distributions as D
import vae_jax.models.nets as nets
from vae_jax.models.families import register_family


class StackedVAE(nn.Module):
    latent_dims: Sequence[int]     # z_1 (next to x) first
    hidden: Sequence[int]          # width of the block below each stochastic layer (x→z_1 first)
    image_shape: Sequence[int]
    hidden_layers: int = 2
    activation: str = "tanh"
    likelihood: str = "bernoulli"
    sigma: float = 1.0
    min_log_sigma: float = -4.6
    num_mixtures: int = D.DEFAULT_NUM_MIXTURES

    is_vae = True
    has_analytic_kl = False

    @property
    def latent_layers(self) -> tuple[str, ...]:
        return tuple(f"z{l + 1}" for l in range(len(self.latent_dims)))

    def setup(self):
        n, depth = len(self.latent_dims), self.hidden_layers
        # q(z_l | z_{l-1}) (z_0 = x) and p(z_l | z_{l+1}): the block between z_l and z_{l+1} has
        # width hidden[l+1] in both directions, as in the paper.
        self.up = [nets.MLP((self.hidden[l],) * depth, 2 * self.latent_dims[l], self.activation) for l in range(n)]
        self.down = [nets.MLP((self.hidden[l + 1],) * depth, 2 * self.latent_dims[l], self.activation)
                     for l in range(n - 1)]
        self.decoder = autoencoders.DecoderWithScale((self.hidden[0],) * depth, self.image_shape, self.likelihood,
                                                      self.activation, self.min_log_sigma,
                                                      num_mixtures=self.num_mixtures)

    def _gaussian(self, net, h):
        mean, logvar = jnp.split(net(h), 2, axis=-1)
        return mean, logvar

    def _posterior_layers(self, x, key, num_samples: int):
        """z_l = μ_l + σ_l·ε_l bottom-up; per layer (z [S, B, n_l], μ, log σ², ε). One key per layer
        (split, never reused)."""
        keys = jax.random.split(key, len(self.latent_dims))
        h = x.reshape(x.shape[0], -1)
        layers = []
        for l, k in enumerate(keys):
            mean, logvar = self._gaussian(self.up[l], h)
            shape = mean.shape if l else (num_samples,) + mean.shape   # layers above z_1 already have S
            eps = jax.random.normal(k, shape, mean.dtype)
            z = mean + jnp.exp(0.5 * logvar) * eps
            layers.append((z, mean, logvar, eps))
            h = z
        return layers

    def _prior_params(self, l: int, parent):
        return self._gaussian(self.down[l], parent)

    # ------------------------------------------------------------------ the protocol
    def posterior_sample(self, x, key, num_samples: int):
        layers = self._posterior_layers(x, key, num_samples)
        # log N(z; μ, σ²) at z = μ + σε is −½Σ(log 2π + log σ² + ε²): no (z − μ)/σ round trip.
        log_q = sum(jnp.sum(-0.5 * (D.LOG_2PI + logvar + eps ** 2), axis=-1) for _, _, logvar, eps in layers)
        return tuple(z for z, *_ in layers), log_q

    def log_prior(self, z):
        out = D.std_normal_log_prob(z[-1])
        for l in range(len(z) - 1):
            out = out + D.diag_gaussian_log_prob(z[l], *self._prior_params(l, z[l + 1]))
        return out

    def decode(self, z):
        return self.decoder(z[0])

    def prior_sample(self, key, n: int):
        keys = jax.random.split(key, len(self.latent_dims))
        z = [None] * (len(self.latent_dims) - 1) + [jax.random.normal(keys[-1], (n, self.latent_dims[-1]))]
        for l in reversed(range(len(self.latent_dims) - 1)):
            z[l] = D.reparameterize(keys[l], *self._prior_params(l, z[l + 1]))
        return tuple(z)

    def posterior_mean(self, x):
        h, out = x.reshape(x.shape[0], -1), []
        for net in self.up:
            h, _ = self._gaussian(net, h)
            out.append(h)
        return tuple(out)

    def layer_kl(self, x, key):
        layers = self._posterior_layers(x, key, 1)
        out = {}
        for l, (name, (z, mean, logvar, eps)) in enumerate(zip(self.latent_layers, layers)):
            if l == len(layers) - 1:
                kl = D.kl_diag_gaussian_std_normal(mean, logvar)
            else:
                mean_p, logvar_p = self._prior_params(l, layers[l + 1][0])
                log_q = -0.5 * (D.LOG_2PI + logvar + eps ** 2)
                log_p = -0.5 * (D.LOG_2PI + logvar_p + (z - mean_p) ** 2 * jnp.exp(-logvar_p))
                kl = log_q - log_p
            out[name] = jnp.broadcast_to(kl, (1,) + kl.shape[-2:])[0]   # [B, n_l]
        return out

    def __call__(self, x, key):
        """For ``init``: touches every parameter (inference nets, prior nets, decoder)."""
        z, log_q = self.posterior_sample(x, key, 1)
        return self.decode(tuple(a[0] for a in z)), log_q, self.log_prior(z)


# ---------------------------------------------------------------------------- registration
DEFAULTS = {"latent_dims": (100, 50), "hidden": (200, 100), "hidden_layers": 2, "activation": "tanh"}
SHARED_FIELDS = ("likelihood", "sigma", "min_log_sigma", "num_mixtures", "decoder_bias_init")


def build(cfg, image_shape):
    t = cfg.two_layer
    return StackedVAE(tuple(t.latent_dims), tuple(t.hidden), tuple(image_shape), hidden_layers=t.hidden_layers,
                      activation=t.activation, likelihood=cfg.likelihood, sigma=cfg.get("sigma", 1.0),
                      min_log_sigma=cfg.get("min_log_sigma", -4.6),
                      num_mixtures=cfg.get("num_mixtures", D.DEFAULT_NUM_MIXTURES))


def validate(cfg) -> None:
    checks.int_tuple(cfg, "model.two_layer.latent_dims", allow_empty=False)
    checks.int_tuple(cfg, "model.two_layer.hidden", allow_empty=False)
    checks.positive_int(cfg, "model.two_layer.hidden_layers")
    checks.choice(cfg, "model.two_layer.activation", nets.ACTIVATIONS)
    t = cfg.model.two_layer
    if len(t.hidden) != len(t.latent_dims):
        raise ConfigError(f"model.two_layer.hidden: {tuple(t.hidden)} has {len(t.hidden)} widths but "
                          f"model.two_layer.latent_dims={tuple(t.latent_dims)} has {len(t.latent_dims)} layers; "
                          "give one width per stochastic layer (the block below it)")


def shrink(m) -> None:
    """``config.tiny``: small layers for tests."""
    m.two_layer.latent_dims = tuple(min(d, 8) for d in m.two_layer.latent_dims)
    m.two_layer.hidden = tuple(min(h, 32) for h in m.two_layer.hidden)


register_family("two_layer", build=build, validate=validate, defaults=DEFAULTS, shared_fields=SHARED_FIELDS,
                shrink=shrink)
