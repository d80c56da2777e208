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

import vae_jax.models.distributions as D
import vae_jax.models.nets as nets

MODEL_KINDS = ("vae", "ae", "linear_ae", "linear_ae_orth")


class _DecoderWithScale(nn.Module):
    """Wraps the decoder; adds a learned, pixel-shared log σ when the likelihood needs one."""
    hidden: Sequence[int]
    image_shape: Sequence[int]
    likelihood: str
    activation: str
    min_log_sigma: float
    net: str = "mlp"
    conv_channels: Sequence[int] = (32, 64)

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
        n = D.LIKELIHOODS[self.likelihood].num_params
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
    encoder_outputs = 1                     # vectors of size latent_dim the encoder emits

    def setup(self):
        self.encoder = nets.make_encoder(self.net, self.encoder_hidden, self.latent_dim, self.encoder_outputs,
                                         self.activation, self.conv_channels)
        self.decoder = _DecoderWithScale(self.decoder_hidden, self.image_shape, self.likelihood,
                                         self.activation, self.min_log_sigma, self.net, self.conv_channels)

    def decode(self, z):
        return self.decoder(z)


class VAE(_EncoderDecoder):
    """Gaussian encoder q(z|x) = N(μ(x), diag σ²(x)), N(0, I) prior, decoder p(x|z)."""
    encoder_outputs = 2  # μ and log σ²
    is_vae = True

    def encode(self, x):
        mean, logvar = self.encoder(x)
        return mean, logvar

    def __call__(self, x, key):
        mean, logvar = self.encode(x)
        z = D.reparameterize(key, mean, logvar)
        return self.decode(z), mean, logvar, z


class AE(_EncoderDecoder):
    """Deterministic autoencoder; any latent size (under- or overcomplete). ``activation='identity'``
    with no hidden layers is the linear autoencoder."""
    likelihood: str = "gaussian"
    is_vae = False

    def encode(self, x):
        return self.encoder(x)

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

    def decode(self, z):
        x = z @ self.basis().T + self.offset
        return x.reshape((z.shape[0],) + tuple(self.image_shape) + (1,))

    def __call__(self, x, key=None):
        z = self.encode(x)
        return self.decode(z), z


def build_model(cfg, image_shape):
    kind = cfg.kind
    common = dict(latent_dim=cfg.latent_dim, image_shape=tuple(image_shape),
                  likelihood=cfg.likelihood, min_log_sigma=cfg.get("min_log_sigma", -4.6),
                  sigma=cfg.get("sigma", 1.0))
    if kind in ("vae", "ae"):  # model.net picks MLP or conv encoder/decoder (linear_ae has neither)
        common.update(net=cfg.get("net", "mlp"), conv_channels=tuple(cfg.get("conv_channels", (32, 64))))
    if kind == "vae":
        return VAE(tuple(cfg.encoder_hidden), tuple(cfg.decoder_hidden), activation=cfg.activation, **common)
    if kind == "ae":
        return AE(tuple(cfg.encoder_hidden), tuple(cfg.decoder_hidden), activation=cfg.activation, **common)
    if kind == "linear_ae":
        return AE((), (), activation="identity", **common)
    if kind == "linear_ae_orth":
        return OrthLinearAE(**common)
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
