"""Several processes, one run, on this machine's CPU: JAX's multi-controller runtime
(``jax.distributed``) with Gloo collectives over 127.0.0.1 (training/distributed.py,
training/parallel.py, scripts/launch_local.py).

Every test starts real processes with bounded timeouts; output goes to files (a pipe that nobody
reads would block a long run).
"""
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
import vae_jax.training.distributed as distributed

_spec = importlib.util.spec_from_file_location("launch_local", os.path.join(ROOT, "scripts", "launch_local.py"))
launch_local = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch_local)

CONFIG = "--config=configs/vae_mnist.py:tiny"
QUIET = ["--config.train.tensorboard=False", "--config.report.enabled=False"]
MAIN = [sys.executable, "-m", "vae_jax.main", CONFIG, *QUIET]
LONG = 240  # s: a bound for a whole phase on a busy 2-core machine


def _env(**extra) -> dict:
    """This environment without anything that would make a process join a group by itself."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAE_JAX_", "SLURM_", "OMPI_", "PMI_", "TPU_")) and k not in (
               "JAX_COORDINATOR_ADDRESS", "XLA_FLAGS")}
    env.update(PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


_started = []


@pytest.fixture(autouse=True)
def _no_leftovers():
    """A failed test leaves none of its processes (or a launcher's children) running."""
    yield
    while _started:
        _started.pop().kill()


class Proc:
    """A process (in its own session, so a launcher goes with its children) whose stdout/stderr
    go to files in ``folder``."""

    def __init__(self, cmd, env, folder, name):
        self.out, self.err = (os.path.join(folder, f"{name}.{s}") for s in ("out", "err"))
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.p = subprocess.Popen(cmd, env=env, stdout=o, stderr=e, cwd=ROOT, start_new_session=True)
        _started.append(self)

    def kill(self):
        """SIGKILL (JAX's preemption notifier catches SIGTERM and carries on) to its process group."""
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait()

    def wait(self, timeout=LONG) -> int:
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.err}: still running after {timeout} s; stderr tail: {self.stderr()[-2000:]}")

    def stdout(self):
        return open(self.out).read()

    def stderr(self):
        return open(self.err).read()

    def error_lines(self):
        return [ln for ln in self.stderr().splitlines() if ln.startswith("error:")]


def _member(i, n, port, workdir, folder, *args, **env):
    return Proc([*MAIN, f"--workdir={workdir}", *args],
                launch_local.process_env(i, n, port, _env(**env)), folder, f"p{i}")


def _rows(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def _close(a, b, rtol):
    for key in ("train/neg_elbo", "train/kl", "train/rec_loss", "test/neg_elbo", "test/kl"):
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, err_msg=key)
    assert a["step"] == b["step"]


# ---------------------------------------------------------------------------- the environment
@pytest.mark.parametrize("env, message", [
    ({"VAE_JAX_DISTRIBUTED": "yes"}, "VAE_JAX_DISTRIBUTED: 'yes' is not one of"),
    ({"VAE_JAX_COORDINATOR": "127.0.0.1"}, "VAE_JAX_COORDINATOR: '127.0.0.1' is not host:port"),
    ({"VAE_JAX_COORDINATOR": "127.0.0.1:70000"}, "VAE_JAX_COORDINATOR: '127.0.0.1:70000' is not host:port"),
    ({"JAX_COORDINATOR_ADDRESS": "no-such-host.invalid:1234"}, "JAX_COORDINATOR_ADDRESS: host 'no-such-host.invalid'"),
    ({"VAE_JAX_NUM_PROCESSES": "2"}, "VAE_JAX_PROCESS_ID: required with VAE_JAX_NUM_PROCESSES"),
    ({"VAE_JAX_NUM_PROCESSES": "2", "VAE_JAX_PROCESS_ID": "0"}, "VAE_JAX_COORDINATOR: required"),
    ({"VAE_JAX_COORDINATOR": "127.0.0.1:1", "VAE_JAX_NUM_PROCESSES": "0", "VAE_JAX_PROCESS_ID": "0"},
     "VAE_JAX_NUM_PROCESSES: 0 must be >= 1"),
    ({"VAE_JAX_COORDINATOR": "127.0.0.1:1", "VAE_JAX_NUM_PROCESSES": "2", "VAE_JAX_PROCESS_ID": "-1"},
     "VAE_JAX_PROCESS_ID: -1 must be >= 0"),
    ({"VAE_JAX_HEARTBEAT_TIMEOUT": "10s"}, "VAE_JAX_HEARTBEAT_TIMEOUT: '10s' is not an integer"),
])
def test_environment_checked_before_joining(env, message):
    with pytest.raises(distributed.EnvError, match=re.escape(message)):
        distributed.settings_from_env(dict(env, VAE_JAX_DISTRIBUTED=env.get("VAE_JAX_DISTRIBUTED", "1")))


def test_environment_to_initialize_arguments():
    assert distributed.settings_from_env({}) is None
    assert distributed.settings_from_env({"VAE_JAX_DISTRIBUTED": "0", "VAE_JAX_COORDINATOR": "x"}) is None
    env = launch_local.process_env(1, 3, 4321, {"VAE_JAX_HEARTBEAT_TIMEOUT": "7"})
    assert distributed.settings_from_env(env) == {
        "coordinator_address": "127.0.0.1:4321", "num_processes": 3, "process_id": 1,
        "initialization_timeout": 300, "heartbeat_timeout_seconds": 7}
    # On a cluster JAX detects (SLURM, Open MPI, Cloud TPU) nothing but the switch is needed.
    assert distributed.settings_from_env({"VAE_JAX_DISTRIBUTED": "1"})["num_processes"] is None


# ---------------------------------------------------------------------------- (a) same numbers
@pytest.mark.slow  # real processes joining over loopback: make test-all (CI)
def test_two_processes_equal_one_process_and_resume(tmp_path):
    """2 processes x 1 CPU device == 1 process x 2 simulated devices, row by row; then one process
    (one device) resumes from the checkpoint the two wrote together and continues the reference."""
    two, ref = str(tmp_path / "two"), str(tmp_path / "ref")
    launcher = Proc([sys.executable, "scripts/launch_local.py", "-n", "2", "--", *MAIN,
                     f"--workdir={two}", "--config.train.epochs=1"],
                    _env(VAE_JAX_INIT_TIMEOUT=LONG, VAE_JAX_HEARTBEAT_TIMEOUT=60), tmp_path, "launcher")
    reference = Proc([*MAIN, f"--workdir={ref}", "--config.train.epochs=2"],
                     _env(XLA_FLAGS="--xla_force_host_platform_device_count=2"), tmp_path, "reference")
    assert launcher.wait() == 0, launcher.stderr()[-3000:]
    assert reference.wait() == 0, reference.stderr()[-3000:]
    out = launcher.stdout()
    assert "data parallel: batch of 64 split over 2 devices of 2 processes" in out
    assert "[1/2] distributed: process 1 of 2" in out
    meta = json.load(open(os.path.join(two, "run_meta.json")))
    assert meta["processes"] == 2 and len(meta["devices"]) == 2
    # Process 0 alone writes the metrics: one row per epoch, not one per process.
    rows, ref_rows = _rows(two), _rows(ref)
    assert [r["epoch"] for r in rows] == [1]
    _close(rows[0], ref_rows[0], rtol=1e-6)
    resume = Proc([*MAIN, f"--workdir={two}", "--config.train.epochs=2"], _env(), tmp_path, "resume")
    assert resume.wait() == 0, resume.stderr()[-3000:]
    assert "resumed from checkpoint at epoch 1 (step 8)" in resume.stdout()
    rows = _rows(two)
    assert [r["epoch"] for r in rows] == [1, 2]
    _close(rows[1], ref_rows[1], rtol=1e-5)  # 1 device vs 2: float reassociation only
    final, ref_final = (json.load(open(os.path.join(d, "eval.json"))) for d in (two, ref))
    np.testing.assert_allclose(final["neg_elbo"], ref_final["neg_elbo"], rtol=1e-5)


# ---------------------------------------------------------------------------- (b) a process dies
@pytest.mark.slow  # real processes joining over loopback: make test-all (CI)
@pytest.mark.parametrize("victim", [1, 0])
def test_lost_process_stops_the_survivor(tmp_path, victim):
    """SIGKILL one of two training processes: the other exits non-zero within a bounded time and
    says which process it lost (process 0 hosts JAX's coordination service: when it dies, JAX's
    runtime ends the survivor itself and its message names the leader task)."""
    port, workdir = launch_local.free_port(), str(tmp_path / "w")
    long_run = ["--config.train.epochs=100000", "--config.train.eval_every=100000",
                "--config.train.checkpoint_every=100000"]
    procs = [_member(i, 2, port, workdir, tmp_path, *long_run, VAE_JAX_INIT_TIMEOUT=LONG,
                     VAE_JAX_HEARTBEAT_TIMEOUT=10) for i in range(2)]
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.monotonic() + LONG
    while not (os.path.exists(metrics) and os.path.getsize(metrics)) and time.monotonic() < deadline:
        assert all(p.p.poll() is None for p in procs), [p.stderr()[-2000:] for p in procs]
        time.sleep(0.2)
    assert os.path.getsize(metrics), "training never started"
    procs[victim].kill()
    t0 = time.monotonic()
    survivor = procs[1 - victim]
    status = survivor.wait(timeout=60)
    took = time.monotonic() - t0
    err = survivor.stderr()
    assert status != 0 and took < 30, (status, took, err[-2000:])
    if victim == 1:
        assert status == 4
        assert "error: distributed run: lost process 1 of 2; process 0 stops too" in err, err[-2000:]
    else:
        assert "lost process 0 of 2" in err or "leader task" in err, err[-2000:]


# ---------------------------------------------------------------------------- (c) (d) refused
def _one_error_line(proc) -> str:
    lines = proc.error_lines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr(), proc.stderr()[-3000:]
    return lines[0]


@pytest.mark.slow  # real processes joining over loopback: make test-all (CI)
def test_wrong_coordinator_or_process_count_fails_fast(tmp_path):
    """All at once (startup is what costs): a malformed address, an id out of range, nobody at the
    address, and a group of 3 of which only 2 start. Each ends with one line, status 2 or 4."""
    nobody, group = launch_local.free_port(), launch_local.free_port()
    w = str(tmp_path / "w")
    cases = {
        "format": (Proc([*MAIN, f"--workdir={w}"], _env(VAE_JAX_DISTRIBUTED=1, VAE_JAX_COORDINATOR="127.0.0.1",
                                                     VAE_JAX_NUM_PROCESSES=2, VAE_JAX_PROCESS_ID=0),
                        tmp_path, "format"), 2, "error: VAE_JAX_COORDINATOR: '127.0.0.1' is not host:port"),
        "id": (_member(2, 2, nobody, w, tmp_path), 2, "error: VAE_JAX_PROCESS_ID: 2 is not below VAE_JAX_NUM_PROCESSES=2"),
        "nobody": (_member(1, 2, nobody, w, tmp_path, VAE_JAX_INIT_TIMEOUT=3), 4,
                   f"nothing answered at VAE_JAX_COORDINATOR=127.0.0.1:{nobody} within 3 s"),
    }
    for i in range(2):  # N=3, but only processes 0 and 1 exist
        proc = Proc([*MAIN, f"--workdir={w}{i}"], launch_local.process_env(i, 3, group, _env(VAE_JAX_INIT_TIMEOUT=5)),
                    tmp_path, f"count{i}")
        cases[f"count{i}"] = (proc, 4, "was not complete after 5 s (VAE_JAX_INIT_TIMEOUT); check that all "
                              "VAE_JAX_NUM_PROCESSES=3 processes were started")
    t0 = time.monotonic()
    for name, (proc, status, message) in cases.items():
        assert proc.wait(timeout=120) == status, (name, proc.stderr()[-3000:])
        assert message in _one_error_line(proc), name
    assert time.monotonic() - t0 < 120
    assert not os.path.exists(os.path.join(w, "metrics.jsonl"))


@pytest.mark.slow  # real processes joining over loopback: make test-all (CI)
def test_bad_input_refused_before_training(tmp_path):
    """A batch the global device count does not divide (train.data_parallel='on'), several processes
    that would each train alone (data_parallel='off'), a workdir process 0 cannot claim, and
    VAE_JAX_DISTRIBUTED=1 with no coordinator are refused before any training, with one line
    naming the field, path or variable (process 1 learns of process 0's refusal from process 0)."""
    (tmp_path / "a_file").write_text("")
    procs = {}
    for case, args in (("batch", ["--config.train.batch_size=63", "--config.train.data_parallel=on"]),
                       ("off", ["--config.train.data_parallel=off"]), ("workdir", [])):
        port, workdir = launch_local.free_port(), tmp_path / ("a_file/run" if case == "workdir" else case)
        procs[case] = [Proc([*MAIN, f"--workdir={workdir}", *args],
                            launch_local.process_env(i, 2, port, _env(VAE_JAX_INIT_TIMEOUT=LONG)),
                            tmp_path, f"{case}{i}") for i in range(2)]
    alone = Proc([*MAIN, f"--workdir={tmp_path / 'alone'}"], _env(VAE_JAX_DISTRIBUTED=1), tmp_path, "alone")
    messages = {"batch": ["error: train.batch_size: 63 is not divisible by the 2 devices of 2 processes that "
                          "train.data_parallel='on' splits it over"] * 2,
                "off": ["error: train.data_parallel: 'off', but this run spans 2 processes"] * 2,
                "workdir": [f"error: workdir {tmp_path}/a_file/run is not writable",
                            f"error: workdir {tmp_path}/a_file/run: process 0 refused it"]}
    for case, pair in procs.items():
        for proc, message in zip(pair, messages[case]):
            assert proc.wait() == 2, proc.stderr()[-3000:]
            assert _one_error_line(proc).startswith(message), case
        assert not os.path.exists(tmp_path / case / "metrics.jsonl")
        assert not os.path.exists(tmp_path / case / "checkpoints")
    assert alone.wait() == 2, alone.stderr()[-3000:]
    assert _one_error_line(alone).startswith("error: VAE_JAX_DISTRIBUTED=1: no coordinator: set VAE_JAX_COORDINATOR")
