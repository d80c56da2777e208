"""Workdir safety: unwritable or full disks, one run per workdir (lock, also held by the post-training
modes), a different run refused."""
import errno
import gc
import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, load_config

from vae_jax import main as main_lib
from vae_jax.tasks import common
import vae_jax.training.checkpointing as checkpointing
import vae_jax.training.run_meta as run_meta
import vae_jax.training.workdir as workdir_lib
from vae_jax.errors import WorkdirError


def _cfg(epochs=1):
    c = load_config("vae_mnist")
    c.train.epochs = epochs
    c.train.tensorboard = False
    c.report.enabled = False
    return c


def _run(cfg, workdir, capsys=None):
    """The CLI's mode runner in-process; returns (exit status or None, stderr lines)."""
    try:
        main_lib.run_mode("train", cfg, str(workdir))
        code = None
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines() if capsys else []
    return code, err


def _saved(workdir):
    d = os.path.join(workdir, "checkpoints")
    return sorted(int(e) for e in os.listdir(d) if e.isdigit()) if os.path.isdir(d) else []


# ---------------------------------------------------------------------------- unwritable
def test_unwritable_workdir_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    workdir = blocker / "run"  # a directory cannot be created under a regular file
    code, err = _run(_cfg(), workdir, capsys)
    assert code == 2 and len(err) == 1
    assert f"workdir {workdir} is not writable" in err[0], err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_workdir_is_refused(tmp_path):
    workdir = tmp_path / "ro"
    workdir.mkdir()
    os.chmod(workdir, 0o500)
    with pytest.raises(WorkdirError, match="is not writable"):
        workdir_lib.probe_writable(str(workdir))


def test_too_little_free_space_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(workdir_lib.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 9, 2**20))
    code, err = _run(_cfg(), tmp_path / "run", capsys)
    assert code == 2 and len(err) == 1 and "only 1 MiB free, this run needs about" in err[0], err
    assert _saved(tmp_path / "run") == []
    assert not os.path.exists(tmp_path / "run" / "metrics.jsonl")


def _fail_save_at(monkeypatch, epoch):
    real = checkpointing.ocp.CheckpointManager.save

    def save(self, step, *a, **k):
        if step == epoch:
            self.wait_until_finished()  # as orbax's save does before it writes
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, step, *a, **k)

    monkeypatch.setattr(checkpointing.ocp.CheckpointManager, "save", save)


def test_failing_save_reports_and_keeps_earlier_checkpoints(tmp_path, capsys, monkeypatch):
    workdir = tmp_path / "run"
    _fail_save_at(monkeypatch, 2)
    code, err = _run(_cfg(epochs=2), workdir, capsys)
    assert code == 2 and len(err) == 1, err
    assert "could not save the checkpoint of epoch 2" in err[0] and "disk full" in err[0], err
    assert "earlier checkpoints [1] are untouched" in err[0], err
    assert _saved(workdir) == [1]
    monkeypatch.undo()
    code, _ = _run(_cfg(epochs=2), workdir, capsys)  # the same command resumes and finishes
    assert code is None and _saved(workdir) == [1, 2]
    assert json.load(open(workdir / "eval.json"))["epoch"] == 2


def _mount_tmpfs(path, size):
    os.makedirs(path)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.slow  # four trainings on a real tmpfs
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # orbax's failed writers
def test_real_full_disk(tmp_path, capsys, monkeypatch):
    """A real 8 MiB tmpfs: refused up front; filled during a run, the save fails cleanly, the
    earlier checkpoint survives, and after freeing space the same command resumes."""
    mnt = tmp_path / "disk"
    if not _mount_tmpfs(mnt, "8m"):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        workdir = mnt / "run"
        code, err = _run(_cfg(epochs=1), workdir, capsys)  # real check: 8 MiB < 64 MiB margin
        assert code == 2 and "MiB free, this run needs about" in err[0], err
        # Pretend the space was there at the start (as if the disk filled up during training).
        monkeypatch.setattr(workdir_lib, "check_free_space", lambda *a: None)
        assert _run(_cfg(epochs=1), workdir, capsys)[0] is None and _saved(workdir) == [1]
        filler = mnt / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * (shutil.disk_usage(mnt).free - 32 * 1024))
        code, err = _run(_cfg(epochs=2), workdir, capsys)
        assert code == 2 and len(err) == 1 and "disk full" in err[0], err
        filler.unlink()
        assert _saved(workdir) == [1]
        code, err = _run(_cfg(epochs=2), workdir, capsys)
        assert code is None and _saved(workdir) == [1, 2], err
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        # orbax's failed writer futures are collected later and logged by asyncio: keep that quiet.
        asyncio_log = logging.getLogger("asyncio")
        level, asyncio_log.level = asyncio_log.level, logging.CRITICAL
        gc.collect()
        asyncio_log.setLevel(level)


# ---------------------------------------------------------------------------- lock
def test_second_run_on_a_locked_workdir_refuses(tmp_path, capsys):
    workdir = tmp_path / "run"
    workdir.mkdir()
    with workdir_lib.lock(str(workdir)):
        code, err = _run(_cfg(), workdir, capsys)
    assert code == 2 and len(err) == 1, err
    assert f"is in use by pid {os.getpid()}" in err[0] and "run.lock" in err[0], err
    assert _saved(workdir) == [] and not os.path.exists(workdir / "config.json")


def test_lock_of_a_killed_process_is_taken_over(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; import vae_jax.training.workdir as w\n"
         "with w.lock(sys.argv[1]):\n print('locked', flush=True); time.sleep(60)", workdir],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirError, match=f"in use by pid {holder.pid} on "):
            with workdir_lib.lock(workdir):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert os.path.exists(os.path.join(workdir, "run.lock"))  # left behind by the dead run
    capsys.readouterr()
    with workdir_lib.lock(workdir) as path:
        assert json.load(open(path))["pid"] == os.getpid()
    assert f"no longer alive (pid {holder.pid} on" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(workdir, "run.lock"))


# ---------------------------------------------------------------------------- same run?
def _record(workdir, cfg, fingerprint=None):
    os.makedirs(workdir, exist_ok=True)
    json.dump(run_meta.config_to_dict(cfg), open(os.path.join(workdir, "config.json"), "w"))
    json.dump({"data": {"fingerprint": fingerprint}}, open(os.path.join(workdir, "run_meta.json"), "w"))
    os.makedirs(os.path.join(workdir, "checkpoints", "1"))


def test_resume_fields_may_change(tmp_path):
    old, new = _cfg(epochs=2), _cfg(epochs=5)
    new.train.progress, new.train.eval_every, new.report.num_images = True, 3, 4
    _record(tmp_path, old)
    workdir_lib.check_same_run(str(tmp_path), run_meta.config_to_dict(new), {}, "refuse")  # no error


def test_different_config_is_refused_with_the_differences(tmp_path, capsys):
    old = _cfg()
    _record(tmp_path, old)
    new = _cfg()
    new.model.latent_dim, new.optim.learning_rate = 4, 0.01
    code, err = _run(new, tmp_path, capsys)
    assert code == 2 and len(err) == 1, err
    assert ("holds a run with a different config (model.latent_dim: 8 -> 4; "
            "optim.learning_rate: 0.001 -> 0.01)") in err[0], err
    assert "--on_config_mismatch=resume" in err[0] and "--on_config_mismatch=overwrite" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["checkpoints", "config.json", "error.log", "run_meta.json"]


def test_different_data_is_refused(tmp_path):
    _record(tmp_path, _cfg(), fingerprint="aaaa")
    with pytest.raises(WorkdirError, match="data fingerprint: aaaa -> bbbb"):
        workdir_lib.check_same_run(str(tmp_path), run_meta.config_to_dict(_cfg()),
                                   {"fingerprint": "bbbb"}, "refuse")


def test_overwrite_deletes_the_old_run_and_resume_keeps_it(tmp_path):
    new = _cfg()
    new.model.latent_dim = 4
    _record(tmp_path / "a", _cfg())
    workdir_lib.check_same_run(str(tmp_path / "a"), run_meta.config_to_dict(new), {}, "resume")
    assert os.path.isdir(tmp_path / "a" / "checkpoints" / "1")
    _record(tmp_path / "b", _cfg())
    workdir_lib.check_same_run(str(tmp_path / "b"), run_meta.config_to_dict(new), {}, "overwrite")
    assert os.listdir(tmp_path / "b") == []


def test_cli_flag_overwrite(tiny_vae_2d_run):
    """--on_config_mismatch=overwrite through the real CLI starts the run afresh (the job trains a
    2-D latent over a stale run of the 8-D config, see conftest.tiny_vae_2d_run)."""
    r = tiny_vae_2d_run
    assert r.returncode == 0, r.stderr[-2000:]
    assert "deleting the earlier run (model.latent_dim: 8 -> 2)" in r.stdout
    assert "stale.png" not in r.files
    assert json.load(open(os.path.join(r.workdir, "config.json")))["model"]["latent_dim"] == 2
    assert r.eval["epoch"] == 1


# ---------------------------------------------------------------------------- post-training modes
def _locked_elsewhere(workdir) -> bool:
    """Whether a fresh lock() on ``workdir`` is refused (held by any process, this one included)."""
    try:
        with workdir_lib.lock(str(workdir)):
            return False
    except WorkdirError:
        return True


def _hold_in_subprocess(workdir):
    """A real process holding the workdir lock until its stdin is closed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; import vae_jax.training.workdir as w\n"
         "with w.lock(sys.argv[1]):\n print('locked', flush=True); sys.stdin.read()", str(workdir)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_post_training_modes_refuse_a_locked_workdir_and_run_after_release(tiny_vae_run, tmp_path, capsys,
                                                                           monkeypatch):
    workdir = tmp_path / "run"
    tiny_vae_run.copy_to(workdir)
    recorded = {f: (workdir / f).read_bytes() for f in ("config.json", "run_meta.json", "eval.json")}
    modes = [m for m in main_lib.MODES if m not in main_lib.CLAIMING_MODES]
    assert {"evaluate", "interpolate", "latents", "inpaint", "colorize"} <= set(modes)
    holder = _hold_in_subprocess(workdir)
    try:
        for mode in modes:
            try:
                main_lib.run_mode(mode, _cfg(), str(workdir))
                code = None
            except SystemExit as e:
                code = e.code
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and len(err) == 1, (mode, err)
            assert f"workdir {workdir} is in use by pid {holder.pid}" in err[0], (mode, err)
    finally:
        holder.stdin.close()
        holder.wait()
    assert not os.path.exists(workdir / "latents.json")

    seen = []
    real_finish = common.finish

    def finish(wd):  # the mode's last writes happen with the lock still held
        seen.append(_locked_elsewhere(wd))
        return real_finish(wd)

    monkeypatch.setattr(common, "finish", finish)
    main_lib.run_mode("latents", _cfg(), str(workdir))
    assert seen == [True]
    assert os.path.exists(workdir / "latents.json")
    assert not os.path.exists(workdir / "run.lock")
    # The run's own records are read, never rewritten.
    assert {f: (workdir / f).read_bytes() for f in recorded} == recorded


def test_claim_inside_a_hold_reuses_its_lock(tmp_path):
    """inpaint trains the VAE it then uses, colorize claims its workdir: inside the mode's hold
    these claims must neither refuse nor release the lock."""
    workdir = str(tmp_path / "run")
    with workdir_lib.hold(workdir):
        with run_meta.open_workdir(workdir, _cfg(), {}):
            assert _locked_elsewhere(workdir)
        assert os.path.exists(os.path.join(workdir, "run.lock")) and _locked_elsewhere(workdir)
    assert not os.path.exists(os.path.join(workdir, "run.lock")) and not _locked_elsewhere(workdir)
