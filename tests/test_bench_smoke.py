"""The benchmark scripts (bench/) read the CLI's printed lines: their parser must match what the CLI
prints today."""
import json
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))

import time_to_nats  # noqa: E402


def test_time_to_nats_parses_the_lines_the_cli_prints(tiny_vae_run):
    rows = [json.loads(line) for line in open(os.path.join(tiny_vae_run.workdir, "metrics.jsonl"))]
    found = [m for m in map(time_to_nats._TEST.search, tiny_vae_run.stdout.splitlines()) if m]
    assert [(int(m.group(1)), int(m.group(2))) for m in found] == [(1, 2), (2, 2)]
    for m, row in zip(found, rows):
        assert float(m.group(3)) == pytest.approx(row["test/neg_elbo"], abs=1e-4)


def test_time_to_nats_ignores_lines_without_a_test_value():
    assert time_to_nats._TEST.search("epoch 3/26: train neg_elbo 104.0000 (25000 ex/s)") is None


def test_threefry_lowering_bench_runs_and_checks_equal_numbers(capsys):
    import threefry_lowering
    threefry_lowering.main(["--batch_size", "4", "--noise", "3", "--steps", "2", "--rounds", "1"])
    out = json.loads(capsys.readouterr().out)
    assert out["same_numbers"] and set(out["ms_per_step"]) == {"rolled", "unrolled"}
