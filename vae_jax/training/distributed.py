"""Several processes, one run: JAX's multi-controller runtime (``jax.distributed``).

Every process runs the same command. With ``VAE_JAX_DISTRIBUTED=1`` the CLIs call
``maybe_initialize_distributed()`` first; ``jax.devices()`` is then the devices of all processes and
the data-parallel trainer spans them (training/parallel.py). On CPU the processes exchange
gradients through Gloo over TCP (``jax_cpu_collectives_implementation``), so N processes on one
machine form one N-device mesh; on GPU/TPU the backend's own collectives are used.

Environment (each problem is one line naming the variable, exit status 2):

=============================  =================================================================
``VAE_JAX_DISTRIBUTED=1``      turn it on (unset or ``0``: one process; nothing here runs)
``VAE_JAX_COORDINATOR``        ``host:port`` of process 0 (any free port); default
                               ``$JAX_COORDINATOR_ADDRESS``, else JAX's cluster detection
                               (SLURM, Open MPI, Cloud TPU, Kubernetes) finds it
``VAE_JAX_NUM_PROCESSES``      N, the number of processes (detected on those clusters)
``VAE_JAX_PROCESS_ID``         this process, 0..N-1 (detected on those clusters)
``VAE_JAX_INIT_TIMEOUT``       seconds to wait for all N processes to join (default 300, JAX's)
``VAE_JAX_HEARTBEAT_TIMEOUT``  seconds without a heartbeat after which JAX declares a process dead
                               (default 100, JAX's)
=============================  =================================================================

Failures of the group end every process with exit status 4 (``EXIT_DISTRIBUTED``) and one line:
the group did not form within the init timeout (wrong address, wrong N, a process not started),
or a process was lost mid-run (``lost_process``: a collective fails when a peer's sockets close;
the process exits at once, since ``jax.distributed``'s shutdown would wait for the lost peer).
Any other failure (a config error, a refused workdir, ...) prints its own line and goes through
``exit_together``: processes that all fail meet at a barrier and leave together; one that fails
alone leaves after a short wait, which breaks its peers' next collective, and they stop too.
The last complete checkpoint stays readable (orbax commits a checkpoint only when every process
has written its part). When process 0, which hosts JAX's coordination service, dies, JAX's
runtime may end the others itself at once with its own message ("... the leader task was
preempted/died ..."); a process that is not inside a collective when a peer dies is ended by JAX
after the heartbeat timeout ("tasks are unhealthy"): those bound how long a survivor can hang.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import threading
import time
import traceback

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from vae_jax.errors import WorkdirError
import vae_jax.training.run_meta as run_meta

EXIT_DISTRIBUTED = 4


class EnvError(ValueError):
    """A ``VAE_JAX_*`` variable is wrong; the message names it."""


def _int_env(env, name: str, low: int, default=None):
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvError(f"{name}: {raw!r} is not an integer") from None
    if value < low:
        raise EnvError(f"{name}: {value} must be >= {low}")
    return value


def settings_from_env(env=os.environ) -> dict | None:
    """The arguments of ``jax.distributed.initialize`` the environment asks for, checked; None when
    ``VAE_JAX_DISTRIBUTED`` is off. Missing values stay None for JAX's cluster detection."""
    flag = env.get("VAE_JAX_DISTRIBUTED", "")
    if flag in ("", "0", "false"):
        return None
    if flag not in ("1", "true"):
        raise EnvError(f"VAE_JAX_DISTRIBUTED: {flag!r} is not one of '1', 'true', '0', 'false'")
    address = env.get("VAE_JAX_COORDINATOR") or env.get("JAX_COORDINATOR_ADDRESS") or None
    name = "VAE_JAX_COORDINATOR" if env.get("VAE_JAX_COORDINATOR") else "JAX_COORDINATOR_ADDRESS"
    if address is not None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise EnvError(f"{name}: {address!r} is not host:port (e.g. 10.0.0.1:12345)")
        try:
            socket.getaddrinfo(host.strip("[]"), int(port))
        except OSError as e:
            raise EnvError(f"{name}: host {host!r} cannot be resolved ({e.strerror or e})") from None
    n = _int_env(env, "VAE_JAX_NUM_PROCESSES", 1)
    pid = _int_env(env, "VAE_JAX_PROCESS_ID", 0)
    if (n is None) != (pid is None):
        given, missing = ("VAE_JAX_NUM_PROCESSES", "VAE_JAX_PROCESS_ID")[::1 if pid is None else -1]
        raise EnvError(f"{missing}: required with {given} (set both, or neither on a cluster JAX detects)")
    if n is not None and pid >= n:
        raise EnvError(f"VAE_JAX_PROCESS_ID: {pid} is not below VAE_JAX_NUM_PROCESSES={n} (ids are 0..N-1)")
    if n is not None and address is None:
        raise EnvError("VAE_JAX_COORDINATOR: required with VAE_JAX_NUM_PROCESSES/VAE_JAX_PROCESS_ID "
                       "(host:port of process 0, e.g. 127.0.0.1:12345)")
    return {"coordinator_address": address, "num_processes": n, "process_id": pid,
            "initialization_timeout": _int_env(env, "VAE_JAX_INIT_TIMEOUT", 1, 300),
            "heartbeat_timeout_seconds": _int_env(env, "VAE_JAX_HEARTBEAT_TIMEOUT", 1, 100)}


def maybe_initialize_distributed(env=os.environ) -> bool:
    """Joins the process group the environment describes (``VAE_JAX_DISTRIBUTED=1``); False when
    it is off. Called by the CLIs before anything touches a device; a problem is one line on
    stderr and exit status 2 (bad variable) or 4 (the group did not form)."""
    try:
        s = settings_from_env(env)
    except EnvError as e:
        _die(str(e), 2)
    if s is None:
        return False
    if not env.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        # Cross-process collectives on CPU: jax 0.10's default, explicit because without them a
        # group of CPU processes cannot run one computation.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    where = s["coordinator_address"] or "the address JAX detects"
    # JAX aborts the process (C++ CHECK, a screenful) when the group is incomplete at its own
    # deadline; this watchdog ends it first, a little earlier, with one line.
    wait = s["initialization_timeout"]
    s = dict(s, initialization_timeout=wait + 5)
    joined = threading.Event()
    threading.Thread(target=_watch_init, args=(s, wait, joined), daemon=True).start()
    try:
        jax.distributed.initialize(**s)
    except (ValueError, TypeError, RuntimeError) as e:
        if "coordinator_address should be defined" in str(e):
            _die("VAE_JAX_DISTRIBUTED=1: no coordinator: set VAE_JAX_COORDINATOR=host:port, "
                 "VAE_JAX_NUM_PROCESSES and VAE_JAX_PROCESS_ID (or run under SLURM / Open MPI / "
                 "Cloud TPU, where JAX detects them)", 2)
        _die(f"jax.distributed.initialize at {where}: {_one_line(e)}", EXIT_DISTRIBUTED)
    finally:
        joined.set()
    n, want = jax.process_count(), s["num_processes"]
    if want is not None and n != want:
        _die(f"VAE_JAX_NUM_PROCESSES: {want}, but the group at {where} has {n} processes; give every "
             "process the same value", 2)
    print(f"distributed: process {jax.process_index()} of {n}, {jax.local_device_count()} local / "
          f"{jax.device_count()} devices, coordinator {where}", flush=True)
    return True


def _watch_init(s, wait: float, joined: threading.Event):
    """Ends the process with one line if the group has not formed after ``wait`` seconds; whether
    the coordinator ever answered (probed meanwhile) tells a wrong address from a missing process."""
    n, pid, address = s["num_processes"], s["process_id"], s["coordinator_address"]
    deadline, answered = time.monotonic() + wait, False
    while not joined.wait(0.5) and time.monotonic() < deadline:
        if address and not answered:
            host, _, port = address.rpartition(":")
            with contextlib.suppress(OSError):
                socket.create_connection((host.strip("[]"), int(port)), timeout=1).close()
                answered = True
    if joined.is_set():
        return
    head = f"distributed run: process {pid} of {n}" if n else "distributed run"
    if address and not answered:
        _die(f"{head}: nothing answered at VAE_JAX_COORDINATOR={address} within {wait} s "
             "(VAE_JAX_INIT_TIMEOUT); check the address and that process 0 was started", EXIT_DISTRIBUTED)
    every = f"all VAE_JAX_NUM_PROCESSES={n} processes" if n else "all processes"
    _die(f"{head}: the group at {address or 'the detected coordinator'} was not complete after {wait} s "
         f"(VAE_JAX_INIT_TIMEOUT); check that {every} were started, each with its own "
         "VAE_JAX_PROCESS_ID and the same coordinator", EXIT_DISTRIBUTED)


# ---------------------------------------------------------------------------- while running
def is_primary() -> bool:
    """Process 0 writes the run's files (config, metrics, eval.json, report); every process
    takes part in the computation and the (collective) checkpoint saves."""
    return jax.process_index() == 0


def _one_line(e: BaseException) -> str:
    text = " ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())
    return f"{type(e).__name__}: {text[:400]}"


def _die(message: str, status: int):
    """One line on stderr, then exit at once: no atexit handlers (jax.distributed's shutdown
    barrier would wait for peers that may never arrive)."""
    sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    os._exit(status)


_LOST_MARKERS = ("gloo", "connection closed by peer", "connection reset by peer", "socket closed")


def is_lost_peer(e: BaseException) -> bool:
    """Whether ``e`` is a collective that failed because a peer process went away."""
    return jax.process_count() > 1 and any(m in str(e).lower() for m in _LOST_MARKERS)


def lost_process(e: BaseException):
    """Ends this process with one line naming the process that was lost (with two processes, the
    other one; with more, the peer address the collective reports)."""
    n, me = jax.process_count(), jax.process_index()
    peer = re.search(r"peer \[?([^\]\s]+)\]?(:\d+)?", str(e))
    if n == 2:
        who = f"process {1 - me} of 2"
    else:
        who = f"a process of {n} (peer {peer.group(1) + (peer.group(2) or '')})" if peer else f"a process of {n}"
    _die(f"distributed run: lost {who}; process {me} stops too (collective failed: {_one_line(e)[:200]}); "
         "rerun the same command on every process to resume from the last checkpoint", EXIT_DISTRIBUTED)


def block_or_exit(tree):
    """Waits for ``tree`` (an epoch's result); a collective broken by a lost peer ends the process."""
    try:
        return jax.block_until_ready(tree)
    except Exception as e:
        if is_lost_peer(e):
            lost_process(e)
        raise


@contextlib.contextmanager
def exit_together(wait_s: float = 30.0):
    """Around a CLI mode in a multi-process run: a failure (its one line already printed, or a
    traceback) ends the process through ``_leave``. One process: nothing changes."""
    if not jax.distributed.is_initialized():
        yield
        return
    try:
        yield
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not status:
            raise
        _leave(status, wait_s)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        _leave(130, wait_s)
    except BaseException as e:
        if is_lost_peer(e):
            lost_process(e)
        traceback.print_exc()
        print(f"error: process {jax.process_index()}: {_one_line(e)}", file=sys.stderr)
        _leave(1, wait_s)


def _leave(status: int, wait_s: float):
    """Exits with ``status``. When every process fails alike (a config error each one finds) they
    meet at a barrier of JAX's coordination service and leave through ``jax.distributed``'s normal
    shutdown together: process 0, which hosts the service, must not go first, or JAX's runtime
    aborts the others mid-way. A process that fails alone does not wait for peers that are blocked
    in a collective waiting for it: after ``wait_s`` it exits at once, which breaks their
    collective, and they stop too (``lost_process``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        ocp.multihost.get_barrier_sync_fn()(key="vae_jax_failed", timeout_ms=int(wait_s * 1000))
    except Exception:
        os._exit(status)
    sys.exit(status)


@contextlib.contextmanager
def open_workdir(workdir: str, config, data_meta: dict):
    """``run_meta.open_workdir`` by process 0 alone (lock, same-run check, config.json,
    run_meta.json); the others wait for its verdict, so a refusal stops every process before
    training. All processes must see ``workdir`` (a shared filesystem across machines): orbax
    writes each process's part of a checkpoint there."""
    if jax.process_count() == 1:
        with run_meta.open_workdir(workdir, config, data_meta):
            yield workdir
        return
    with contextlib.ExitStack() as stack:
        ok = 1
        if is_primary():
            try:
                stack.enter_context(run_meta.open_workdir(workdir, config, data_meta))
                run_meta.update_run_meta(workdir, {"processes": jax.process_count()})
            except BaseException:
                multihost_utils.broadcast_one_to_all(np.int32(0))
                raise
        ok = int(multihost_utils.broadcast_one_to_all(np.int32(ok)))
        if not ok:
            raise WorkdirError(f"workdir {workdir}: process 0 refused it (its error says why); "
                               "nothing was trained")
        yield workdir

