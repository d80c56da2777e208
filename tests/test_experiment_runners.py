"""The model-families runner's equal-budget rules (experiments/model_families/run.py)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

from conftest import ROOT

RUNNER = os.path.join(ROOT, "experiments", "model_families", "run.py")


def _runner():
    spec = importlib.util.spec_from_file_location("model_families_run", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kl_warmup_is_scaled_to_the_budget():
    run = _runner()
    # ladder_mnist: batch 256 -> 234 steps per epoch; 3 epochs, 10 %: 70 of 702 steps.
    assert run.warmup_overrides("configs/ladder_mnist.py", 3, 0.1) == ["--config.objective.warmup_steps=70"]
    assert run.warmup_overrides("configs/ladder_mnist.py", 50, 0.5) == [
        f"--config.objective.warmup_steps={round(0.5 * 50 * (60000 // 256))}"]
    # A config without a warm-up gets none, and 'config' keeps each config's own.
    assert run.warmup_overrides("configs/iaf_mnist.py", 3, 0.1) == []
    assert run.warmup_overrides("configs/ladder_mnist.py", 3, "config") == []


def test_bad_warmup_fraction_is_refused():
    for bad in ("0", "1.5", "ten"):
        out = subprocess.run([sys.executable, RUNNER, "--data_dir", "/nonexistent", "--warmup_fraction", bad],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert out.returncode == 2 and f"--warmup_fraction: '{bad}'" in out.stderr, out.stderr[-300:]
