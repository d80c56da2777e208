"""What every test file shares: paths, config loading, the CLI runner, caches and session jobs.

Speed (the default ``pytest`` has a 3-minute budget on 2 CPU cores):

* **Caches.** JAX's persistent compilation cache and the classifier cache (``$VAE_JAX_CACHE``)
  live under ``.pytest_cache/vae_jax/``; they are set here, before anything imports jax, through
  environment variables, so the CLI subprocesses use them too (a warm tiny CLI training: ~9 s of
  CPU instead of ~20). ``make clean`` (or deleting .pytest_cache) empties them.
* **Bundled data parsed once per process** (``np.loadtxt`` of the 5,000-digit CSV takes ~0.7 s).
* **Session jobs** (``job``, tests/session_jobs.py): work several tests read, e.g. one tiny CLI
  training whose workdir the CLI, evaluation and task tests all inspect, done once per session
  (also under pytest-xdist) in a background thread while the in-process tests run; the tests that
  read jobs are moved to the end of the session.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid

import pytest

import session_jobs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "configs")


def _cache_dir() -> str:
    d = os.path.join(ROOT, ".pytest_cache", "vae_jax")
    try:
        os.makedirs(d, exist_ok=True)
        return d
    except OSError:  # a read-only checkout: a cache for this session only
        return tempfile.mkdtemp(prefix="vae_jax_test_cache_")


CACHE = _cache_dir()
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(CACHE, "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # default 1 s: tiny programs too
os.environ.setdefault("VAE_JAX_CACHE", CACHE)  # the evaluation's feature classifier, trained once

import vae_jax.data.datasets as _datasets  # noqa: E402  (after the cache variables)
import vae_jax.training.run_meta as run_meta  # noqa: E402

_parse_bundled_file = _datasets._load_bundled


@functools.lru_cache(maxsize=2)
def _parse_bundled(name, path, stamp):
    return _parse_bundled_file(name)


def _load_bundled_once(name):
    """``datasets._load_bundled`` memoized on the file (path, size, mtime); returns copies, so a
    test that edits its arrays cannot change another test's data."""
    path = _datasets.bundled_path()
    stamp = (os.path.getsize(path), os.path.getmtime(path)) if os.path.exists(path) else None
    arrays, meta = _parse_bundled(name, path, stamp)
    return {k: v.copy() for k, v in arrays.items()}, dict(meta)


_datasets._load_bundled = _load_bundled_once


# ---------------------------------------------------------------------------- configs and CLI
def load_config(name: str, arg: str | None = "tiny"):
    """Loads configs/<name>.py the way the CLI does (by path)."""
    spec = importlib.util.spec_from_file_location(f"cfg_{name}", os.path.join(CONFIGS, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


_PROCS: set[subprocess.Popen] = set()  # running subprocesses, ended if the session stops early


def run_process(cmd, cwd=ROOT, timeout=600, env=None) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)``, ended with the session if it stops."""
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _PROCS.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"{cmd[:4]} ran past {timeout}s:\n{err[-2000:]}") from None
    finally:
        _PROCS.discard(p)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def run_cli(args, cwd=ROOT, timeout=600, env=None, module="vae_jax.main") -> subprocess.CompletedProcess:
    """``python -m <module> *args``."""
    return run_process([sys.executable, "-m", module, *args], cwd, timeout, dict(os.environ, **(env or {})))


@dataclasses.dataclass
class CliRun:
    """A finished CLI call and what its workdir held right after it (later tests may add files)."""
    returncode: int
    stdout: str
    stderr: str
    workdir: str
    files: list[str]
    eval: dict | None
    report: str | None

    def copy_to(self, path) -> str:
        """A private copy of the workdir, for a test that adds files to it."""
        return shutil.copytree(self.workdir, str(path), ignore=shutil.ignore_patterns("run.lock"))


def cli_run(workdir: str, args, **kw) -> CliRun:
    r = run_cli([*args, f"--workdir={workdir}"], **kw)

    def read(name, load):
        path = os.path.join(workdir, name)
        return load(open(path)) if os.path.exists(path) else None

    files = sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []
    return CliRun(r.returncode, r.stdout, r.stderr, workdir, files, read("eval.json", json.load),
                  read("report.html", lambda f: f.read()))


# ---------------------------------------------------------------------------- session jobs
JOBS = session_jobs.Jobs()


def job(fn=None, *, after=()):
    """Declares a session job ``fn(directory) -> result`` (tests/session_jobs.py) and returns a
    session fixture of the same name whose value is that result. ``after``: jobs ``fn`` reads."""
    if fn is None:
        return lambda f: job(f, after=after)
    JOBS.define(fn, after)

    @pytest.fixture(scope="session", name=fn.__name__)
    def fixture():
        return JOBS.result(fn.__name__)
    fixture.__doc__ = fn.__doc__
    return fixture


def _jobs_of(item) -> list[str]:
    names = [n for n in item.fixturenames if n in JOBS.specs]
    for m in item.iter_markers("jobs"):
        names += [n for n in m.args if n not in names]
    return names


def _xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config):
    if _xdist_worker(config):
        run_id = config.workerinput["testrunuid"]
    else:
        if config.getoption("numprocesses", None) and config.getoption("testrunuid", None) is None:
            config.option.testrunuid = uuid.uuid4().hex  # xdist hands it to the workers
        run_id = config.getoption("testrunuid", None)
    JOBS.set_root(run_id)


@pytest.hookimpl(trylast=True)  # after -m/-k deselection
def pytest_collection_modifyitems(session, config, items):
    late = [it for it in items if _jobs_of(it)]
    if not late or config.option.collectonly:
        return
    items[:] = [it for it in items if not _jobs_of(it)] + late
    JOBS.start_in_background([n for it in late for n in _jobs_of(it)])


def _kill_subprocesses():
    for p in list(_PROCS):
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)


def pytest_sessionfinish(session, exitstatus):
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldstop
    if _xdist_worker(session.config):  # the other worker may still read the job in flight
        JOBS.finish(kill=_kill_subprocesses if interrupted else None)
        return
    JOBS.finish(kill=_kill_subprocesses)
    if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        JOBS.remove_root()
    elif os.path.isdir(JOBS.root):
        print(f"\nsession job directories kept for inspection: {JOBS.root}")


# ---------------------------------------------------------------------------- shared runs
TINY_VAE = ["--config=configs/vae_mnist.py:tiny"]


@job
def tiny_vae_run(directory) -> CliRun:
    """``configs/vae_mnist.py:tiny`` trained by the CLI (2 epochs on 512 bundled digits)."""
    return cli_run(os.path.join(directory, "vae_mnist"), TINY_VAE)


@job
def tiny_ae_run(directory) -> CliRun:
    """``configs/ae_mnist.py:tiny`` trained by the CLI."""
    return cli_run(os.path.join(directory, "ae_mnist"), ["--config=configs/ae_mnist.py:tiny"])


@job
def tiny_vae_2d_run(directory) -> CliRun:
    """The tiny VAE with a 2-D latent, one epoch, trained by the CLI with
    ``--on_config_mismatch=overwrite`` over a stale run of the 8-D tiny VAE (its config.json,
    run_meta.json, a checkpoint folder and a stray stale.png). One training serves two checks: the
    latents mode on a 2-D latent and the overwrite policy of the CLI (tests/test_workdir.py)."""
    workdir = os.path.join(directory, "vae_2d")
    os.makedirs(os.path.join(workdir, "checkpoints", "1"))
    json.dump(run_meta.config_to_dict(load_config("vae_mnist")), open(os.path.join(workdir, "config.json"), "w"))
    json.dump({"data": {}}, open(os.path.join(workdir, "run_meta.json"), "w"))
    open(os.path.join(workdir, "stale.png"), "wb").write(b"x")
    return cli_run(workdir, TINY_VAE + ["--config.model.latent_dim=2", "--config.train.epochs=1",
                                        "--config.report.enabled=False", "--on_config_mismatch=overwrite"])
