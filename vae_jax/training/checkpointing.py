"""Orbax checkpoints of the train state, one per saved epoch. Orbax writes each step into a
temporary directory and renames it when complete, so a kill during a save leaves the previous
checkpoints readable and no partial one visible. Saves are asynchronous (the arrays are copied to
the host, then written while the next epoch trains); ``wait`` blocks until the last one is on disk,
and an error of a background write is raised by the next ``save`` or ``wait``."""
from __future__ import annotations

import contextlib
import os

import jax
import orbax.checkpoint as ocp

from vae_jax.errors import WorkdirError


def nbytes(state) -> int:
    """Bytes of one checkpoint's arrays (params, optimizer state, counters)."""
    return int(sum(x.nbytes for x in jax.tree.leaves(_arrays(state)) if hasattr(x, "nbytes")))


def _arrays(state):
    return {"params": state.params, "opt_state": state.opt_state, "step": state.step,
            "skipped": state.skipped}


class Checkpointer:
    def __init__(self, directory: str, max_to_keep: int = 2, asynchronous: bool = True, local: bool = False):
        """``local``: used by this process alone (reading a trained run back); otherwise, in a
        multi-process run, every process calls each method together and orbax coordinates them."""
        self.directory = os.path.abspath(directory)
        self.max_to_keep = max_to_keep
        alone = {"create": True}
        if local and jax.process_count() > 1:  # orbax: no create=True with active_processes
            me = jax.process_index()
            alone = {"create": False, "multiprocessing_options": ocp.options.MultiprocessingOptions(
                primary_host=me, active_processes={me})}
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                               enable_async_checkpointing=asynchronous, **alone)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_epoch(self):
        return self.manager.latest_step()

    def save(self, epoch: int, state) -> None:
        self._guard(epoch, lambda: self.manager.save(epoch, args=ocp.args.StandardSave(_arrays(state))))

    def wait(self) -> None:
        """Blocks until every started save is on disk."""
        self._guard(self.manager.latest_step(), self.manager.wait_until_finished)

    def _guard(self, epoch, action) -> None:
        try:
            action()
        except Exception as e:  # disk full, quota, permissions, vanished mount, ...
            from vae_jax.training.workdir import is_disk_full
            with contextlib.suppress(Exception):
                self.manager.reload()
            kept = [int(s) for s in self.manager.all_steps() if s != epoch]
            raise WorkdirError(f"could not save the checkpoint of epoch {epoch} in {self.directory} "
                               f"({'disk full: ' if is_disk_full(e) else ''}{type(e).__name__}: {e}); "
                               f"earlier checkpoints {kept} are untouched, rerun the same command to "
                               "resume from the latest once the problem is fixed") from e

    def restore_latest(self, state):
        """Returns (state, epoch) from the newest checkpoint, or None when there is none."""
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _arrays(state))
        # Newest first; a checkpoint that cannot be read (damaged by hand or by the disk: orbax's
        # atomic rename means a killed save never leaves one) is reported and the one before tried.
        # None readable (e.g. a model of another shape) is an error, not a silent fresh start.
        steps, error = sorted(self.manager.all_steps(), reverse=True), None
        for epoch in steps:
            try:
                arrays = self.manager.restore(epoch, args=ocp.args.StandardRestore(target))
            except Exception as e:
                error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}" if str(e) else type(e).__name__
                print(f"warning: checkpoint {epoch} in {self.directory} cannot be read ({error})", flush=True)
                continue
            return state.replace(**arrays), int(epoch)
        if steps:
            raise WorkdirError(f"no checkpoint in {self.directory} can be read (epochs {steps}; last error "
                               f"{error}); delete that directory to start afresh or use another --workdir")
        return None

    def restore_params(self, state):
        restored = self.restore_latest(state)
        if restored is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return restored[0].params

    def close(self):
        self.wait()
        self.manager.close()
