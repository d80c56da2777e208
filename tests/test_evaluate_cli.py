"""``--mode=evaluate`` end to end on a copy of the session's tiny trained VAE (bundled data,
small k, tiny classifier)."""
import json
import os

import pytest

from conftest import JOBS, cli_run, job

EVAL_KEYS = {"nll_iwae", "iwae_k", "rate", "distortion", "active_units", "fid", "fid_floor", "mse", "psnr",
             "bce", "mutual_info", "kl_per_dim", "neg_elbo", "fid_recon", "classifier_test_accuracy"}


@job(after=["tiny_vae_run"])
def evaluated_vae_run(directory) -> dict:
    """The tiny VAE copied, then ``--mode=evaluate --iwae_k=24`` on the copy; what it held before."""
    workdir = JOBS.result("tiny_vae_run").copy_to(os.path.join(directory, "run"))
    before = {"checkpoints": sorted(os.listdir(os.path.join(workdir, "checkpoints"))),
              "rows": [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]}
    return {"before": before, "run": cli_run(workdir, ["--mode=evaluate", "--iwae_k=24"])}


def test_training_logs_the_cheap_diagnostics(tiny_vae_run):
    rows = [json.loads(line) for line in open(os.path.join(tiny_vae_run.workdir, "metrics.jsonl"))]
    # the trainer's eval hook logs the cheap diagnostics at every evaluation
    assert {"test/rate", "test/distortion", "test/active_units", "test/psnr"} <= set(rows[-1])
    assert rows[-1]["test/rate"] + rows[-1]["test/distortion"] == pytest.approx(rows[-1]["test/neg_elbo"], rel=1e-5)


def test_evaluate_writes_the_full_evaluation(evaluated_vae_run):
    run, before = evaluated_vae_run["run"], evaluated_vae_run["before"]
    workdir = run.workdir
    assert run.returncode == 0, run.stderr[-2000:]
    ev = run.eval
    assert EVAL_KEYS <= set(ev), EVAL_KEYS - set(ev)
    assert ev["iwae_k"] == 24 and ev["fid_num_images"] == 256
    # L_k ≥ the k-sample ELBO on the same samples, and ≥ the trainer's test ELBO up to MC noise
    assert ev["nll_iwae"] <= ev["neg_elbo_iwae_samples"]
    assert ev["nll_iwae"] < ev["neg_elbo"]
    assert 0 <= ev["active_units"] <= 8 and len(ev["kl_per_dim"]) == 8
    assert ev["fid"] >= 0 and ev["fid_floor"] >= 0
    assert ev["eval_checkpoint_epoch"] == 2
    # evaluation does not retrain: same checkpoints, same metrics rows
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before["checkpoints"]
    assert len(open(os.path.join(workdir, "metrics.jsonl")).readlines()) == len(before["rows"])
    assert "nll_iwae" in run.report and "kl_per_dim.png" in run.report
