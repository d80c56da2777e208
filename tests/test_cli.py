"""The real CLI, end to end: every config's tiny variant trains and writes its outputs; a bad
config, override or data setting exits with status 2 before anything is trained."""
import concurrent.futures
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import CliRun, TINY_VAE, cli_run, job
from vae_jax import models
import vae_jax.training.runs as runs
import vae_jax.training.trainer as trainer


@job
def tiny_linear_ae_run(directory) -> CliRun:
    return cli_run(os.path.join(directory, "linear_ae_mnist"), ["--config=configs/linear_ae_mnist.py:tiny"])


@job
def tiny_quickstart_run(directory) -> CliRun:
    return cli_run(os.path.join(directory, "quickstart"), ["--config=configs/quickstart.py:tiny"])


RUNS = {"vae_mnist": "tiny_vae_run", "ae_mnist": "tiny_ae_run", "linear_ae_mnist": "tiny_linear_ae_run",
        "quickstart": "tiny_quickstart_run"}


def _test_mse(model, params, ds) -> float:
    """Per-pixel MSE of the reconstructions of the (undistorted) test images, computed directly."""
    x = ds.test_images.astype(np.float32) / 255.0
    return float(np.mean((np.asarray(models.reconstruct(model, params, jnp.asarray(x))) - x) ** 2))


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.jobs(j)] + (
    [pytest.mark.slow] if n == "quickstart" else [])) for n, j in RUNS.items()])  # quickstart ≈ vae_mnist when tiny
def test_tiny_config_end_to_end(name, request):
    run = request.getfixturevalue(RUNS[name])
    wd = run.workdir
    assert run.returncode == 0, run.stderr[-2000:]
    ev = run.eval
    assert ev["epoch"] == 2 and ev["step"] == 2 * (512 // 64)
    if name in ("vae_mnist", "quickstart"):
        assert ev["kl"] >= 0 and abs(ev["neg_elbo"] - ev["rec_loss"] - ev["kl"]) < 1e-3
        # Better than coding each of the 784 binary pixels as a fair coin (log 2 nats each).
        assert 0 < ev["neg_elbo"] < 784 * np.log(2)
        assert "samples.png" in run.files
    else:
        # The reported MSE is the test-set MSE of the saved model, and training lowered it.
        run_ = runs.load_run(wd)
        assert ev["mse"] == pytest.approx(_test_mse(run_.model, run_.params, run_.ds), rel=1e-4)
        init = trainer.init_model_state(run_.config, run_.model, trainer.split_keys(0)["init"],
                                        run_.ds.image_shape, run_.ds.train_images, 8).params
        assert 0 < ev["mse"] < 0.97 * _test_mse(run_.model, init, run_.ds), ev["mse"]
    for f in ("config.json", "run_meta.json", "metrics.jsonl", "reconstructions.png", "report.html"):
        assert f in run.files, f
    assert any(p.startswith("curve_") for p in run.files)
    meta = json.load(open(os.path.join(wd, "run_meta.json")))
    assert meta["data"]["source"] == "bundled" and meta["seed"] == 0 and "jax" in meta["versions"]
    assert f"{wd}/eval.json" in run.stdout and f"{wd}/report.html" in run.stdout
    assert "reconstructions.png" in run.report
    assert (("neg_elbo" in run.report) == (name in ("vae_mnist", "quickstart")))


# ---------------------------------------------------------------------------- refused before training
# tests/test_config_validation.py sends more bad overrides through the CLI; these are the cases
# it does not cover.
VAE = TINY_VAE[0]
BAD = {  # name: (CLI arguments besides --workdir, the field the one-line error starts with)
    "dir_for_bundled": ([VAE, "--config.data.dir={empty}"], "data.dir"),  # bundled data reads no directory
    "evaluate_nothing": (["--mode=evaluate"], "--workdir"),  # no trained run there
}


@job
def refused_runs(directory) -> dict:
    """Each BAD command through the CLI, side by side (each is mostly imports)."""
    empty = os.path.join(directory, "empty_data_dir")
    os.makedirs(empty)

    def one(name):
        return cli_run(os.path.join(directory, name), [a.format(empty=empty) for a in BAD[name][0]])
    with concurrent.futures.ThreadPoolExecutor(len(BAD)) as pool:
        return dict(zip(BAD, pool.map(one, BAD)))


@pytest.mark.parametrize("name", BAD)
def test_bad_input_exits_2_before_training(name, refused_runs):
    run, field = refused_runs[name], BAD[name][1]
    assert run.returncode == 2, run.stderr[-1000:]
    lines = [line for line in run.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: " + field), run.stderr[-1000:]
    assert "Traceback" not in run.stderr
    # Nothing trained, nothing recorded: the workdir holds the error log alone, with that line.
    assert run.files == ["error.log"], run.files
    assert open(os.path.join(run.workdir, "error.log")).read().strip().endswith(lines[-1])


def test_data_dir_with_bundled_data_names_both_fields(refused_runs):
    """``--config.data.dir=<empty dir>`` on a config that reads the bundled digits."""
    run = refused_runs["dir_for_bundled"]
    assert run.returncode == 2 and run.files == ["error.log"]
    assert "data.dir" in run.stderr and "data.source" in run.stderr
