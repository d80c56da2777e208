"""Residual hierarchical VAE in the spirit of VDVAE (Child 2021, "Very Deep VAEs Generalize
Autoregressive Models and Can Outperform Them on Images"), small enough for a laptop CPU.

    bottom-up   x → conv → [residual blocks → record a_r → 2×2 average pool] at r = H, H/2, ... H/2^(R−1)
    top-down    h = learned map at the coarsest resolution; at each resolution, coarsest first, each
                of ``blocks`` blocks does (at the ``latent_resolutions`` coarsest resolutions)
                  (μ_p, log σ_p², f) = prior_net(h);   (μ_q, log σ_q²) = posterior_net([h, a_r])
                  z_l ~ q (inference) or p (generation);   h ← h + f + proj(z_l)
                then a residual block; nearest-neighbour upsampling between resolutions
    output      1×1 conv of h at full resolution → parameters of ``model.likelihood``

Each z_l is a spatial map [h_r, w_r, latent_channels]. Its prior and posterior depend on every
latent above it through the top-down state h, so log p(z) = Σ_l log p(z_l | z_<l) and the
generative path is shared by prior and posterior (as in the ladder VAE, but residual and
convolutional). The prior and posterior heads start at zero, so q = p = N(0, I) at
initialisation: the KL starts at 0 instead of at a random, possibly huge value.

Config ``model.kind='hvae'``: ``model.hvae.num_resolutions``, ``blocks`` (per resolution, up and
down), ``latent_resolutions``, ``latent_channels``, ``width``; shared ``model.likelihood`` (and
its σ / mixture fields) and ``model.activation``. Latent layers are named ``z<h>x<w>_<i>``
(top-down order). KL: a hierarchy has no closed-form total KL, but each layer's KL given the
layers above it is a KL between two diagonal Gaussians; like VDVAE the ELBO uses the sum of those
(``has_analytic_kl``), an unbiased estimate of the total KL with less variance than log q − log p.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax import checks
from vae_jax.errors import ConfigError
import vae_jax.models.conv as conv
import vae_jax.models.distributions as D
import vae_jax.models.nets as nets
from vae_jax.models.families import register_family


def kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    """KL(N(μ_q, σ_q²) ‖ N(μ_p, σ_p²)) per unit (closed form)."""
    return 0.5 * (logvar_p - logvar_q + (jnp.exp(logvar_q) + (mu_q - mu_p) ** 2) * jnp.exp(-logvar_p) - 1.0)


class Block(nn.Module):
    """1×1 → 3×3 → 1×1 convolutions through a narrower middle (VDVAE's bottleneck), optionally
    residual. ``last_init`` initialises the last conv: zeros for heads (q = p at start), a small
    scale for residual branches so a deep stack starts close to the identity."""
    out: int
    mid: int
    activation: str
    last_init: Callable
    residual: bool = False

    @nn.compact
    def __call__(self, h):
        act = nets.get_activation(self.activation)
        y = conv.Conv(self.mid, (1, 1), name="conv_in")(act(h))
        y = conv.Conv(self.mid, (3, 3), name="conv_mid")(act(y))
        y = conv.Conv(self.out, (1, 1), kernel_init=self.last_init, name="conv_out")(act(y))
        return h + y if self.residual else y


class HVAE(nn.Module):
    image_shape: Sequence[int]
    num_resolutions: int = 4
    blocks: int = 2
    latent_resolutions: int = 3
    latent_channels: int = 4
    width: int = 32
    likelihood: str = "discretized_mix_logistic"
    activation: str = "gelu"
    sigma: float = 1.0
    min_log_sigma: float = -4.6
    num_mixtures: int = D.DEFAULT_NUM_MIXTURES

    is_vae = True
    has_analytic_kl = True

    # ------------------------------------------------------------------ structure
    def _stochastic(self, level: int) -> bool:
        """Level 0 is full resolution; the ``latent_resolutions`` coarsest levels carry latents."""
        return level >= self.num_resolutions - self.latent_resolutions

    @property
    def _num_params(self) -> int:
        return D.likelihood_for(self.likelihood, self.image_shape, self.sigma, self.num_mixtures).num_params

    def _levels_top_down(self):
        return range(self.num_resolutions - 1, -1, -1)

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        height, width = self.image_shape[:2]
        return tuple((height >> lvl, width >> lvl, self.latent_channels)
                     for lvl in self._levels_top_down() if self._stochastic(lvl) for _ in range(self.blocks))

    @property
    def latent_layers(self) -> tuple[str, ...]:
        counts: dict = {}
        names = []
        for h, w, _ in self.latent_shapes:
            counts[(h, w)] = counts.get((h, w), 0) + 1
            names.append(f"z{h}x{w}_{counts[(h, w)]}")
        return tuple(names)

    def setup(self):
        mid = max(self.width // 2, 1)
        n_res = self.num_resolutions * self.blocks
        # Branch variance 1/(residual blocks from x to the output, up and down): their sum then
        # stays near unit scale at initialisation, whatever the depth.
        small = nn.initializers.variance_scaling(1.0 / (2 * n_res), "fan_in", "normal")
        zeros = nn.initializers.zeros
        res = lambda: Block(self.width, mid, self.activation, small, residual=True)
        self.stem = conv.Conv(self.width, (3, 3))
        self.up = [res() for _ in range(n_res)]
        self.down = [res() for _ in range(n_res)]
        n_lat, c = len(self.latent_shapes), self.latent_channels
        self.prior_nets = [Block(2 * c + self.width, mid, self.activation, zeros) for _ in range(n_lat)]
        self.posterior_nets = [Block(2 * c, mid, self.activation, zeros) for _ in range(n_lat)]
        self.z_proj = [conv.Conv(self.width, (1, 1), kernel_init=small) for _ in range(n_lat)]
        top = tuple(s >> (self.num_resolutions - 1) for s in self.image_shape[:2])
        self.top = self.param("top", zeros, top + (self.width,))
        self.out = conv.Conv(self.image_shape[-1] * self._num_params, (1, 1))

    # ------------------------------------------------------------------ the two passes
    def _bottom_up(self, x):
        """Activations a_r per level, [B, h_r, w_r, width]."""
        h = self.stem(2.0 * x - 1.0)
        acts = []
        for level in range(self.num_resolutions):
            for b in range(self.blocks):
                h = self.up[level * self.blocks + b](h)
            acts.append(h)
            h = nn.avg_pool(h, (2, 2), strides=(2, 2))
        return acts

    def _top_down(self, n: int, acts, pick):
        """The generative path for n maps. ``acts``: per level [n, ...] (None: no posterior).
        ``pick(l, q, p) -> z_l`` with q, p = (μ, log σ²) ([n, h, w, c]; q None without acts).
        Returns the full-resolution state and per layer (q, p, z)."""
        h = jnp.broadcast_to(self.top, (n,) + self.top.shape)
        layers = []
        for level in self._levels_top_down():
            if level != self.num_resolutions - 1:
                h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            for b in range(self.blocks):
                if self._stochastic(level):
                    l = len(layers)
                    mu_p, logvar_p, feat = jnp.split(self.prior_nets[l](h), [self.latent_channels,
                                                                            2 * self.latent_channels], axis=-1)
                    q = None
                    if acts is not None:
                        q = tuple(jnp.split(self.posterior_nets[l](jnp.concatenate([h, acts[level]], -1)), 2, -1))
                    z = pick(l, q, (mu_p, logvar_p))
                    h = h + feat + self.z_proj[l](z)
                    layers.append((q, (mu_p, logvar_p), z))
                h = self.down[level * self.blocks + b](h)
        return h, layers

    def posterior_layers(self, x, key, num_samples: int):
        """z_l ~ q(z_l | z_<l, x) for S samples: per layer a dict of z, eps (the standard-normal
        noise), mu_q, logvar_q, mu_p, logvar_p, each [S, B, h, w, c]."""
        s, b = num_samples, x.shape[0]
        acts = [jnp.broadcast_to(a, (s,) + a.shape).reshape((s * b,) + a.shape[1:]) for a in self._bottom_up(x)]
        keys = jax.random.split(key, len(self.latent_shapes))  # one key per layer, none reused
        noise = []

        def pick(l, q, p):
            mu, logvar = q
            noise.append(jax.random.normal(keys[l], (s, b) + mu.shape[1:], mu.dtype).reshape(mu.shape))
            return mu + jnp.exp(0.5 * logvar) * noise[l]

        _, layers = self._top_down(s * b, acts, pick)
        unflat = lambda a: a.reshape((s, b) + a.shape[1:])
        return [dict(z=unflat(z), eps=unflat(eps), mu_q=unflat(q[0]), logvar_q=unflat(q[1]), mu_p=unflat(p[0]),
                     logvar_p=unflat(p[1])) for (q, p, z), eps in zip(layers, noise)]

    def _given(self, z):
        """z leaves [..., h, w, c] -> (N, leading shape, pick that feeds them to the top-down pass)."""
        lead = z[0].shape[:-3]
        flat = [a.reshape((-1,) + a.shape[-3:]) for a in z]
        return flat[0].shape[0], lead, lambda l, q, p: flat[l]

    # ------------------------------------------------------------------ the protocol
    def posterior_sample_kl(self, x, key, num_samples: int):
        layers = self.posterior_layers(x, key, num_samples)
        # log N(z; μ, σ²) at z = μ + σε is −½Σ(log 2π + log σ² + ε²) exactly: no (z − μ)/σ round trip.
        log_q = sum(jnp.sum(-0.5 * (D.LOG_2PI + ly["logvar_q"] + ly["eps"] ** 2), axis=(-3, -2, -1)) for ly in layers)
        kl = {name: jnp.mean(kl_diag_gaussians(ly["mu_q"], ly["logvar_q"], ly["mu_p"], ly["logvar_p"]), axis=0)
              .reshape(x.shape[0], -1) for name, ly in zip(self.latent_layers, layers)}
        return tuple(ly["z"] for ly in layers), log_q, kl

    def posterior_sample(self, x, key, num_samples: int):
        z, log_q, _ = self.posterior_sample_kl(x, key, num_samples)
        return z, log_q

    def layer_kl(self, x, key):
        return self.posterior_sample_kl(x, key, 1)[2]

    def analytic_kl(self, x, key):
        """Σ_l KL(q(z_l | z_<l, x) ‖ p(z_l | z_<l)) along one posterior draw: a hierarchy's KL is
        closed-form only per layer given the layers above, so this needs the key of that draw."""
        return sum(v.sum(-1) for v in self.layer_kl(x, key).values())

    def log_prior(self, z):
        n, lead, pick = self._given(z)
        _, layers = self._top_down(n, None, pick)
        out = sum(D.diag_gaussian_log_prob(zl.reshape(n, -1), mu.reshape(n, -1), lv.reshape(n, -1))
                  for _, (mu, lv), zl in layers)
        return out.reshape(lead)

    def decode(self, z):
        n, lead, pick = self._given(z)
        h, _ = self._top_down(n, None, pick)
        out = self.out(nets.get_activation(self.activation)(h))
        out = out.reshape(lead + tuple(self.image_shape) + (self._num_params,))
        if self.likelihood == "gaussian_learned":  # the floor DecoderWithScale applies to its σ
            out = out.at[..., 1].set(jnp.maximum(out[..., 1], self.min_log_sigma))
        return out

    def prior_sample(self, key, n: int):
        keys = jax.random.split(key, len(self.latent_shapes))
        _, layers = self._top_down(n, None, lambda l, q, p: D.reparameterize(keys[l], *p))
        return tuple(z for _, _, z in layers)

    def posterior_mean(self, x):
        _, layers = self._top_down(x.shape[0], self._bottom_up(x), lambda l, q, p: q[0])
        return tuple(z for _, _, z in layers)

    def __call__(self, x, key):
        """For ``init``: touches every parameter (both passes, every head, the output conv)."""
        z, log_q = self.posterior_sample(x, key, 1)
        return self.decode(tuple(a[0] for a in z)), log_q, self.log_prior(z)


# ---------------------------------------------------------------------------- registration
DEFAULTS = {"num_resolutions": 4, "blocks": 2, "latent_resolutions": 3, "latent_channels": 4, "width": 32}
SHARED_FIELDS = ("likelihood", "activation", "sigma", "min_log_sigma", "num_mixtures")


def build(cfg, image_shape):
    own = cfg.hvae
    height, width = tuple(image_shape)[:2]
    scale = 2 ** (own.num_resolutions - 1)
    if height % scale or width % scale:
        raise ConfigError(f"model.hvae.num_resolutions: {own.num_resolutions} resolutions halve the image "
                          f"{own.num_resolutions - 1} times, which needs height and width divisible by {scale}, "
                          f"but the data are {height}x{width}; use fewer resolutions")
    return HVAE(tuple(image_shape), own.num_resolutions, own.blocks, own.latent_resolutions, own.latent_channels,
                own.width, likelihood=cfg.likelihood, activation=cfg.activation, sigma=cfg.get("sigma", 1.0),
                min_log_sigma=cfg.get("min_log_sigma", -4.6),
                num_mixtures=cfg.get("num_mixtures", D.DEFAULT_NUM_MIXTURES))


def validate(cfg) -> None:
    for field in DEFAULTS:
        checks.positive_int(cfg, f"model.hvae.{field}")
    own = cfg.model.hvae
    if own.latent_resolutions > own.num_resolutions:
        raise ConfigError(f"model.hvae.latent_resolutions: {own.latent_resolutions} is more than the "
                          f"{own.num_resolutions} resolutions (model.hvae.num_resolutions); use at most that many")


def shrink(cfg) -> None:
    """``config.tiny``: one block per resolution, narrow, few latent channels."""
    own = cfg.hvae
    own.num_resolutions = min(own.num_resolutions, 3)
    own.latent_resolutions = min(own.latent_resolutions, 2)
    own.blocks = 1
    own.width = min(own.width, 16)
    own.latent_channels = min(own.latent_channels, 2)


register_family("hvae", build=build, validate=validate, defaults=DEFAULTS, shared_fields=SHARED_FIELDS,
                shrink=shrink)
