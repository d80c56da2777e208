"""kill -9 during training, then the same command: it resumes from the last checkpoint and ends
with metrics bit-identical (CPU) to an uninterrupted run. Real subprocesses, real SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, run_cli

EPOCHS = 8
ARGS = ["--config=configs/vae_mnist.py:tiny", f"--config.train.epochs={EPOCHS}",
        "--config.data.train_subset=2048", "--config.train.tensorboard=False", "--config.report.enabled=False"]


def learning_metrics(workdir):
    """Every metric of every epoch and of eval.json except wall-clock timings."""
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    per_epoch = [{k: v for k, v in r.items() if k.startswith(("train/", "test/", "epoch", "step"))
                  and k != "epoch_time_s"} for r in rows]
    return per_epoch, json.load(open(os.path.join(workdir, "eval.json")))


def _kill_during_training(workdir):
    """Starts the run and SIGKILLs it as soon as a checkpoint save is in flight (an orbax tmp dir
    exists) after the first finished checkpoint, or at the latest once checkpoint 2 is complete."""
    victim = subprocess.Popen([sys.executable, "-m", "vae_jax.main", *ARGS, f"--workdir={workdir}"],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = os.path.join(workdir, "checkpoints")
    deadline, during_save = time.time() + 300, False
    try:
        while time.time() < deadline and victim.poll() is None:
            entries = os.listdir(ckpts) if os.path.isdir(ckpts) else []
            done = [e for e in entries if e.isdigit()]
            during_save = bool(done) and any("tmp" in e for e in entries)
            if during_save or "2" in done:
                break
            time.sleep(0.002)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return during_save


@pytest.mark.slow  # real processes, real SIGKILL: ~3 runs of 8 epochs
def test_kill_9_then_same_command_resumes_bit_identically(tmp_path):
    reference, victim = str(tmp_path / "reference"), str(tmp_path / "victim")
    ref = subprocess.Popen([sys.executable, "-m", "vae_jax.main", *ARGS, f"--workdir={reference}"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    during_save = _kill_during_training(victim)
    assert not os.path.exists(os.path.join(victim, "eval.json"))
    assert os.path.exists(os.path.join(victim, "run.lock"))  # the dead run's lock is left behind
    ckpts = os.path.join(victim, "checkpoints")
    saved = sorted(int(e) for e in os.listdir(ckpts) if e.isdigit())
    if not during_save:
        # Make the kill-during-save case certain: what an interrupted orbax save leaves behind.
        partial = os.path.join(ckpts, f"{saved[-1] + 1}.orbax-checkpoint-tmp")
        os.makedirs(os.path.join(partial, "default.orbax-checkpoint-tmp"))
        open(os.path.join(partial, "default.orbax-checkpoint-tmp", "_METADATA"), "w").write('{"tru')

    r = run_cli([*ARGS, f"--workdir={victim}"])  # the same command again
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"resumed from checkpoint at epoch {saved[-1]}" in r.stdout, r.stdout
    assert "taking over the lock of a run that is no longer alive" in r.stdout
    assert ref.wait(timeout=300) == 0, ref.stdout.read()[-2000:]

    (ref_rows, ref_eval), (rows, final) = learning_metrics(reference), learning_metrics(victim)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))  # no epoch lost or duplicated
    assert rows == ref_rows  # bit-identical: exact float equality of every logged metric
    assert final == ref_eval
    assert not os.path.exists(os.path.join(victim, "run.lock"))
