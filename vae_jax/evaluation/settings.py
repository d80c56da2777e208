"""The ``eval`` config section (``--mode=evaluate``): defaults, the test-size variant, checks."""
from __future__ import annotations

import ml_collections

from vae_jax.errors import ConfigError


def eval_config() -> ml_collections.ConfigDict:
    """Defaults of the ``eval`` config section (config_base.base_config holds one)."""
    e = ml_collections.ConfigDict()
    e.iwae = True                # False: skip the IWAE bound (keeps any nll_iwae already in eval.json)
    e.iwae_k = 5000              # importance samples per test example (Burda et al. use 5000)
    e.iwae_batch_size = 100      # test examples per jitted IWAE call (one progress-bar tick)
    e.iwae_chunk = 0             # samples per decoder call; 0: largest divisor of k with chunk·batch·pixels ≤ 7.84M (iwae.DECODER_VALUES)
    e.fid = True
    e.fid_num_samples = 10000    # prior samples (and real images for the floor) in each Fréchet distance
    e.classifier_channels = 32   # feature CNN (classifier.py); part of its cache key
    e.classifier_features = 128
    e.classifier_epochs = 5
    e.classifier_learning_rate = 3e-3
    e.data_dir = ""              # overrides the run's data.dir when the data moved
    return e


def shrink_eval_for_tests(e: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    e.iwae_k = 16
    e.iwae_batch_size = 64
    e.fid_num_samples = 256
    e.classifier_channels = 4
    e.classifier_features = 16
    e.classifier_epochs = 1
    return e


def validate_eval(cfg) -> None:
    if "eval" not in cfg:
        return
    e = cfg.eval
    for name in ("iwae_k", "iwae_batch_size", "fid_num_samples", "classifier_channels",
                 "classifier_features", "classifier_epochs"):
        v = e[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"eval.{name}: {v!r} must be an integer >= 1")
    if isinstance(e.iwae_chunk, bool) or not isinstance(e.iwae_chunk, int) or e.iwae_chunk < 0 \
            or (e.iwae_chunk and e.iwae_k % e.iwae_chunk):
        raise ConfigError(f"eval.iwae_chunk: {e.iwae_chunk!r} must be 0 (auto) or a divisor of "
                          f"eval.iwae_k={e.iwae_k}")
