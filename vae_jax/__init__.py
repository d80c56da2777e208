"""vae_jax: autoencoders and variational autoencoders in JAX/Flax."""
__version__ = "0.1.0"

# Before anything is lowered: JAX's unrolled threefry on the CPU too (same bits; vae_jax/prng.py).
from vae_jax import prng as _prng  # noqa: E402

_prng.install()
