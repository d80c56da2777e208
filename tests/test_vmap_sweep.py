"""Vmapped sweep members equal training each point alone (same init, data order, noise); the group
holds every member's workdir lock while it trains."""
import json
import os
import re

import numpy as np
import pytest

from conftest import load_config
from vae_jax import data as data_lib
from vae_jax.sweeps import vmap_group as sweep_vmap
from vae_jax.sweeps.expand import Point, apply_overrides
import vae_jax.training.run_meta as run_meta
import vae_jax.training.runs as runs
import vae_jax.training.trainer as trainer
import vae_jax.training.workdir as workdir_lib


def _rows(d):
    return [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))]


def _member_configs():
    base = load_config("vae_sweep", "tiny")
    # Differ in every vmapped field: seed, KL weight, learning rate.
    overrides = [{"seed": 0, "objective.kl_weight": 1.0, "optim.learning_rate": 1e-3},
                 {"seed": 3, "objective.kl_weight": 0.25, "optim.learning_rate": 3e-3}]
    return [apply_overrides(base, o, f"member {i}") for i, o in enumerate(overrides)]


def test_vmapped_members_equal_training_alone(tmp_path):

    configs = _member_configs()
    ds = data_lib.load(configs[0].data)
    group_dirs = [str(tmp_path / f"vmap{i}") for i in range(len(configs))]
    results = sweep_vmap.train_group(configs, group_dirs, ds)
    for i, cfg in enumerate(configs):
        alone = runs.train_and_evaluate(cfg, str(tmp_path / f"alone{i}"))
        for key in ("neg_elbo", "kl", "rec_loss", "mse"):
            np.testing.assert_allclose(results[i][key], alone[key], rtol=2e-5, err_msg=f"member {i} test/{key}")
        for rv, ra in zip(_rows(group_dirs[i]), _rows(str(tmp_path / f"alone{i}"))):
            assert rv["step"] == ra["step"]
            for key in ("train/neg_elbo", "train/kl", "train/loss"):
                np.testing.assert_allclose(rv[key], ra[key], rtol=2e-5, err_msg=f"member {i} {key}")
    # The members really differ (different seeds / β / lr), so equality above is not trivial.
    assert abs(results[0]["neg_elbo"] - results[1]["neg_elbo"]) > 1.0


@pytest.mark.slow
def test_vmapped_member_resumes_alone(tmp_path):
    """A vmapped point's checkpoint is the normal format: train_and_evaluate resumes it."""

    configs = _member_configs()
    for c in configs:
        c.train.epochs = 1
    d = [str(tmp_path / f"m{i}") for i in range(2)]
    sweep_vmap.train_group(configs, d, data_lib.load(configs[0].data))
    cfg = configs[1].copy_and_resolve_references()
    cfg.train.epochs = 2
    resumed = runs.train_and_evaluate(cfg, d[1])
    fresh = runs.train_and_evaluate(cfg, str(tmp_path / "fresh"))
    np.testing.assert_allclose(resumed["neg_elbo"], fresh["neg_elbo"], rtol=2e-5)


def test_choose_rule_and_probe():

    configs = _member_configs()
    points = [Point(i, str(i), {}, c) for i, c in enumerate(configs)]
    assert sweep_vmap.choose(points[:1], "on") == "sequential"   # nothing to vmap
    assert sweep_vmap.choose(points, "off") == "sequential"
    assert sweep_vmap.choose(points, "on") == "vmap"
    speedup = sweep_vmap.probe_speedup(configs, data_lib.load(configs[0].data), steps=4)
    assert 0.05 < speedup < 20


def _locked(d) -> bool:
    try:
        with workdir_lib.lock(d):
            return False
    except workdir_lib.WorkdirError:
        return True


def test_group_holds_every_member_lock_while_it_trains_and_writes(tmp_path, monkeypatch):

    configs = _member_configs()
    for c in configs:
        c.train.epochs = 1
    dirs = [str(tmp_path / f"m{i}") for i in range(len(configs))]
    seen = []
    real_epoch, real_update = trainer.make_epoch, run_meta.update_eval_json

    def make_epoch(*a, **k):
        fn, steps = real_epoch(*a, **k)

        def epoch(*args):
            seen.append(("train", [_locked(d) for d in dirs]))
            return fn(*args)
        return epoch, steps

    def update_eval_json(d, metrics):
        seen.append(("eval.json", [_locked(d) for d in dirs]))
        return real_update(d, metrics)

    monkeypatch.setattr(trainer, "make_epoch", make_epoch)
    monkeypatch.setattr(run_meta, "update_eval_json", update_eval_json)
    sweep_vmap.train_group(configs, dirs, data_lib.load(configs[0].data))
    assert seen == [("train", [True, True]), ("eval.json", [True, True]), ("eval.json", [True, True])]
    assert not any(_locked(d) for d in dirs)   # released afterwards
    assert all(os.path.exists(os.path.join(d, "config.json")) for d in dirs)


def test_group_refuses_when_a_member_is_in_use(tmp_path, monkeypatch):

    configs = _member_configs()
    dirs = [str(tmp_path / f"m{i}") for i in range(len(configs))]
    os.makedirs(dirs[1])
    monkeypatch.setattr(trainer, "make_epoch", lambda *a, **k: pytest.fail("trained"))
    in_use = re.escape(f"workdir {dirs[1]} is in use by pid {os.getpid()} ")
    with workdir_lib.lock(dirs[1]):
        with pytest.raises(workdir_lib.WorkdirError, match=in_use):
            sweep_vmap.train_group(configs, dirs, data_lib.load(configs[0].data))
        assert not os.path.exists(dirs[0]) or os.listdir(dirs[0]) == []   # nor the free member
        assert sorted(os.listdir(dirs[1])) == ["run.lock"]
