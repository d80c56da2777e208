"""AE and VAE as Flax modules, registered as the model families ``vae``, ``ae``, ``linear_ae`` and
``linear_ae_orth``; everything a caller needs is a pure function of ``params``.

    model = build_model(cfg.model, image_shape)
    params = model.init({"params": key}, x, key)["params"]
    mean, logvar = model.apply({"params": params}, x, method="encode")      # VAE
    lik_params   = model.apply({"params": params}, z, method="decode")

The VAE speaks the latent-variable protocol (vae_jax/models/protocol.py); the AEs give only
``encode``/``decode`` and ``posterior_mean`` (their code), which is all reconstruction needs.
"""
from __future__ import annotations

from typing import Sequence

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import vae_jax.models.distributions as D
from vae_jax.errors import ConfigError
import vae_jax.models.families as families
import vae_jax.models.nets as nets


class DecoderWithScale(nn.Module):
    """Wraps the decoder; adds a learned, pixel-shared log σ when the likelihood needs one."""
    hidden: Sequence[int]
    image_shape: Sequence[int]
    likelihood: str
    activation: str
    min_log_sigma: float
    net: str = "mlp"
    conv_channels: Sequence[int] = (32, 64)
    num_mixtures: int = D.DEFAULT_NUM_MIXTURES   # read by 'discretized_mix_logistic' only

    @nn.compact
    def __call__(self, z):
        def decoder(num_params):
            return nets.make_decoder(self.net, self.hidden, self.image_shape, num_params, self.activation,
                                     self.conv_channels, name="net")

        if self.likelihood == "gaussian_learned":
            mean = decoder(1)(z)
            log_sigma = self.param("log_sigma", nn.initializers.zeros, ())
            log_sigma = jnp.maximum(log_sigma, self.min_log_sigma)
            return jnp.concatenate([mean, jnp.broadcast_to(log_sigma, mean.shape)], axis=-1)
        # The instance, not the class: the mixture of logistics' parameter count depends on K and C.
        n = D.likelihood_for(self.likelihood, self.image_shape, num_mixtures=self.num_mixtures).num_params
        return decoder(n)(z)


class _EncoderDecoder(nn.Module):
    """Fields and networks shared by the VAE and the AE; subclasses define ``encode``/``__call__``."""
    encoder_hidden: Sequence[int]
    decoder_hidden: Sequence[int]
    latent_dim: int
    image_shape: Sequence[int]
    likelihood: str = "bernoulli"
    activation: str = "relu"
    min_log_sigma: float = -4.6
    sigma: float = 1.0
    net: str = "mlp"                        # model.net: mlp | conv
    conv_channels: Sequence[int] = (32, 64)
    num_mixtures: int = D.DEFAULT_NUM_MIXTURES
    encoder_outputs = 1                     # vectors of size latent_dim the encoder emits

    def setup(self):
        self.encoder = nets.make_encoder(self.net, self.encoder_hidden, self.latent_dim, self.encoder_outputs,
                                         self.activation, self.conv_channels)
        self.decoder = DecoderWithScale(self.decoder_hidden, self.image_shape, self.likelihood,
                                         self.activation, self.min_log_sigma, self.net, self.conv_channels,
                                         self.num_mixtures)

    def decode(self, z):
        return self.decoder(z)


class VAE(_EncoderDecoder):
    """Gaussian encoder q(z|x) = N(μ(x), diag σ²(x)), N(0, I) prior, decoder p(x|z)."""
    encoder_outputs = 2  # μ and log σ²
    is_vae = True
    has_analytic_kl = True
    latent_layers = ("z",)

    def encode(self, x):
        mean, logvar = self.encoder(x)
        return mean, logvar

    def __call__(self, x, key):
        mean, logvar = self.encode(x)
        z = D.reparameterize(key, mean, logvar)
        return self.decode(z), mean, logvar, z

    # ------------------------------------------------------------------ the protocol
    def posterior_sample(self, x, key, num_samples: int):
        """z = μ + σ·ε, ε ~ N(0, I) [S, B, n] from ``key`` (for S = 1 the very ε of ``__call__``).
        log q is written with ε² instead of (z − μ)²/σ²: the same number, without the rounding
        of subtracting μ back out."""
        z, log_q, _ = self.posterior_sample_kl(x, key, num_samples)
        return z, log_q

    def posterior_sample_kl(self, x, key, num_samples: int):
        mean, logvar = self.encode(x)
        eps = jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)
        z = mean + jnp.exp(0.5 * logvar) * eps
        log_q = jnp.sum(-0.5 * (D.LOG_2PI + logvar + eps ** 2), axis=-1)
        return z, log_q, {"z": D.kl_diag_gaussian_std_normal(mean, logvar)}

    def log_prior(self, z):
        return D.std_normal_log_prob(z)

    def prior_sample(self, key, n: int):
        return jax.random.normal(key, (n, self.latent_dim))

    def posterior_mean(self, x):
        return self.encode(x)[0]

    def layer_kl(self, x, key):
        mean, logvar = self.encode(x)
        return {"z": D.kl_diag_gaussian_std_normal(mean, logvar)}

    def analytic_kl(self, x):
        mean, logvar = self.encode(x)
        return D.kl_diag_gaussian_std_normal(mean, logvar).sum(-1)


class AE(_EncoderDecoder):
    """Deterministic autoencoder; any latent size (under- or overcomplete). ``activation='identity'``
    with no hidden layers is the linear autoencoder."""
    likelihood: str = "gaussian"
    is_vae = False

    def encode(self, x):
        return self.encoder(x)

    def posterior_mean(self, x):
        return self.encode(x)

    def __call__(self, x, key=None):
        z = self.encode(x)
        return self.decode(z), z


def orthonormal_factor(a):
    """Q of a = QR with the column signs fixed by diag R, so Q is a smooth function of a."""
    q, r = jnp.linalg.qr(a)
    return q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0)


class OrthLinearAE(nn.Module):
    """Constrained linear AE: z = Uᵀ(x − b), x̂ = b + UUᵀ(x − b) with UᵀU = I, U the Q factor of a
    free [D, n] matrix (QR, column signs fixed by diag R so U is a smooth function of it). With
    MSE its optimum is the top-n principal subspace (vae_jax/tasks/pca.py compares the two)."""
    latent_dim: int
    image_shape: Sequence[int]
    likelihood: str = "gaussian"
    min_log_sigma: float = -4.6
    sigma: float = 1.0
    num_mixtures: int = D.DEFAULT_NUM_MIXTURES  # unused: the linear families allow only Gaussians
    is_vae = False

    def setup(self):
        d = 1
        for s in self.image_shape:
            d *= s
        self.u_raw = self.param("u_raw", nn.initializers.orthogonal(), (d, self.latent_dim))
        self.offset = self.param("offset", nn.initializers.zeros, (d,))

    def basis(self):
        return orthonormal_factor(self.u_raw)

    def retract(self, params):
        """Replaces u_raw by its own orthonormal factor after each update (vae_jax.train). The
        model only sees that factor, so its function does not change; what changes is the scale of
        u_raw. Gradients of a QR parametrization are orthogonal to u_raw, so every step makes
        ‖u_raw‖ grow and the effective learning rate (∝ 1/‖u_raw‖²) shrink: with momentum SGD on
        full MNIST the columns reached norm ≈ 11 within 200 steps, and the slow 50th principal
        direction then needed tens of thousands of steps instead of a few hundred."""
        return {**params, "u_raw": orthonormal_factor(params["u_raw"])}

    def init_offset(self, params, mean_image):
        """``model.offset_init='data_mean'``: start b at the training mean (vae_jax.train). The
        U-curvature grows with ‖UUᵀ(mean − b)‖², which b's gradient never reduces (it only sees
        the part outside span U): from b = 0 on MNIST that limits the stable learning rate ~6x."""
        return {**params, "offset": jnp.asarray(mean_image, jnp.float32).reshape(-1)}

    def encode(self, x):
        return (x.reshape(x.shape[0], -1) - self.offset) @ self.basis()

    def posterior_mean(self, x):
        return self.encode(x)

    def decode(self, z):
        x = z @ self.basis().T + self.offset
        return x.reshape((z.shape[0],) + tuple(self.image_shape) + (1,))

    def __call__(self, x, key=None):
        z = self.encode(x)
        return self.decode(z), z


def init_params(model, key, image_shape):
    x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
    return model.init({"params": key}, x, key)["params"]


# Where every family with an MLP ``DecoderWithScale`` named ``decoder`` keeps its output bias.
DECODER_OUTPUT_BIAS = ("decoder", "net", "mlp", "out", "bias")


def init_decoder_bias(params, mean_image, kind: str = "?"):
    """``model.decoder_bias_init='data_mean'``: the Bernoulli decoder's output bias starts at the
    logit of the training set's mean pixel, clipped to [0.001, 0.999] (Burda et al. 2015, as their
    code does). At step 0 the decoder then already predicts the average image, and the code only has
    to explain the deviations from it. It matters most for the two-stochastic-layer model, which
    from a zero bias settles for a long time on a code that uses its latents weakly
    (experiments/iwae_table1/README.md)."""
    flat = traverse_util.flatten_dict(params)
    if DECODER_OUTPUT_BIAS not in flat:
        raise ConfigError(f"model.decoder_bias_init: 'data_mean' needs an MLP decoder's output bias at "
                          f"params/{'/'.join(DECODER_OUTPUT_BIAS)}, which model.kind={kind!r} does not have; "
                          "use 'zeros'")
    bias = flat[DECODER_OUTPUT_BIAS]
    p = np.clip(np.asarray(mean_image, np.float64).reshape(-1), 0.001, 0.999)
    if bias.shape != p.shape:
        raise ConfigError(f"model.decoder_bias_init: the decoder's output bias has shape {bias.shape}, the "
                          f"training mean image {p.shape}; 'data_mean' needs one output per pixel")
    flat[DECODER_OUTPUT_BIAS] = jnp.asarray(np.log(p) - np.log1p(-p), bias.dtype)
    return traverse_util.unflatten_dict(flat)


# The old private name, still used by vae_jax/models/cvae.py.
_DecoderWithScale = DecoderWithScale


# ---------------------------------------------------------------------------- families
_LIKELIHOOD_FIELDS = ("likelihood", "sigma", "min_log_sigma", "num_mixtures")
_NET_FIELDS = ("latent_dim", "encoder_hidden", "decoder_hidden", "activation", "net", "conv_channels",
               "decoder_bias_init")


def _common(cfg, image_shape):
    return dict(latent_dim=cfg.latent_dim, image_shape=tuple(image_shape), likelihood=cfg.likelihood,
                min_log_sigma=cfg.get("min_log_sigma", -4.6), sigma=cfg.get("sigma", 1.0),
                num_mixtures=cfg.get("num_mixtures", D.DEFAULT_NUM_MIXTURES))


def _net_fields(cfg):
    return dict(activation=cfg.activation, net=cfg.get("net", "mlp"),
                conv_channels=tuple(cfg.get("conv_channels", (32, 64))))


def shrink_nets(m):
    m.encoder_hidden = tuple(min(h, 32) for h in m.encoder_hidden)
    m.decoder_hidden = tuple(min(h, 32) for h in m.decoder_hidden)
    m.latent_dim = min(m.latent_dim, 8)


def _shrink_latent(m):
    m.latent_dim = min(m.latent_dim, 8)


def _likelihoods_for(kind, allowed):
    """Validation of a linear AE: a likelihood whose mean is a squashed decoder output
    (Bernoulli's sigmoid) would make x̂ = W z + b non-linear."""
    def validate(cfg):
        if cfg.model.likelihood not in allowed:
            raise ConfigError(f"model.likelihood: {cfg.model.likelihood!r} does not apply to model.kind="
                              f"{kind!r}; choose one of {list(allowed)}")
    return validate


families.register_family(
    "vae", lambda cfg, shape: VAE(tuple(cfg.encoder_hidden), tuple(cfg.decoder_hidden), **_net_fields(cfg),
                                  **_common(cfg, shape)),
    shared_fields=_NET_FIELDS + _LIKELIHOOD_FIELDS, shrink=shrink_nets,
    capabilities=(families.LATENT, families.GAUSSIAN_ENCODER))
families.register_family(
    "ae", lambda cfg, shape: AE(tuple(cfg.encoder_hidden), tuple(cfg.decoder_hidden), **_net_fields(cfg),
                                **_common(cfg, shape)),
    shared_fields=_NET_FIELDS + _LIKELIHOOD_FIELDS, shrink=shrink_nets, capabilities=(families.AUTOENCODER,))
families.register_family(
    "linear_ae", lambda cfg, shape: AE((), (), activation="identity", **_common(cfg, shape)),
    validate=_likelihoods_for("linear_ae", ("gaussian", "gaussian_learned")),
    shared_fields=("latent_dim",) + _LIKELIHOOD_FIELDS, shrink=_shrink_latent, capabilities=(families.AUTOENCODER,))
families.register_family(
    "linear_ae_orth", lambda cfg, shape: OrthLinearAE(**_common(cfg, shape)),
    validate=_likelihoods_for("linear_ae_orth", ("gaussian",)),
    shared_fields=("latent_dim", "offset_init") + _LIKELIHOOD_FIELDS, shrink=_shrink_latent,
    capabilities=(families.AUTOENCODER,))
