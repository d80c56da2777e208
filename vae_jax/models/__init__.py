"""Models: networks (``nets``), distributions (``distributions``) and the model families.

``build_model(cfg.model, image_shape)`` returns a Flax module; everything else is a pure
function of ``params``. ``validate(cfg, defaults)`` checks the ``model`` section.
"""
from __future__ import annotations

from vae_jax import checks
from vae_jax.errors import ConfigError
import vae_jax.models.distributions as D
import vae_jax.models.nets as nets
from vae_jax.models.autoencoders import (AE, MODEL_KINDS, VAE, OrthLinearAE, build_model,  # noqa: F401
                                         init_params, likelihood_of, orthonormal_factor, reconstruct,
                                         sample)

# Model kinds that accept only some likelihoods: the linear AE is x̂ = W z + b, and a likelihood
# whose mean is a squashed decoder output (Bernoulli's sigmoid) would make it non-linear.
MODEL_LIKELIHOODS = {"linear_ae": ("gaussian", "gaussian_learned"), "linear_ae_orth": ("gaussian",)}
# Fields read only by some kinds / nets / likelihoods: set away from their default elsewhere, they
# would be silently ignored, so validate refuses them.
_APPLIES = {
    "offset_init": (lambda m: m.kind == "linear_ae_orth", "model.kind='linear_ae_orth'"),
    "net": (lambda m: m.kind in ("vae", "ae"), "model.kind in ['vae', 'ae']"),
    "conv_channels": (lambda m: m.kind in ("vae", "ae") and m.net == "conv", "model.net='conv'"),
    "encoder_hidden": (lambda m: m.kind in ("vae", "ae"), "model.kind in ['vae', 'ae']"),
    "decoder_hidden": (lambda m: m.kind in ("vae", "ae"), "model.kind in ['vae', 'ae']"),
    "activation": (lambda m: m.kind in ("vae", "ae"), "model.kind in ['vae', 'ae']"),
    "sigma": (lambda m: m.likelihood == "gaussian", "model.likelihood='gaussian'"),
    "min_log_sigma": (lambda m: m.likelihood == "gaussian_learned", "model.likelihood='gaussian_learned'"),
}


def validate(cfg, defaults) -> None:
    m = cfg.model
    checks.choice(cfg, "model.kind", MODEL_KINDS)
    checks.choice(cfg, "model.likelihood", D.LIKELIHOODS)
    checks.choice(cfg, "model.activation", nets.ACTIVATIONS)
    checks.positive_int(cfg, "model.latent_dim")
    checks.int_tuple(cfg, "model.encoder_hidden")
    checks.int_tuple(cfg, "model.decoder_hidden")
    checks.choice(cfg, "model.net", nets.NETS)
    checks.int_tuple(cfg, "model.conv_channels")
    checks.choice(cfg, "model.offset_init", ("zeros", "data_mean"))
    checks.number(cfg, "model.sigma", low=0, low_inclusive=False)
    checks.number(cfg, "model.min_log_sigma")
    for field, (applies, where) in _APPLIES.items():
        if field in m and field in defaults.model and m[field] != defaults.model[field] and not applies(m):
            raise ConfigError(f"model.{field}: set to {m[field]!r} but it is read only with {where} "
                              f"(this config has model.kind={m.kind!r}, model.likelihood={m.likelihood!r}"
                              f", model.net={m.get('net')!r}); remove the override")
    if m.kind in MODEL_LIKELIHOODS and m.likelihood not in MODEL_LIKELIHOODS[m.kind]:
        raise ConfigError(f"model.likelihood: {m.likelihood!r} does not apply to model.kind="
                          f"{m.kind!r}; choose one of {list(MODEL_LIKELIHOODS[m.kind])}")
    lik = D.LIKELIHOODS[m.likelihood]
    if lik.needs_binary_data and cfg.data.binarization == "none" and cfg.data.name != "binarized_mnist":
        raise ConfigError(f"model.likelihood: {m.likelihood!r} needs binary pixels but data.binarization="
                          "'none' gives values in [0,1]; use data.binarization in ['dynamic', 'static'] "
                          "or a likelihood for continuous data (gaussian, gaussian_learned, "
                          "continuous_bernoulli)")
