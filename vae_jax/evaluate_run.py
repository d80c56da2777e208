"""``--mode=evaluate``: the full evaluation of a trained run, without retraining.

    python -m vae_jax.main --mode=evaluate --workdir=W [--iwae_k=5000] [--config=FILE --config.eval.X=...]

Reads W/config.json and W's latest checkpoint; the ``eval`` section comes from ``--config`` when
one is given (else from W/config.json, else the defaults below); ``--iwae_k`` overrides
``eval.iwae_k``. Adds to W/eval.json: the ELBO terms, rate / distortion, kl_per_dim,
active_units, mutual_info, mse / psnr / bce (diagnostics.py); nll_iwae, iwae_k, bits/dim
(iwae.py); fid, fid_recon, fid_floor and the classifier's accuracy (fid.py, classifier.py); the
seconds each part took. Regenerates W/report.html.

config_base imports this module for ``eval_config``; the heavy imports are inside the functions.
"""
from __future__ import annotations

import json
import os
import time

import ml_collections


def eval_config() -> ml_collections.ConfigDict:
    """Defaults of the ``eval`` config section (config_base.base_config holds one)."""
    e = ml_collections.ConfigDict()
    e.iwae = True                # False: skip the IWAE bound (keeps any nll_iwae already in eval.json)
    e.iwae_k = 5000              # importance samples per test example (Burda et al. use 5000)
    e.iwae_batch_size = 100      # test examples per jitted IWAE call (one progress-bar tick)
    e.iwae_chunk = 0             # samples per decoder call; 0: largest divisor of k with chunk·batch ≤ 50k
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
    from vae_jax.config_validation import ConfigError
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


def _register_check():
    from vae_jax import config_validation
    if validate_eval not in config_validation.EXTRA_CHECKS:
        config_validation.EXTRA_CHECKS.append(validate_eval)


_register_check()  # config_base imports this module, so every validated config checks ``eval``

# ---------------------------------------------------------------------------- the mode
def _iwae_k_flag():
    from absl import flags
    f = flags.FLAGS
    return f.iwae_k if "iwae_k" in f and f.is_parsed() and f.iwae_k else None


def load_run_config(workdir: str, override=None) -> ml_collections.ConfigDict:
    """W/config.json with the ``eval`` section of ``override`` (the --config given), if any."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        from vae_jax.config_validation import ConfigError
        raise ConfigError(f"--workdir: {path} not found; --mode=evaluate needs a trained run")
    config = ml_collections.ConfigDict(json.load(open(path)))
    for k in ("encoder_hidden", "decoder_hidden", "conv_channels"):   # JSON turned tuples into lists
        if k in config.model:
            config.model[k] = tuple(config.model[k])
    if "optim" in config and "stage_epochs" in config.optim:
        config.optim.stage_epochs = tuple(config.optim.stage_epochs)
    base = eval_config()
    if override is not None and "eval" in override:
        base.update(override.eval)
    elif "eval" in config:
        base.update(config.eval)
    config.eval = base
    return config


def run_evaluate(config, workdir: str) -> dict:
    """The ``evaluate`` mode (main.MODES): ``config`` is the --config given, or None."""
    config = load_run_config(workdir, config)
    k = _iwae_k_flag()
    if k:
        config.eval.iwae_k = int(k)
    from vae_jax import config_validation
    config_validation.validate(config)
    return evaluate_run(config, workdir)


def evaluate_run(config, workdir: str, log=print) -> dict:
    import jax
    import numpy as np

    from vae_jax import checkpointing, classifier, diagnostics, fid, iwae, models, report, run_meta
    from vae_jax import data as data_lib
    from vae_jax import train

    e = config.eval
    if e.data_dir:
        config.data.dir = e.data_dir
    t_start = time.perf_counter()
    ds = data_lib.load(config.data)
    log(f"evaluate: {workdir} on {ds.meta['source']} {ds.meta['name']} ({len(ds.test_images)} test images)")
    keys = train.split_keys(config.seed)
    model = models.build_model(config.model, ds.image_shape)
    state = train.create_state(config, model, keys["init"], ds.image_shape,
                               max(1, len(ds.train_images) // config.train.batch_size))
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        epoch = ckpt.latest_epoch()
        params = ckpt.restore_params(state)
    finally:
        ckpt.close()
    binarization, eval_bs = config.data.binarization, config.train.eval_batch_size
    timings = {}

    t0 = time.perf_counter()
    results = diagnostics.evaluate_with_diagnostics(model, params, ds.test_images, keys["eval"],
                                                    binarization, eval_bs)
    if model.is_vae:
        mean, logvar = diagnostics.encode_dataset(model, params, ds.test_images, keys["eval"],
                                                  binarization, eval_bs)
        results.update(diagnostics.mutual_information(mean, logvar, jax.random.fold_in(keys["eval"], 1)))
        _plot_kl_per_dim(workdir, results["kl_per_dim"])
    timings["diagnostics_seconds"] = time.perf_counter() - t0
    run_meta.update_eval_json(workdir, dict(results, **timings))   # each part is saved as it finishes
    log("evaluate: " + ", ".join(f"{k} {results[k]:.4g}" for k in
                                 ("neg_elbo", "rate", "distortion", "active_units", "mutual_info", "mse", "psnr")
                                 if k in results))

    if model.is_vae and e.iwae:
        x = iwae.evaluation_inputs(ds.test_images, keys["eval"], binarization, eval_bs)
        results.update(iwae.iwae_dataset(model, params, x, jax.random.fold_in(keys["eval"], 2), e.iwae_k,
                                         e.iwae_batch_size, e.iwae_chunk or None,
                                         progress=config.train.get("progress", True)))
        results["nll_iwae_examples_per_s"] = len(x) / results["iwae_seconds"]
        log(f"evaluate: nll_iwae {results['nll_iwae']:.3f} nats (k={e.iwae_k}; "
            f"{results['nll_iwae_bits_per_dim']:.4f} bits/dim) vs neg_elbo {results['neg_elbo']:.3f}, "
            f"{results['iwae_seconds']:.0f} s")
        run_meta.update_eval_json(workdir, results)

    if e.fid:
        t0 = time.perf_counter()
        spec = classifier.ClassifierSpec(channels=e.classifier_channels, features=e.classifier_features,
                                         epochs=e.classifier_epochs, learning_rate=e.classifier_learning_rate)
        clf = classifier.get_classifier(ds, spec, log=log)
        n = min(e.fid_num_samples, len(ds.test_images), len(ds.train_images))
        test = ds.test_images[:n]
        key = jax.random.fold_in(keys["eval"], 3)
        recon = _batched(lambda xb: models.reconstruct(model, params, xb),
                         iwae.evaluation_inputs(test, keys["eval"], binarization, eval_bs))
        results.update(fid_floor=fid.real_data_floor(clf, ds.train_images, test, n),
                       fid_recon=fid.fid(clf, recon, test), fid_num_images=n,
                       classifier_test_accuracy=clf.test_accuracy, classifier_cache=clf.cache_dir)
        if model.is_vae:
            samples = _batched(lambda kb: models.sample(model, params, kb[0], 1000),
                               np.asarray(jax.random.split(key, -(-n // 1000))), batch=1)[:n]
            results.update(fid=fid.fid(clf, samples, test), fid_source="prior samples (mean of p(x|z))")
        else:
            results.update(fid=results["fid_recon"], fid_source="test reconstructions")
        timings["fid_seconds"] = time.perf_counter() - t0
        log(f"evaluate: fid {results['fid']:.3f} ({results['fid_source']}), fid_recon "
            f"{results['fid_recon']:.3f}, fid_floor {results['fid_floor']:.3f} (train vs test); "
            f"classifier test accuracy {clf.test_accuracy:.4f}")

    timings["eval_seconds"] = time.perf_counter() - t_start
    results.update(timings, eval_checkpoint_epoch=int(epoch))
    run_meta.update_eval_json(workdir, results)
    report.write_html(workdir)
    log(f"results: {os.path.abspath(workdir)}/eval.json, report: {os.path.abspath(workdir)}/report.html")
    return results


def _batched(fn, inputs, batch: int = 1000):
    import numpy as np
    return np.concatenate([np.asarray(fn(inputs[i:i + batch])) for i in range(0, len(inputs), batch)])


def _plot_kl_per_dim(workdir: str, kl_per_dim) -> str:
    from vae_jax.report import _plt
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(range(len(kl_per_dim)), kl_per_dim)
    ax.set_xlabel("latent unit")
    ax.set_ylabel("E_x KL(q(z_u|x) || p(z_u)) (nats)")
    fig.tight_layout()
    path = os.path.join(workdir, "kl_per_dim.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
