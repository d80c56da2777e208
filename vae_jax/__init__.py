"""vae_jax: autoencoders and variational autoencoders in JAX/Flax."""
__version__ = "0.1.0"
