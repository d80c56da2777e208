"""Training objectives, one file per family, each registered by name (see ``registry.py``).

Adding a family: a new file here whose functions use ``@register``, and its name in the import
list below (the package imports its own members; nothing else registers objectives).
"""
from vae_jax.objectives import autoencoder, elbo, iwae, tighter  # noqa: F401  (registers the objectives)
from vae_jax.objectives.registry import OBJECTIVES, get_objective, register, validate  # noqa: F401
from vae_jax.objectives.iwae import iwae_log_weights, log_effective_sample_size, log_mean_exp  # noqa: F401
from vae_jax.objectives.elbo import cyclical_factor, warmup_factor  # noqa: F401
from vae_jax.objectives.autoencoder import corrupt  # noqa: F401
