"""Sweeps: expand a config file's ``get_sweep`` into points, train them (vmapped where it pays),
collect the results. ``python -m vae_jax.sweeps --config=FILE --workdir=W [--shard=i/n]``."""
from vae_jax.sweeps.expand import SweepError, axis, product, zip_  # noqa: F401
