"""Session jobs: work several tests read (a tiny CLI training, a batch of CLI calls that must fail),
done once per test session, in the background while other tests run.

A job is a function ``fn(directory) -> result`` declared with ``conftest.job``, which also makes a
session fixture of the same name whose value is the result (pickled, so jobs return plain data).

* Once per session, even under pytest-xdist: a job runs under an exclusive ``flock`` on
  ``<root>/<name>.lock`` and leaves ``<root>/<name>.pickle``; whoever finds the pickle reads it,
  whoever finds the lock held waits for it. ``<root>`` is shared by the workers of one run
  (named after xdist's test-run id).
* In the background: after collection each process starts one thread that runs the jobs its
  selected tests need, one at a time, skipping jobs another process is already running. The
  tests that read jobs run last (conftest reorders them), so they usually find them finished.
"""
from __future__ import annotations

import errno
import fcntl
import os
import pickle
import shutil
import tempfile
import threading
import traceback
import uuid


class Jobs:
    def __init__(self):
        self.specs, self.after = {}, {}
        self.root = None
        self._results = {}
        self._stop = threading.Event()
        self._thread = None

    def define(self, fn, after=()):
        self.specs[fn.__name__], self.after[fn.__name__] = fn, tuple(after)

    def set_root(self, run_id: str | None):
        self.root = os.path.join(tempfile.gettempdir(), f"vae_jax_jobs_{run_id or uuid.uuid4().hex}")

    # ------------------------------------------------------------------ running
    def _path(self, name, ext):
        return os.path.join(self.root, f"{name}.{ext}")

    def _run(self, name, wait: bool) -> bool:
        """Runs ``name`` unless its result exists. Returns False when another process or thread
        is running it and ``wait`` is False."""
        if os.path.exists(self._path(name, "pickle")):
            return True
        os.makedirs(self.root, exist_ok=True)  # only sessions that run jobs make one
        with open(self._path(name, "lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    return False
                raise
            if os.path.exists(self._path(name, "pickle")):  # finished while we waited
                return True
            try:
                for dep in self.after[name]:
                    self.result(dep)
                directory = os.path.join(self.root, name)
                shutil.rmtree(directory, ignore_errors=True)  # a run killed half-way
                os.makedirs(directory)
                out = {"value": self.specs[name](directory)}
            except BaseException:  # noqa: BLE001 - handed to every test that reads this job
                out = {"error": traceback.format_exc()}
            tmp = self._path(name, f"{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                pickle.dump(out, f)
            os.replace(tmp, self._path(name, "pickle"))
            return True

    def result(self, name):
        if name not in self.specs:
            raise KeyError(f"no session job {name!r}; known: {sorted(self.specs)}")
        if name not in self._results:
            self._run(name, wait=True)
            with open(self._path(name, "pickle"), "rb") as f:
                self._results[name] = pickle.load(f)
        out = self._results[name]
        if "error" in out:
            raise RuntimeError(f"session job {name} failed:\n{out['error']}")
        return out["value"]

    def start_in_background(self, names):
        order = []

        def add(n):
            for dep in self.after[n]:
                add(dep)
            if n not in order:
                order.append(n)
        for n in names:
            add(n)

        def work():
            for n in order:
                if self._stop.is_set():
                    return
                self._run(n, wait=False)
        self._thread = threading.Thread(target=work, name="session-jobs", daemon=True)
        self._thread.start()

    def finish(self, kill):
        """Stops the background thread after its current job (``kill``: ends that job's process
        now, for a session whose remaining jobs nobody will read)."""
        self._stop.set()
        if kill is not None:
            kill()
        if self._thread is not None:
            self._thread.join()

    def remove_root(self):
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
