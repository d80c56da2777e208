"""Sweep specs, validation before running, the tiny sweep end to end with resume, and collect."""
import csv
import json
import os
import shutil

import numpy as np
import pytest

from conftest import CONFIGS, cli_run, job, load_config
from vae_jax.sweeps import collect as sweep_collect
from vae_jax.sweeps.expand import SweepError, axis, load_sweep, parse_shard, point_name, product, zip_
from vae_jax.sweeps import runner as sweep
import vae_jax.training.trainer as trainer
import vae_jax.training.workdir as workdir_lib

SPEC = os.path.join(CONFIGS, "vae_sweep.py") + ":tiny"


def test_product_and_zip_expand():
    pts = product(axis("a.x", [1, 2]), zip_(axis("b", ["p", "q"]), axis("c", [0.5, 1.5])), axis("seed", [0, 1, 2]))
    assert len(pts) == 2 * 2 * 3
    assert {(p["b"], p["c"]) for p in pts} == {("p", 0.5), ("q", 1.5)}   # zipped, not crossed
    assert len({point_name(p) for p in pts}) == len(pts)
    with pytest.raises(SweepError, match="equally long"):
        zip_(axis("b", [1, 2]), axis("c", [1]))
    with pytest.raises(SweepError, match="two parts"):
        product(axis("b", [1]), axis("b", [2]))
    full = load_sweep(os.path.join(CONFIGS, "vae_sweep.py"))
    assert len(full) == 3 * 2 * 3 * 3
    assert {"model.latent_dim", "model.likelihood", "objective.kl_weight", "seed"} <= set(full[0])
    assert len(load_sweep(SPEC)) == 16


@pytest.mark.parametrize("overrides, field", [
    ({"model.latnt_dim": 3}, "model.latnt_dim"),                 # no such field
    ({"model.likelihood": "poisson"}, "model.likelihood"),       # value not allowed
    ({"model.latent_dim": "ten"}, "model.latent_dim"),           # wrong type
    ({"objective.kl_weight": -1.0}, "objective.kl_weight"),      # out of range
    ({"model.likelihood": "bernoulli", "data.binarization": "none"}, "model.likelihood"),  # cross-field
])
def test_invalid_point_is_rejected_before_anything_runs(tmp_path, overrides, field):
    cfg_file = tmp_path / "bad_sweep.py"
    cfg_file.write_text(
        "import sys; sys.path.insert(0, %r)\n" % os.path.dirname(CONFIGS)
        + "from configs.vae_sweep import get_config\n"
        + f"def get_sweep(arg=None):\n    return [{{'seed': 0}}, {overrides!r}]\n")
    with pytest.raises(SweepError) as e:
        sweep.run(f"{cfg_file}:tiny", load_config("vae_sweep"), str(tmp_path / "w"))
    msg = str(e.value)
    assert "sweep point 1" in msg and field in msg
    assert not os.path.exists(tmp_path / "w")   # nothing was created, nothing trained


def test_shard_is_parsed_and_checked():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "a/2", "1"):
        with pytest.raises(SweepError):
            parse_shard(bad)


def _metrics(workdir, name):
    return json.load(open(os.path.join(workdir, "points", name, "eval.json")))


def _spec_file(tmp_path, sweep: str) -> str:
    """A sweep file beside configs/vae_sweep.py's tiny config: ``get_sweep`` returns ``sweep``."""
    f = tmp_path / "small_sweep.py"
    f.write_text(f"import sys; sys.path.insert(0, {os.path.dirname(CONFIGS)!r})\n"
                 "from configs.vae_sweep import get_config, likelihoods\n"
                 "from vae_jax.sweeps import axis, product\n"
                 f"def get_sweep(arg=None):\n    return {sweep}\n")
    return f"{f}:tiny"


@pytest.mark.slow  # several CLI trainings
def test_sweep_runs_resumes_and_collects(tmp_path, capsys):
    """Two vmapped groups of two (likelihood × β). Then one point deleted and one half-finished
    in the same group: only those two train again (vmapped, from epochs 0 and 1), with the same
    numbers as the first time."""
    spec = _spec_file(tmp_path, 'product(likelihoods(), axis("objective.kl_weight", [0.5, 1.0]))')
    wd = str(tmp_path / "sweep")
    base = load_config("vae_sweep")
    points = sweep.run(spec, base, wd, vmap="on")
    assert len(points) == 4 and all(sweep.is_done(wd, p) for p in points)
    assert {json.load(open(os.path.join(sweep.point_dir(wd, p), sweep.DONE_FILE)))["trained"]
            for p in points} == {"vmap x2"}
    before = {p.name: _metrics(wd, p.name)["neg_elbo"] for p in points}
    assert len(set(np.round(list(before.values()), 4))) == 4        # every point trained differently

    # Delete one point's folder; leave its group partner half-finished (no done.json, epoch 1 only).
    gone, half = points[0], points[1]
    assert gone.overrides["model.likelihood"] == half.overrides["model.likelihood"]
    shutil.rmtree(sweep.point_dir(wd, gone))
    os.remove(os.path.join(sweep.point_dir(wd, half), sweep.DONE_FILE))
    shutil.rmtree(os.path.join(sweep.point_dir(wd, half), "checkpoints", "2"))
    stamps = {p.name: os.path.getmtime(os.path.join(sweep.point_dir(wd, p), sweep.DONE_FILE))
              for p in points if p not in (gone, half)}
    capsys.readouterr()
    sweep.run(spec, base, wd, vmap="on")
    out = capsys.readouterr().out
    assert "2 already finished, 2 to train" in out
    assert f"{sweep.point_dir(wd, half)}: resumed from checkpoint at epoch 1" in out
    for p in (gone, half):
        np.testing.assert_allclose(_metrics(wd, p.name)["neg_elbo"], before[p.name], rtol=1e-5)
    for name, t in stamps.items():   # finished points were skipped
        assert os.path.getmtime(os.path.join(wd, "points", name, sweep.DONE_FILE)) == t

    res = sweep_collect.collect(wd)
    rows = list(csv.DictReader(open(res["csv"])))
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    assert float(rows[0]["neg_elbo"]) == pytest.approx(before[rows[0]["name"]], rel=1e-6)
    for png in ("curves_neg_elbo.png", "rate_distortion.png"):
        assert os.path.getsize(os.path.join(wd, png)) > 10_000
    html = open(res["html"]).read()
    assert html.count("<tr>") == 5 and "rate_distortion.png" in html


@pytest.mark.slow  # 16 points
def test_shipped_tiny_sweep_through_the_cli(tmp_path):
    """``python -m vae_jax.sweeps --config=configs/vae_sweep.py:tiny``: four vmapped groups of four
    (β × seed), every point trained and collected."""
    wd = str(tmp_path / "sweep")
    r = cli_run(wd, ["--config=configs/vae_sweep.py:tiny", "--vmap=on"], module="vae_jax.sweeps")
    assert r.returncode == 0, r.stderr[-2000:]
    points = sweep.expand(load_config("vae_sweep", "tiny"), sweep.load_sweep(SPEC))
    assert len(points) == 16 and all(sweep.is_done(wd, p) for p in points)
    neg_elbo = [_metrics(wd, p.name)["neg_elbo"] for p in points]
    assert len(set(np.round(neg_elbo, 4))) == 16        # every point trained differently
    rows = list(csv.DictReader(open(os.path.join(wd, "results.csv"))))
    assert len(rows) == 16 and all(r["status"] == "done" for r in rows)
    assert f"results: {wd}/results.csv" in r.stdout
    assert open(os.path.join(wd, "report.html")).read().count("<tr>") == 17


def test_mean_std_over_seeds():
    curves = [[{"epoch": 1, "k": 1.0}, {"epoch": 2, "k": 3.0}], [{"epoch": 1, "k": 3.0}, {"epoch": 2, "k": 3.0}]]
    e, m, s = sweep_collect._mean_std_curve(curves, "k")
    assert list(e) == [1, 2] and list(m) == [2.0, 3.0] and list(s) == [1.0, 0.0]


def test_iwae_table1_schedule_matches_paper():
    """3^i epochs at 0.001·10^(-i/7), i = 0..7: 3,280 epochs; the learning rate by step."""
    cfg = load_config("iwae_table1", None)
    assert cfg.train.epochs == 3280 and cfg.train.batch_size == 20 and cfg.optim.eps == 1e-4
    spe = 3000  # 60,000 / 20
    scale = trainer.learning_rate_scale(cfg.optim, spe)
    start = 0
    for i in range(8):
        for step in (start * spe, (start + 3 ** i) * spe - 1):
            assert cfg.optim.learning_rate * float(scale(step)) == pytest.approx(1e-3 * 10 ** (-i / 7), rel=1e-6)
        start += 3 ** i
    cpu = load_config("iwae_table1", "cpu")
    assert sum(cpu.optim.stage_epochs) == cpu.train.epochs


@job
def sweep_with_a_point_in_use(directory) -> dict:
    """The sweep CLI on the tiny sweep while this process holds the lock of its first point."""
    wd = os.path.join(directory, "sweep")
    points = sweep.expand(load_config("vae_sweep", "tiny"), sweep.load_sweep(SPEC))
    busy = sweep.point_dir(wd, points[0])
    os.makedirs(busy)
    with workdir_lib.lock(busy):
        run = cli_run(wd, [f"--config={SPEC}", "--vmap=on"], module="vae_jax.sweeps")
    return {"run": run, "point_dirs": [sweep.point_dir(wd, p) for p in points], "busy": busy,
            "pid": os.getpid()}


def test_sweep_cli_refuses_a_point_in_use(sweep_with_a_point_in_use):
    """A point folder locked by a live run: one line, exit 2, no point of its group trained."""
    r, busy = sweep_with_a_point_in_use["run"], sweep_with_a_point_in_use["busy"]
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and err[-1].startswith("error: workdir "), r.stderr[-2000:]
    assert f"{busy} is in use by pid {sweep_with_a_point_in_use['pid']}" in err[-1]
    assert "Traceback" not in r.stderr
    assert not any(os.path.exists(os.path.join(d, name))
                   for d in sweep_with_a_point_in_use["point_dirs"] for name in ("config.json", sweep.DONE_FILE))
