"""VAE with an inverse autoregressive flow posterior (Kingma, Salimans, Jozefowicz, Chen, Sutskever
& Welling 2016, "Improved Variational Inference with Inverse Autoregressive Flow", Algorithm 1).

The encoder gives (μ, log σ², h); z_0 = μ + σ·ε, then ``model.iaf.steps`` steps

    [m_t, s_t] = MADE_t(z_{t-1}, h),   σ_t = sigmoid(s_t + 2),   z_t = σ_t ⊙ z_{t-1} + (1 − σ_t) ⊙ m_t

where MADE_t is a masked autoregressive MLP (Germain et al. 2015): output i sees z_{<i} only (in
the step's variable order, reversed every other step), so ∂z_t/∂z_{t-1} is triangular with
diagonal σ_t and

    log q(z_T|x) = log N(z_0; μ, σ²) − Σ_t Σ_i log σ_{t,i}.

The +2 on s_t (a "forget gate" bias, as the paper suggests) starts σ_t near 0.88, so each step
starts close to the identity. The context h has ``latent_dim`` units (a third encoder output). Prior N(0, I).

There is no closed-form KL (``has_analytic_kl = False``): the ELBO uses log q − log p on the
sample; ``layer_kl`` is that difference per unit on one sample (its sum over units is the usual
single-sample KL estimate). ``posterior_mean`` is the flow applied to ε = 0 (z_0 = μ), a
deterministic code, not E_q[z_T].
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import checks
from vae_jax.errors import ConfigError
import vae_jax.models.autoencoders as autoencoders
import vae_jax.models.distributions as D
import vae_jax.models.nets as nets
from vae_jax.models.families import register_family

FORGET_BIAS = 2.0


def made_masks(n: int, hidden: Sequence[int], reverse: bool):
    """MADE masks [in, out] for inputs of size n: input i has degree d(i) (1..n, or n..1 when
    ``reverse``), hidden unit k degree 1 + k mod (n − 1); a hidden unit sees inputs of degree ≤ its
    own, an output of degree d sees hidden units of degree < d. So output i depends on the inputs
    before it in the order only. (Static numpy: masks are constants of the compiled program.)"""
    d_in = np.arange(1, n + 1)[::-1] if reverse else np.arange(1, n + 1)
    degrees, masks = [d_in], []
    for width in hidden:
        d = 1 + np.arange(width) % max(n - 1, 1)
        masks.append((d[None, :] >= degrees[-1][:, None]).astype(np.float32))
        degrees.append(d)
    masks.append((d_in[None, :] > degrees[-1][:, None]).astype(np.float32))
    return masks


class MaskedDense(nn.Module):
    features: int
    mask_key: tuple            # (n, hidden, reverse, layer index): the mask is rebuilt from it (hashable)

    @nn.compact
    def __call__(self, x):
        n, hidden, reverse, i = self.mask_key
        mask = jnp.asarray(made_masks(n, hidden, reverse)[i])
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return x @ (kernel * mask) + bias


class IAFStep(nn.Module):
    """One flow step: returns (z_t, log σ_t) per unit."""
    hidden: Sequence[int]
    reverse: bool
    activation: str = "relu"

    @nn.compact
    def __call__(self, z, h):
        act = nets.get_activation(self.activation)
        n, hidden = z.shape[-1], tuple(self.hidden)
        a = z
        for i, width in enumerate(hidden):
            a = MaskedDense(width, (n, hidden, self.reverse, i), name=f"masked_{i}")(a)
            if i == 0:  # the context enters unmasked: it depends on x only
                a = a + nn.Dense(width, use_bias=False, name="context")(h)
            a = act(a)
        out_key = (n, hidden, self.reverse, len(hidden))
        m = MaskedDense(n, out_key, name="m")(a)
        s = MaskedDense(n, out_key, name="s")(a) + FORGET_BIAS
        if not hidden:  # no hidden layer: the context goes straight to the outputs
            ctx = nn.Dense(2 * n, use_bias=False, name="context")(h)
            m, s = m + ctx[..., :n], s + ctx[..., n:]
        sig = jax.nn.sigmoid(s)
        return sig * z + (1.0 - sig) * m, jax.nn.log_sigmoid(s)


class IAFVAE(nn.Module):
    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latent_dim: int
    image_shape: Sequence[int]
    steps: int = 2
    flow_hidden: Sequence[int] = (256, 256)
    likelihood: str = "bernoulli"
    activation: str = "relu"
    min_log_sigma: float = -4.6
    sigma: float = 1.0
    net: str = "mlp"
    conv_channels: Sequence[int] = (32, 64)
    num_mixtures: int = D.DEFAULT_NUM_MIXTURES

    is_vae = True
    has_analytic_kl = False
    latent_layers = ("z",)

    def setup(self):
        self.encoder = nets.make_encoder(self.net, self.encoder_hidden, self.latent_dim, 3, self.activation,
                                         self.conv_channels)   # μ, log σ², context h
        self.flow_steps = [IAFStep(tuple(self.flow_hidden), reverse=bool(t % 2), activation=self.activation)
                           for t in range(self.steps)]
        self.decoder = autoencoders.DecoderWithScale(self.decoder_hidden, self.image_shape, self.likelihood,
                                                      self.activation, self.min_log_sigma, self.net,
                                                      self.conv_channels, self.num_mixtures)

    def flow(self, z0, h):
        """z_0 [..., n] -> (z_T, Σ_t log σ_t per unit [..., n]); h broadcasts against z_0."""
        z, log_det = z0, jnp.zeros_like(z0)
        for step in self.flow_steps:
            z, log_sig = step(z, h)
            log_det = log_det + log_sig
        return z, log_det

    def _sample_units(self, x, key, num_samples: int):
        """(z_T [S, B, n], log q per unit [S, B, n])."""
        mean, logvar, h = self.encoder(x)
        eps = jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)
        z, log_det = self.flow(mean + jnp.exp(0.5 * logvar) * eps, h)
        return z, -0.5 * (D.LOG_2PI + logvar + eps ** 2) - log_det

    # ------------------------------------------------------------------ the protocol
    def posterior_sample(self, x, key, num_samples: int):
        z, log_q = self._sample_units(x, key, num_samples)
        return z, log_q.sum(-1)

    def log_prior(self, z):
        return D.std_normal_log_prob(z)

    def decode(self, z):
        return self.decoder(z)

    def prior_sample(self, key, n: int):
        return jax.random.normal(key, (n, self.latent_dim))

    def posterior_mean(self, x):
        mean, _, h = self.encoder(x)
        return self.flow(mean, h)[0]

    def layer_kl(self, x, key):
        z, log_q = self._sample_units(x, key, 1)
        return {"z": (log_q + 0.5 * (D.LOG_2PI + z ** 2))[0]}

    def __call__(self, x, key):
        """For ``init``: touches every parameter (encoder, flow, decoder)."""
        z, log_q = self.posterior_sample(x, key, 1)
        return self.decode(z[0]), log_q


# ---------------------------------------------------------------------------- registration
DEFAULTS = {"steps": 2, "hidden": (256, 256)}
SHARED_FIELDS = ("latent_dim", "encoder_hidden", "decoder_hidden", "activation", "net", "conv_channels",
                 "likelihood", "sigma", "min_log_sigma", "num_mixtures", "decoder_bias_init")


def build(cfg, image_shape):
    return IAFVAE(tuple(cfg.encoder_hidden), tuple(cfg.decoder_hidden), cfg.latent_dim, tuple(image_shape),
                  steps=cfg.iaf.steps, flow_hidden=tuple(cfg.iaf.hidden), likelihood=cfg.likelihood,
                  activation=cfg.activation, min_log_sigma=cfg.get("min_log_sigma", -4.6),
                  sigma=cfg.get("sigma", 1.0), net=cfg.get("net", "mlp"),
                  conv_channels=tuple(cfg.get("conv_channels", (32, 64))),
                  num_mixtures=cfg.get("num_mixtures", D.DEFAULT_NUM_MIXTURES))


def validate(cfg) -> None:
    steps = checks.get(cfg, "model.iaf.steps")
    if steps == 0:
        raise ConfigError("model.iaf.steps: 0 flow steps is the plain diagonal-Gaussian VAE; use model.kind='vae' "
                          "or model.iaf.steps >= 1")
    checks.positive_int(cfg, "model.iaf.steps")
    checks.int_tuple(cfg, "model.iaf.hidden")


def shrink(m) -> None:
    """``config.tiny``: small nets for tests."""
    autoencoders.shrink_nets(m)
    m.iaf.hidden = tuple(min(h, 32) for h in m.iaf.hidden)


register_family("iaf", build=build, validate=validate, defaults=DEFAULTS, shared_fields=SHARED_FIELDS,
                shrink=shrink)
