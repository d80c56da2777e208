"""Models: networks (``nets``), distributions (``distributions``), the latent-variable protocol
(``protocol``) and the model families (``families``: one registry, one file per family).

``build_model(cfg.model, image_shape)`` returns a Flax module; everything else is a pure
function of ``params``. ``validate(cfg, defaults)`` checks the ``model`` section.
"""
from __future__ import annotations

from vae_jax import checks
from vae_jax.errors import ConfigError
import vae_jax.models.distributions as D
import vae_jax.models.nets as nets
from vae_jax.models.autoencoders import (AE, VAE, OrthLinearAE, init_decoder_bias, init_params,  # noqa: F401
                                         orthonormal_factor)
# The family modules register themselves on import; a new family adds its module here.
from vae_jax.models.families import FAMILIES, build_model, get_family, hvae, iaf, ladder, two_layer, vamp  # noqa: F401
from vae_jax.models.protocol import likelihood_of, reconstruct, sample  # noqa: F401

MODEL_KINDS = tuple(FAMILIES)

# Top-level fields read only under a condition on other fields (besides the family reading them,
# ``Family.shared_fields``): set away from their default elsewhere, they would be silently
# ignored, so validate refuses them.
_CONDITIONS = {
    "conv_channels": (lambda m: m.net == "conv", "model.net='conv'"),
    "sigma": (lambda m: m.likelihood == "gaussian", "model.likelihood='gaussian'"),
    "min_log_sigma": (lambda m: m.likelihood == "gaussian_learned", "model.likelihood='gaussian_learned'"),
    "num_mixtures": (lambda m: m.likelihood == "discretized_mix_logistic", "model.likelihood='discretized_mix_logistic'"),
    "decoder_bias_init": (lambda m: m.likelihood == "bernoulli" and m.get("net", "mlp") == "mlp",
                          "model.likelihood='bernoulli' and an MLP decoder (model.net='mlp')"),
}
_ALWAYS_READ = ("kind", "likelihood")


def _refuse(m, path, value, where):
    raise ConfigError(f"{path}: set to {value!r} but it is read only with {where} (this config has "
                      f"model.kind={m.kind!r}, model.likelihood={m.likelihood!r}, model.net={m.get('net')!r}); "
                      "remove the override")


def _check_unread_fields(m, defaults, family):
    """No top-level field the family does not read, and no other family's sub-section, may differ
    from its default."""
    for field in m:
        if field in _ALWAYS_READ or field not in defaults or field in FAMILIES:
            continue
        if m[field] == defaults[field]:
            continue
        if field not in family.shared_fields:
            readers = [n for n, f in FAMILIES.items() if field in f.shared_fields]
            _refuse(m, f"model.{field}", m[field], f"model.kind in {readers}")
        applies, where = _CONDITIONS.get(field, (lambda _: True, ""))
        if not applies(m):
            _refuse(m, f"model.{field}", m[field], where)
    for name, other in FAMILIES.items():
        if not other.defaults or name not in m:
            continue
        for field in m[name]:
            if field not in other.defaults:
                raise ConfigError(f"model.{name}.{field}: no such field; model.{name} has {sorted(other.defaults)}")
            if name != m.kind and m[name][field] != defaults[name][field]:
                _refuse(m, f"model.{name}.{field}", m[name][field], f"model.kind={name!r}")


def validate(cfg, defaults) -> None:
    m = cfg.model
    checks.choice(cfg, "model.kind", FAMILIES)
    family = get_family(m.kind)
    checks.choice(cfg, "model.likelihood", D.LIKELIHOODS)
    checks.choice(cfg, "model.activation", nets.ACTIVATIONS)
    checks.positive_int(cfg, "model.latent_dim")
    checks.int_tuple(cfg, "model.encoder_hidden")
    checks.int_tuple(cfg, "model.decoder_hidden")
    checks.choice(cfg, "model.net", nets.NETS)
    checks.int_tuple(cfg, "model.conv_channels")
    checks.choice(cfg, "model.offset_init", ("zeros", "data_mean"))
    checks.choice(cfg, "model.decoder_bias_init", ("zeros", "data_mean"))
    checks.number(cfg, "model.sigma", low=0, low_inclusive=False)
    checks.number(cfg, "model.min_log_sigma")
    checks.positive_int(cfg, "model.num_mixtures")
    _check_unread_fields(m, defaults.model, family)
    if family.validate is not None:
        family.validate(cfg)
    lik = D.LIKELIHOODS[m.likelihood]
    want = {"discretized_logistic": "none", "discretized_mix_logistic": "none",
            "dequantized_gaussian": "dequantize"}.get(m.likelihood)
    if lik.needs_8bit_data and cfg.data.binarization != want:
        raise ConfigError(f"model.likelihood: {m.likelihood!r} models the 8-bit pixel values but "
                          f"data.binarization={cfg.data.binarization!r}; set data.binarization={want!r}")
    if cfg.data.binarization == "dequantize" and not lik.needs_8bit_data:
        raise ConfigError(f"data.binarization: 'dequantize' adds uniform noise for a density on 8-bit "
                          f"values, but model.likelihood={m.likelihood!r}; use 'dequantized_gaussian' "
                          "or data.binarization='none'")
    if lik.needs_binary_data and cfg.data.binarization == "none" and cfg.data.name != "binarized_mnist":
        raise ConfigError(f"model.likelihood: {m.likelihood!r} needs binary pixels but data.binarization="
                          "'none' gives values in [0,1]; use data.binarization in ['dynamic', 'static'] "
                          "or a likelihood for continuous data (gaussian, gaussian_learned, "
                          "continuous_bernoulli)")


def validate_against_data(cfg, image_shape) -> None:
    """What only the data's shape [H, W, C] decides; called right after loading, before any model
    is built (config.validate_against_data)."""
    m = cfg.model
    height, width, channels = tuple(image_shape)
    if D.LIKELIHOODS[m.likelihood].needs_binary_data and channels > 1:
        raise ConfigError(f"model.likelihood: {m.likelihood!r} models binary pixels but data.name={cfg.data.name!r} "
                          f"has {channels} colour channels of 8-bit values; use 'discretized_mix_logistic' or "
                          "'discretized_logistic' (data.binarization='none'), or 'dequantized_gaussian'")
    if m.get("net", "mlp") == "conv" and "net" in get_family(m.kind).shared_fields:
        scale = 2 ** len(m.conv_channels)
        if height % scale or width % scale:
            raise ConfigError(f"model.conv_channels: {tuple(m.conv_channels)} halves the image {len(m.conv_channels)} "
                              f"times, which needs height and width divisible by {scale}, but data.name="
                              f"{cfg.data.name!r} is {height}x{width}; use fewer conv_channels or model.net='mlp'")
