"""``--mode=evaluate`` end to end on a tiny trained run (bundled data, small k, tiny classifier)."""
import json
import os

import pytest
from conftest import run_cli

EVAL_KEYS = {"nll_iwae", "iwae_k", "rate", "distortion", "active_units", "fid", "fid_floor", "mse", "psnr",
             "bce", "mutual_info", "kl_per_dim", "neg_elbo", "fid_recon", "classifier_test_accuracy"}


def test_train_then_evaluate(tmp_path):
    workdir, env = str(tmp_path / "run"), {"VAE_JAX_CACHE": str(tmp_path / "cache")}
    r = run_cli(["--config=configs/vae_mnist.py:tiny", f"--workdir={workdir}"], env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    # the trainer's eval hook logs the cheap diagnostics at every evaluation
    assert {"test/rate", "test/distortion", "test/active_units", "test/psnr"} <= set(rows[-1])
    assert rows[-1]["test/rate"] + rows[-1]["test/distortion"] == pytest.approx(rows[-1]["test/neg_elbo"], rel=1e-5)
    ckpts_before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))

    r = run_cli(["--mode=evaluate", f"--workdir={workdir}", "--iwae_k=24"], env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    ev = json.load(open(os.path.join(workdir, "eval.json")))
    assert EVAL_KEYS <= set(ev), EVAL_KEYS - set(ev)
    assert ev["iwae_k"] == 24 and ev["fid_num_images"] == 256
    # L_k ≥ the k-sample ELBO on the same samples, and ≥ the trainer's test ELBO up to MC noise
    assert ev["nll_iwae"] <= ev["neg_elbo_iwae_samples"]
    assert ev["nll_iwae"] < ev["neg_elbo"]
    assert 0 <= ev["active_units"] <= 8 and len(ev["kl_per_dim"]) == 8
    assert ev["fid"] >= 0 and ev["fid_floor"] >= 0
    assert ev["eval_checkpoint_epoch"] == 2
    # evaluation does not retrain: same checkpoints, same metrics rows
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ckpts_before
    assert len(open(os.path.join(workdir, "metrics.jsonl")).readlines()) == len(rows)
    html = open(os.path.join(workdir, "report.html")).read()
    assert "nll_iwae" in html and "kl_per_dim.png" in html


def test_evaluate_without_a_run_fails_cleanly(tmp_path):
    r = run_cli(["--mode=evaluate", f"--workdir={tmp_path / 'nothing'}"])
    assert r.returncode == 2
    assert "config.json" in r.stderr and "Traceback" not in r.stderr
