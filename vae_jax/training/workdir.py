"""Workdir safety: one run per workdir, checked before any training starts.

``claim(workdir, config, data_meta)`` (used by ``run_meta.open_workdir``) does, in order:

1. **write probe** – creates the directory and writes, fsyncs and deletes a small file, so a
   read-only or missing mount fails now and not at the first checkpoint;
2. **lock** – ``<workdir>/run.lock`` held with ``fcntl.flock`` for the whole run. The kernel drops
   the lock when its process dies (``kill -9`` included), so a lock file left by a dead run is
   taken over without asking; a live holder makes the second run refuse;
3. **same run?** – a workdir whose ``config.json`` differs from the new config (ignoring
   ``RESUMABLE_FIELDS``, which may change between a run and its resumption) or whose recorded data
   fingerprint differs is refused unless the mismatch policy says ``overwrite`` (delete the old
   run's files) or ``resume`` (continue from its checkpoint with the new config).

Anything that fails raises ``WorkdirError`` (one line naming the path and what to do) and leaves
the workdir as it was. ``check_free_space`` is called once the size of a checkpoint is known.

``hold(workdir)`` is steps 1 and 2 alone, for the modes that only read a trained run and add
files to it (evaluate, interpolate, ...). ``claim_all`` claims the workdirs of a vmapped sweep group
together: all are locked before any is checked, so one in use leaves every one of them as it was.
"""
from __future__ import annotations

from vae_jax.errors import WorkdirError  # noqa: F401  (raised here; re-exported)
import contextlib
import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
import sys

LOCK_FILE = "run.lock"
ERROR_LOG = "error.log"
MISMATCH_POLICIES = ("refuse", "overwrite", "resume")
# Fields that may differ between a run and the command that resumes it: they do not change what
# is trained up to a given epoch (how long, how often to log/evaluate/save, where the data lives –
# the data itself is compared by its fingerprint).
RESUMABLE_FIELDS = ("train.epochs", "train.progress", "train.tensorboard", "train.eval_every", "train.unroll",
                    "train.checkpoint_every", "train.eval_batch_size", "report", "data.dir",
                    "tasks", "eval", "train.evaluate_after")  # settings of what runs after training

# Set from the command line (``--on_config_mismatch``); library callers may set it too.
on_config_mismatch = "refuse"


def set_mismatch_policy(policy: str) -> None:
    global on_config_mismatch
    if policy not in MISMATCH_POLICIES:
        raise WorkdirError(f"--on_config_mismatch: {policy!r} is not one of {list(MISMATCH_POLICIES)}")
    on_config_mismatch = policy


# ---------------------------------------------------------------------------- write probe
def probe_writable(workdir: str) -> None:
    """Creates ``workdir`` and proves a file can be written, synced and removed there."""
    probe = os.path.join(workdir, f".write_probe.{os.getpid()}")
    try:
        os.makedirs(workdir, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise WorkdirError(f"workdir {workdir} is not writable ({e.strerror or e}); "
                           "choose another --workdir or fix its permissions/space") from e
    finally:
        with contextlib.suppress(OSError):
            os.remove(probe)


def check_free_space(workdir: str, bytes_per_checkpoint: int, checkpoints_kept: int) -> None:
    """Refuses to start when the disk cannot hold the checkpoints this run will keep (plus the one
    being written and a margin for logs and the report)."""
    need = bytes_per_checkpoint * (checkpoints_kept + 1) + 64 * 2**20
    free = shutil.disk_usage(workdir).free
    if free < need:
        raise WorkdirError(f"workdir {workdir}: only {free / 2**20:.0f} MiB free, this run needs about "
                           f"{need / 2**20:.0f} MiB ({checkpoints_kept}+1 checkpoints of "
                           f"{bytes_per_checkpoint / 2**20:.1f} MiB + 64 MiB); free space or choose "
                           "another --workdir")


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC/EDQUOT anywhere in the exception chain (orbax/tensorstore report it as a ValueError
    whose text holds the OS message)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(m in str(exc) for m in (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# ---------------------------------------------------------------------------- lock
def _holder(path: str) -> str:
    try:
        info = json.load(open(path))
        return f"pid {info['pid']} on {info['host']} since {info['started']}"
    except (OSError, ValueError, KeyError):
        return "another process"


@contextlib.contextmanager
def lock(workdir: str):
    """Holds ``<workdir>/run.lock`` (flock) while the body runs; refuses when a live run holds it."""
    path = os.path.join(workdir, LOCK_FILE)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WorkdirError(f"workdir {workdir} is in use by {_holder(path)} (lock file {path}); "
                               "wait for that run to finish or choose another --workdir") from None
        # A releasing run unlinks the file after unlocking: if we locked an unlinked inode, retry.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    stale = os.read(fd, 4096)
    if stale:
        print(f"taking over the lock of a run that is no longer alive ({_holder(path)})", flush=True)
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"), "command": sys.argv}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---------------------------------------------------------------------------- same run?
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _resumable(field: str) -> bool:
    return any(field == f or field.startswith(f + ".") for f in RESUMABLE_FIELDS)


def config_differences(old: dict, new: dict) -> list[str]:
    """Fields (dotted) set in both configs whose values differ, ignoring RESUMABLE_FIELDS. A field
    present on one side only comes from a code version that added or removed it, not from the
    user, so it is not compared."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) & set(b) if not _resumable(k) and a[k] != b[k])


def _describe(field, old, new) -> str:
    return f"{field}: {_flatten(old)[field]!r} -> {_flatten(new)[field]!r}"


def run_outputs(workdir: str) -> list[str]:
    """Entries of ``workdir`` belonging to an earlier run (everything but the lock and error log)."""
    return sorted(e for e in os.listdir(workdir) if e not in (LOCK_FILE, ERROR_LOG)
                  and not e.startswith(".write_probe."))


def check_same_run(workdir: str, new_config: dict, data_meta: dict, policy: str) -> None:
    """Refuses (policy 'refuse') a workdir holding a run with another config or other data;
    'overwrite' deletes that run's files; 'resume' keeps them and continues with the new config."""
    cfg_path = os.path.join(workdir, "config.json")
    if not os.path.exists(cfg_path):
        return
    try:
        old_config = json.load(open(cfg_path))
    except (OSError, ValueError) as e:
        raise WorkdirError(f"{cfg_path} cannot be read ({e}); run with --on_config_mismatch=overwrite "
                           "to start afresh") from e
    diffs = [_describe(f, old_config, new_config) for f in config_differences(old_config, new_config)]
    meta_path = os.path.join(workdir, "run_meta.json")
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        old_fp = json.load(open(meta_path))["data"].get("fingerprint")
        if old_fp and data_meta.get("fingerprint") and old_fp != data_meta["fingerprint"]:
            diffs.append(f"data fingerprint: {old_fp} -> {data_meta['fingerprint']}")
    if not diffs:
        return
    if policy == "resume":
        print(f"workdir {workdir}: resuming with a changed config ({'; '.join(diffs)})", flush=True)
        return
    if policy == "overwrite":
        print(f"workdir {workdir}: deleting the earlier run ({'; '.join(diffs)})", flush=True)
        for entry in run_outputs(workdir):
            p = os.path.join(workdir, entry)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
        return
    shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
    raise WorkdirError(f"workdir {workdir} holds a run with a different config ({shown}); use another "
                       "--workdir, or --on_config_mismatch=resume to continue it with the new config, "
                       "or --on_config_mismatch=overwrite to delete it")


# Workdirs this process holds through hold(). A claim inside a hold of the same workdir reuses the
# lock: inpaint trains the VAE it then uses, colorize claims the workdir its mode already holds.
# lock() alone does not register, so a second lock() in this process still refuses.
_held: set[str] = set()


@contextlib.contextmanager
def hold(workdir: str):
    """Write probe and lock, no same-run check and nothing written; the lock is held until the body
    exits. In a multi-host run (jax.distributed) process 0 owns the workdir; the others only probe."""
    import jax

    probe_writable(workdir)
    key = os.path.realpath(workdir)
    if key in _held or jax.process_index() != 0:
        yield workdir
        return
    with lock(workdir):
        _held.add(key)
        try:
            yield workdir
        finally:
            _held.discard(key)


@contextlib.contextmanager
def claim_all(workdirs, new_configs, data_meta: dict, policy: str | None = None):
    """claim() of several workdirs (one config each): every lock is taken before the first same-run
    check, so a workdir in use refuses them all before 'overwrite' could delete any run's files
    (a refusal releases the locks already taken)."""
    import jax

    with contextlib.ExitStack() as stack:
        for d in workdirs:
            stack.enter_context(hold(d))
        if jax.process_index() == 0:
            for d, c in zip(workdirs, new_configs):
                check_same_run(d, c, data_meta, policy or on_config_mismatch)
        yield list(workdirs)


@contextlib.contextmanager
def claim(workdir: str, new_config: dict, data_meta: dict, policy: str | None = None):
    """Probe, lock and same-run check; the lock is held until the body exits."""
    with claim_all([workdir], [new_config], data_meta, policy):
        yield workdir


def write_error_log(workdir: str, message: str) -> str | None:
    """Appends one timestamped line to ``<workdir>/error.log`` (best effort: the workdir may be the
    thing that is broken). Returns the path written, or None."""
    if not workdir:
        return None
    path = os.path.join(workdir, ERROR_LOG)
    try:
        os.makedirs(workdir, exist_ok=True)
        with open(path, "a") as f:
            f.write(f"{datetime.datetime.now().isoformat(timespec='seconds')} {message}\n")
        return path
    except OSError:
        return None
