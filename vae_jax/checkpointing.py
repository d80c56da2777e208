"""Orbax checkpoints of the train state, one per saved epoch. Orbax writes each step into a
temporary directory and renames it when complete, so a kill during a save leaves the previous
checkpoints readable and no partial one visible."""
from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


def _arrays(state):
    return {"params": state.params, "opt_state": state.opt_state, "step": state.step,
            "skipped": state.skipped}


class Checkpointer:
    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_epoch(self):
        return self.manager.latest_step()

    def save(self, epoch: int, state) -> None:
        self.manager.save(epoch, args=ocp.args.StandardSave(_arrays(state)))
        self.manager.wait_until_finished()

    def restore_latest(self, state):
        """Returns (state, epoch) from the newest checkpoint, or None when there is none."""
        epoch = self.manager.latest_step()
        if epoch is None:
            return None
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _arrays(state))
        arrays = self.manager.restore(epoch, args=ocp.args.StandardRestore(target))
        return state.replace(**arrays), int(epoch)

    def restore_params(self, state):
        restored = self.restore_latest(state)
        if restored is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return restored[0].params

    def close(self):
        self.manager.close()
