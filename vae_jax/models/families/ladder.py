"""Ladder VAE (Sønderby, Raiko, Maaløe, Sønderby & Winther 2016, "Ladder Variational Autoencoders"):
L Gaussian stochastic layers z_1 (next to x) ... z_L (top), MLP blocks, likelihood p(x|z_1).

    generative  z_L ~ N(0, I),  z_l | z_{l+1} ~ N(μ_p, σ_p²) = top-down MLP(z_{l+1}),  x | z_1 ~ p(x|z_1)
    inference   bottom-up: d_l = MLP(d_{l-1}) (d_0 = x), (μ̂_l, log σ̂_l²) = Dense(d_l);
                top-down:  q(z_L|x) = N(μ̂_L, σ̂_L²);  for l < L,  q(z_l|z_{l+1}, x) merges the
                bottom-up estimate with the prior p(z_l|z_{l+1}) by precision weighting
                (``precision_weighted``): the posterior reuses the generative top-down path.

Config ``model.kind='ladder'``: ``model.ladder.latent_dims`` (z_1 first, e.g. (64, 32)) and
``model.ladder.hidden`` (one width per layer: the bottom-up block into level l, the top-down block
out of z_{l+1}, and for l = 1 the decoder); shared: ``model.likelihood`` (and its σ fields),
``model.activation``. Not in this version: the paper's batch normalisation (its KL warm-up is
``objective.name='elbo_warmup'``, which configs/ladder_mnist.py uses).

Latents are a tuple (z_1, ..., z_L), named ``latent_layers`` = ('z1', ..., 'zL'). The total KL has no
closed form (the prior of z_l depends on the sampled z_{l+1}), so ``has_analytic_kl = False`` and
the ELBO uses log q − log p on the sample; ``layer_kl`` gives the per-unit analytic KL of each
layer given its sampled parent (their sum over layers and units is an unbiased KL estimate).
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


def precision_weighted(mu_hat, logvar_hat, mu_p, logvar_p):
    """The ladder merge: σ_q² = 1/(σ̂⁻² + σ_p⁻²), μ_q = (μ̂σ̂⁻² + μ_pσ_p⁻²)σ_q².

    Written as μ_q = w·μ̂ + (1−w)·μ_p with w = σ̂⁻²/(σ̂⁻² + σ_p⁻²) = sigmoid(log σ_p² − log σ̂²) and
    log σ_q² = −logaddexp(−log σ̂², −log σ_p²): no precision is ever formed, so one very confident
    side (log-variances far apart) neither overflows nor loses the other's mean."""
    w = jax.nn.sigmoid(logvar_p - logvar_hat)
    return w * mu_hat + (1.0 - w) * mu_p, -jnp.logaddexp(-logvar_hat, -logvar_p)


def kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per unit (closed form)."""
    return 0.5 * (logvar_p - logvar_q + (jnp.exp(logvar_q) + (mu_q - mu_p) ** 2) * jnp.exp(-logvar_p) - 1.0)


class Ladder(nn.Module):
    latent_dims: Sequence[int]         # z_1 (next to x) first
    hidden: Sequence[int]              # one width per stochastic layer
    image_shape: Sequence[int]
    likelihood: str = "bernoulli"
    activation: str = "relu"
    sigma: float = 1.0
    min_log_sigma: float = -4.6

    is_vae = True
    has_analytic_kl = False

    @property
    def latent_layers(self) -> tuple[str, ...]:
        return tuple(f"z{l + 1}" for l in range(len(self.latent_dims)))

    def setup(self):
        n = len(self.latent_dims)
        # Bottom-up: block l maps d_{l-1} to d_l (two dense layers, activation after both), a head
        # gives (μ̂_l, log σ̂_l²).
        self.up = [nets.MLP((h,), h, self.activation) for h in self.hidden]
        self.up_head = [nn.Dense(2 * d) for d in self.latent_dims]
        # Top-down: block l maps z_{l+1} to (μ_p, log σ_p²) of z_l; shared by prior and posterior.
        self.down = [nets.MLP((self.hidden[l],), 2 * self.latent_dims[l], self.activation) for l in range(n - 1)]
        self.decoder = autoencoders.DecoderWithScale((self.hidden[0],), self.image_shape, self.likelihood,
                                                     self.activation, self.min_log_sigma)

    # ------------------------------------------------------------------ pieces
    def _bottom_up(self, x):
        act = nets.get_activation(self.activation)
        h = x.reshape(x.shape[0], -1)
        stats = []
        for block, head in zip(self.up, self.up_head):
            h = act(block(h))
            stats.append(tuple(jnp.split(head(h), 2, axis=-1)))
        return stats

    def prior_params(self, l: int, parent):
        """(μ_p, log σ_p²) of p(z_l | z_{l+1} = parent), l 0-based < L−1; leading axes of parent kept."""
        mu, logvar = jnp.split(self.down[l](parent), 2, axis=-1)
        return mu, logvar

    def _top_down(self, x, draw):
        """Walks z_L ... z_1; ``draw(l, mu_q, logvar_q) -> z_l``. Returns per layer (l = 0 first)
        the dict of z, mu_q, logvar_q, mu_p, logvar_p (the top layer's prior is N(0, I))."""
        stats = self._bottom_up(x)
        layers = [None] * len(stats)
        for l in reversed(range(len(stats))):
            mu_hat, logvar_hat = stats[l]
            if l == len(stats) - 1:
                mu_q, logvar_q = mu_hat, logvar_hat
                mu_p, logvar_p = jnp.zeros_like(mu_hat), jnp.zeros_like(logvar_hat)
            else:
                mu_p, logvar_p = self.prior_params(l, layers[l + 1]["z"])
                mu_q, logvar_q = precision_weighted(mu_hat, logvar_hat, mu_p, logvar_p)
            layers[l] = dict(z=draw(l, mu_q, logvar_q), mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p)
        return layers

    def posterior_layers(self, x, key, num_samples: int):
        """The top-down pass with z_l ~ q(z_l | z_{l+1}, x): per layer z [S, B, n_l], the posterior and
        prior parameters ([S, B, n_l], the top layer's [B, n_l]) and the standard-normal noise ε."""
        keys = jax.random.split(key, len(self.latent_dims))  # one key per layer, none reused
        eps = {}

        def draw(l, mu, logvar):
            eps[l] = jax.random.normal(keys[l], (num_samples,) + mu.shape[-2:], mu.dtype)
            return mu + jnp.exp(0.5 * logvar) * eps[l]

        layers = self._top_down(x, draw)
        for l, layer in enumerate(layers):
            layer["eps"] = eps[l]
        return layers

    # ------------------------------------------------------------------ the protocol
    def posterior_sample(self, x, key, num_samples: int):
        layers = self.posterior_layers(x, key, num_samples)
        z = tuple(layer["z"] for layer in layers)
        # log N(z; μ, σ²) at z = μ + σε is −½Σ(log 2π + log σ² + ε²) exactly, for any parameters: no
        # (z − μ)/σ round trip.
        log_q = sum(jnp.sum(-0.5 * (D.LOG_2PI + jnp.broadcast_to(layer["logvar_q"], layer["eps"].shape)
                                    + layer["eps"] ** 2), axis=-1) for layer in layers)
        return z, log_q

    def log_prior(self, z):
        out = D.std_normal_log_prob(z[-1])
        for l in range(len(z) - 1):
            mu_p, logvar_p = self.prior_params(l, z[l + 1])
            out = out + D.diag_gaussian_log_prob(z[l], mu_p, logvar_p)
        return out

    def decode(self, z):
        return self.decoder(z[0])

    def prior_sample(self, key, n: int):
        keys = jax.random.split(key, len(self.latent_dims))
        top = jax.random.normal(keys[-1], (n, self.latent_dims[-1]))
        z = [None] * (len(self.latent_dims) - 1) + [top]
        for l in reversed(range(len(self.latent_dims) - 1)):
            mu_p, logvar_p = self.prior_params(l, z[l + 1])
            z[l] = D.reparameterize(keys[l], mu_p, logvar_p)
        return tuple(z)

    def posterior_mean(self, x):
        layers = self._top_down(x, lambda l, mu, logvar: mu)
        return tuple(layer["z"] for layer in layers)

    def layer_kl(self, x, key):
        layers = self.posterior_layers(x, key, 1)
        return {name: kl_diag_gaussians(layer["mu_q"], layer["logvar_q"], layer["mu_p"], layer["logvar_p"])
                .reshape(layer["eps"].shape[1:])
                for name, layer in zip(self.latent_layers, layers)}

    def __call__(self, x, key):
        """For ``init``: touches every parameter (posterior, prior path, decoder)."""
        z, log_q = self.posterior_sample(x, key, 1)
        return self.decode(tuple(a[0] for a in z)), log_q, self.log_prior(z)


# ---------------------------------------------------------------------------- registration
DEFAULTS = {"latent_dims": (64, 32), "hidden": (512, 256)}
SHARED_FIELDS = ("likelihood", "activation", "sigma", "min_log_sigma", "decoder_bias_init")


def build(cfg, image_shape):
    return Ladder(tuple(cfg.ladder.latent_dims), tuple(cfg.ladder.hidden), tuple(image_shape),
                  likelihood=cfg.likelihood, activation=cfg.activation, sigma=cfg.get("sigma", 1.0),
                  min_log_sigma=cfg.get("min_log_sigma", -4.6))


def validate(cfg) -> None:
    dims = checks.get(cfg, "model.ladder.latent_dims")
    if isinstance(dims, (tuple, list)) and not dims:
        raise ConfigError("model.ladder.latent_dims: () has no stochastic layer; give at least one size, "
                          "e.g. (64, 32) (z_1 next to x first)")
    checks.int_tuple(cfg, "model.ladder.latent_dims", allow_empty=False)
    checks.int_tuple(cfg, "model.ladder.hidden", allow_empty=False)
    hidden = cfg.model.ladder.hidden
    if len(hidden) != len(dims):
        raise ConfigError(f"model.ladder.hidden: {tuple(hidden)} has {len(hidden)} widths but "
                          f"model.ladder.latent_dims={tuple(dims)} has {len(dims)} layers; give one width per layer")


def shrink(cfg) -> None:
    """``config.tiny``: small layers for tests."""
    cfg.ladder.latent_dims = tuple(min(d, 8) for d in cfg.ladder.latent_dims)
    cfg.ladder.hidden = tuple(min(h, 32) for h in cfg.ladder.hidden)


register_family("ladder", build=build, validate=validate, defaults=DEFAULTS, shared_fields=SHARED_FIELDS,
                shrink=shrink)
