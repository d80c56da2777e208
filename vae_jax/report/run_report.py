"""The report of a trained run, written by the CLI (and the sweep runner) after training."""
from __future__ import annotations

import vae_jax.report.html as html
import vae_jax.training.runs as runs
import vae_jax.training.trainer as trainer


def write(workdir: str) -> str | None:
    """Grids from the restored model, curves, eval.json -> ``workdir/report.html``; None when the
    run's config has ``report.enabled=False``."""
    run = runs.load_run(workdir)
    if not run.config.report.enabled:
        return None
    key = trainer.split_keys(run.config.seed)["eval"]
    return html.write_run_report(workdir, run.config, run.model, run.params, run.ds, key)
