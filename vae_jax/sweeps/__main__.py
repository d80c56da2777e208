from vae_jax.sweeps.runner import entry

entry()
