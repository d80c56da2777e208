"""The real CLI, end to end, on every config's tiny variant."""
import json
import os

import pytest

from conftest import run_cli


@pytest.mark.parametrize("name", ["vae_mnist", "ae_mnist", "linear_ae_mnist", "quickstart"])
def test_tiny_config_end_to_end(name, tmp_path):
    wd = tmp_path / name
    r = run_cli([f"--config=configs/{name}.py:tiny", f"--workdir={wd}"])
    assert r.returncode == 0, r.stderr[-2000:]
    ev = json.load(open(wd / "eval.json"))
    assert 0 < ev["mse"] < 0.5
    if name in ("vae_mnist", "quickstart"):
        assert ev["neg_elbo"] > 0 and ev["kl"] >= 0
        assert abs(ev["neg_elbo"] - ev["rec_loss"] - ev["kl"]) < 1e-3
        assert os.path.exists(wd / "samples.png")
    for f in ("config.json", "run_meta.json", "metrics.jsonl", "reconstructions.png", "report.html"):
        assert os.path.exists(wd / f), f
    assert any(p.startswith("curve_") for p in os.listdir(wd))
    meta = json.load(open(wd / "run_meta.json"))
    assert meta["data"]["source"] == "bundled" and meta["seed"] == 0 and "jax" in meta["versions"]
    assert "eval.json" in r.stdout and "report.html" in r.stdout
    html = open(wd / "report.html").read()
    assert "reconstructions.png" in html and "neg_elbo" in html or name in ("ae_mnist", "linear_ae_mnist")


@pytest.mark.parametrize("override,field", [
    ("--config.model.likelihood=poisson", "model.likelihood"),
    ("--config.model.latent_dim=0", "model.latent_dim"),
    ("--config.objective.name=nope", "objective.name"),
    ("--config.data.binarization=none", "model.likelihood"),  # Bernoulli on [0,1] data
])
def test_invalid_config_exits_before_training(override, field, tmp_path):
    wd = tmp_path / "w"
    r = run_cli(["--config=configs/vae_mnist.py:tiny", f"--workdir={wd}", override])
    assert r.returncode != 0
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: " + field), r.stderr[-1000:]
    assert not os.path.exists(wd / "checkpoints") and not os.path.exists(wd / "metrics.jsonl")
