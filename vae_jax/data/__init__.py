"""Data: sources (bundled, IDX directory, TFDS, photos) -> uint8 arrays + metadata; on-device preprocessing.

``validate(cfg, defaults)`` checks the ``data`` section, including fields a source would ignore.
"""
from __future__ import annotations

import os

from vae_jax import checks
from vae_jax.data.datasets import (BINARIZATIONS, DATA_DIR_ENV, IDX_FILES, KNOWN_TFDS, SOURCES,  # noqa: F401
                                   Dataset, bundled_path, load, read_idx, to_float)
from vae_jax.errors import ConfigError, DataError  # noqa: F401
import vae_jax.data.photos as photos

# Sources that read a directory (data.dir or $VAE_JAX_DATA_DIR); 'bundled' reads a file inside a package.
DIR_SOURCES = ("idx", "tfds")
# Sources that hold a fixed set of names (files inside installed packages).
FIXED_NAMES = {"bundled": ("mnist",), "photos": (photos.NAME,)}


def validate(cfg, defaults=None) -> None:
    d = cfg.data
    checks.choice(cfg, "data.source", SOURCES)
    checks.choice(cfg, "data.binarization", BINARIZATIONS)
    if not isinstance(d.name, str) or not d.name:
        raise ConfigError("data.name: must be a dataset name such as 'mnist' or 'fashion_mnist'")
    if d.source in FIXED_NAMES and d.name not in FIXED_NAMES[d.source]:
        raise ConfigError(f"data.name: {d.name!r} is not held by data.source={d.source!r}; choose one of "
                          f"{list(FIXED_NAMES[d.source])}")
    checks.positive_int(cfg, "data.train_subset", allow_zero=True)
    checks.positive_int(cfg, "data.test_subset", allow_zero=True)
    checks.positive_int(cfg, "data.static_seed", allow_zero=True)
    if d.source not in DIR_SOURCES:
        if d.dir:
            raise ConfigError(f"data.dir: set to {d.dir!r} but data.source={d.source!r} reads no directory; "
                              f"to train on that directory set data.source='idx' (MNIST-format files) or "
                              "'tfds', or remove data.dir")
        if os.environ.get(DATA_DIR_ENV):
            raise ConfigError(f"${DATA_DIR_ENV}: set to {os.environ[DATA_DIR_ENV]!r} but data.source="
                              f"{d.source!r} reads no directory; set data.source='idx' to read it, or "
                              f"unset {DATA_DIR_ENV}")
    if defaults is not None and d.binarization != "static" and d.static_seed != defaults.data.static_seed:
        raise ConfigError(f"data.static_seed: set to {d.static_seed!r} but data.binarization="
                          f"{d.binarization!r}; it is read only with data.binarization='static'")
