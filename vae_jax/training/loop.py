"""The one epoch loop: a run, a vmapped sweep group and a task's conditional model all train here.

A loop trains ``members`` (one for a run, M for a vmapped group) through one jitted epoch function
(``trainer.make_epoch``). Per member it checks for non-finite steps (one NaN policy), writes a
metrics row (``metrics.jsonl`` and TensorBoard), evaluates on the schedule the config sets, and
saves an orbax checkpoint (asynchronously: the next epoch runs while it is written). Nothing is
fetched from the device inside an epoch; each epoch's step metrics come back in one transfer.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.errors import NonFiniteError
import vae_jax.training.checkpointing as checkpointing


def summarize(step_metrics: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over the steps that were applied: under nan_policy='skip' a skipped step's NaN would
    otherwise turn the whole epoch's mean into NaN."""
    finite = np.asarray(step_metrics["finite"]).astype(bool)
    keep = finite if finite.any() else slice(None)
    return {k: float(np.mean(np.asarray(v)[keep])) for k, v in step_metrics.items() if k != "finite"}


def check_finite(step_metrics, first_step: int, policy: str, label: str = "") -> int:
    """Raises NonFiniteError on a non-finite step under policy 'stop'; returns how many there were."""
    finite = np.asarray(step_metrics["finite"]).astype(bool)
    bad = np.flatnonzero(~finite)
    if len(bad) and policy == "stop":
        i = int(bad[0])
        culprit = [k for k, v in step_metrics.items() if k != "finite" and not np.all(np.isfinite(v[i]))]
        what = ", ".join(culprit) if culprit else "gradients"
        raise NonFiniteError(f"{label}non-finite value at step {first_step + i} in {what}; "
                             "stopping and keeping the last good checkpoint")
    return int(len(bad))


class MetricsLog:
    """``metrics.jsonl`` (+ TensorBoard event files) of one run."""

    def __init__(self, workdir: str, resume_epoch: int, tensorboard: bool):
        self.path = os.path.join(workdir, "metrics.jsonl")
        # On resume drop rows written after the checkpoint we restart from: no duplicated epochs.
        if os.path.exists(self.path):
            # A run killed mid-write may leave a partial last line: drop it (that epoch is redone).
            rows = [json.loads(line) for line in open(self.path) if line.strip().endswith("}")]
            with open(self.path, "w") as f:
                for r in rows:
                    if r["epoch"] <= resume_epoch:
                        f.write(json.dumps(r) + "\n")
        self.tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter
            self.tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, row: dict):
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.tb.add_scalar(k, v, row["step"])

    def close(self):
        if self.tb is not None:
            self.tb.close()


@dataclasses.dataclass
class Member:
    """What the loop needs of one trained model besides its state.

    ``evaluate(params) -> dict`` runs on the ``eval_every`` schedule and after the last epoch
    (None: never); ``log`` writes a row (None: rows are printed only); ``ckpt`` saves on the
    ``checkpoint_every`` schedule and after the last epoch."""
    config: object
    ckpt: checkpointing.Checkpointer | None = None
    log: MetricsLog | None = None
    evaluate: Callable | None = None
    label: str = ""
    last_eval: dict = dataclasses.field(default_factory=dict)

    def close(self):
        if self.log is not None:
            self.log.close()
        if self.ckpt is not None:
            self.ckpt.close()


def _member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def run_epochs(epoch_fn, state, images, data_keys, noise_keys, hparams, members: list[Member],
               start_epoch: int, epochs: int, steps_per_epoch: int, *, vmapped: bool = False,
               progress: bool = False, main_metric: str = "neg_elbo", batch_size: int = 0):
    """Trains from ``start_epoch`` to ``epochs``. With ``vmapped`` the state, keys and hparams have
    a leading member axis (one entry per ``members``); otherwise there is one member. Returns the
    final state; each member's last evaluation is in ``member.last_eval``."""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=epochs, initial=start_epoch, desc="train", unit="epoch", dynamic_ncols=True)
    fold = jax.vmap(jax.random.fold_in, in_axes=(0, None)) if vmapped else jax.random.fold_in
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            t0 = time.perf_counter()
            state, step_metrics = epoch_fn(state, images, fold(data_keys, epoch), noise_keys, hparams)
            step_metrics, steps = jax.device_get((step_metrics, state.step))  # the one host sync
            dt = time.perf_counter() - t0
            shown = []
            for i, m in enumerate(members):
                mine = {k: v[i] for k, v in step_metrics.items()} if vmapped else step_metrics
                st = _member(state, i) if vmapped else state
                last_step = int(steps[i] if vmapped else steps)
                check_finite(mine, last_step - steps_per_epoch, m.config.train.nan_policy, m.label)
                row = {"epoch": epoch, "step": last_step, "epoch_time_s": dt,
                       "examples_per_s": len(members) * steps_per_epoch * batch_size / dt}
                if vmapped:
                    row["vmap_members"] = len(members)
                row.update({f"train/{k}": v for k, v in summarize(mine).items()})
                if m.config.train.nan_policy == "skip":
                    row["train/skipped_updates"] = int(jax.device_get(st.skipped))
                last = epoch == epochs
                if m.evaluate is not None and (epoch % m.config.train.eval_every == 0 or last):
                    m.last_eval = m.evaluate(st.params)
                    row.update({f"test/{k}": v for k, v in m.last_eval.items() if np.isscalar(v)})
                if m.log is not None:
                    m.log.write(row)
                if m.ckpt is not None and (epoch % m.config.train.checkpoint_every == 0 or last):
                    m.ckpt.save(epoch, st)
                shown.append(row)
            if f"train/{main_metric}" not in shown[0] and "train/loss" in shown[0]:
                main_metric = "loss"   # objectives without an ELBO (the tasks' regressor) show their loss
            if bar is not None:
                bar.set_postfix({k.replace("/", "_"): f"{v:.4g}" for k, v in shown[0].items()
                                 if k in (f"train/{main_metric}", f"test/{main_metric}")})
                bar.update(1)
            else:
                vals = " ".join(f"{r.get('train/' + main_metric, float('nan')):.4f}" for r in shown)
                test = [r[f"test/{main_metric}"] for r in shown if f"test/{main_metric}" in r]
                print(f"{members[0].label}epoch {epoch}/{epochs}: train {main_metric} {vals}"
                      + (f", test {' '.join(f'{t:.4f}' for t in test)}" if test else "")
                      + f" ({shown[0]['examples_per_s']:.0f} ex/s)", flush=True)
    finally:
        if bar is not None:
            bar.close()
        for m in members:
            if m.ckpt is not None:
                m.ckpt.wait()
    return state


def stack(trees):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


member = _member
