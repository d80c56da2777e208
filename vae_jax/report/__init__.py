"""Reports: plots, image grids and the per-run report.html (called by the CLI, never by the trainer)."""
