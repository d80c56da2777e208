"""``--mode=evaluate``: the full evaluation of a trained run, without retraining.

    python -m vae_jax.main --mode=evaluate --workdir=W [--iwae_k=5000] [--config=FILE --config.eval.X=...]

Reads W/config.json and W's latest checkpoint; the ``eval`` section comes from ``--config`` when
one is given (else from W/config.json, else the defaults below); ``--iwae_k`` overrides
``eval.iwae_k``. Adds to W/eval.json: the ELBO terms, rate / distortion, kl_per_dim,
active_units, mutual_info, mse / psnr / bce (diagnostics.py); nll_iwae, iwae_k, bits/dim
(iwae.py); fid, fid_recon, fid_floor and the classifier's accuracy (fid.py, classifier.py); the
seconds each part took. Regenerates W/report.html.

"""
from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np

from vae_jax import config as config_lib
from vae_jax import models
import vae_jax.models.families as families
import vae_jax.evaluation.classifier as classifier
import vae_jax.evaluation.diagnostics as diagnostics
import vae_jax.evaluation.fid as fid
import vae_jax.evaluation.iwae as iwae
from vae_jax.evaluation.settings import eval_config
import vae_jax.training.run_meta as run_meta
import vae_jax.training.runs as runs
import vae_jax.training.trainer as trainer


def load_run_config(workdir: str, override=None) -> ml_collections.ConfigDict:
    """W/config.json with the ``eval`` section of ``override`` (the --config given), if any."""
    config = runs.load_config(workdir)
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
    config_lib.validate(config)
    return evaluate_run(config, workdir)


def evaluate_run(config, workdir: str, log=print) -> dict:

    e = config.eval
    t_start = time.perf_counter()
    run = runs.load_run(workdir, data_dir=e.data_dir)
    ds, model, params, epoch = run.ds, run.model, run.params, run.epoch
    log(f"evaluate: {workdir} on {ds.meta['source']} {ds.meta['name']} ({len(ds.test_images)} test images)")
    keys = trainer.split_keys(config.seed)
    binarization, eval_bs = config.data.binarization, config.train.eval_batch_size
    timings = {}

    t0 = time.perf_counter()
    results = diagnostics.evaluate_with_diagnostics(model, params, ds.test_images, keys["eval"],
                                                    binarization, eval_bs)
    # The aggregate-posterior estimate of I(x; z) needs one Gaussian q(z|x) per example.
    if families.GAUSSIAN_ENCODER in models.get_family(config.model.kind).capabilities:
        mean, logvar = diagnostics.encode_dataset(model, params, ds.test_images, keys["eval"],
                                                  binarization, eval_bs)
        results.update(diagnostics.mutual_information(mean, logvar, jax.random.fold_in(keys["eval"], 1)))
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
    log(f"results: {os.path.abspath(workdir)}/eval.json, report: {os.path.abspath(workdir)}/report.html")
    return results


def _batched(fn, inputs, batch: int = 1000):
    return np.concatenate([np.asarray(fn(inputs[i:i + batch])) for i in range(0, len(inputs), batch)])
