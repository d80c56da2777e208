#!/usr/bin/env bash
# Runbook: IWAE Table 1 (Burda et al. 2015) on one GPU — the 12 runs (1 and 2 stochastic layers x
# VAE and IWAE x k in {1, 5, 50}) on the paper's full 3,280-epoch schedule, then the k = 5000 test
# NLL of each, the table in experiments/iwae_table1/README.md and the time per training step.
#
#   bash scripts/gpu_iwae_table1.sh MNIST_DIR [PARALLEL] [UNROLL]
#
# Batch 20 makes one step latency-bound on a GPU (about 0.1 ms of work), so the runbook
#  - puts UNROLL training steps in each iteration of the epoch's lax.scan (train.unroll; default 10;
#    the numbers are the same as with 1),
#  - trains PARALLEL runs at once on the one card (default 12: all of them), each its own process.
#    The 12 runs differ in objective, k or depth, so no two have the same program and they cannot
#    be vmapped into one; concurrent processes fill the card instead.
# Step 1 times a run alone, step 2 the runs side by side (ms/step per run in the table). Rerunning
# resumes every run from its last checkpoint (checkpoints every 10 epochs) and skips finished cells.
set -euo pipefail
cd "$(dirname "$0")/.."
MNIST=${1:?usage: bash scripts/gpu_iwae_table1.sh MNIST_DIR [PARALLEL] [UNROLL]}
PARALLEL=${2:-12}
UNROLL=${3:-10}
PY=${PYTHON:-python}
OUT=runs/gpu_iwae_table1
mkdir -p "$OUT"
$PY -c "import jax; print('devices:', jax.devices())" | tee "$OUT/devices.txt"

# 1. One run alone: 4 epochs of the 1-layer VAE; ms/step from its metrics (epoch 1 compiles).
for u in 1 "$UNROLL"; do
  W="$OUT/alone_unroll$u"
  $PY -m vae_jax.main --config=configs/iwae_table1.py --workdir="$W" --config.data.dir="$MNIST" \
    --config.train.epochs=4 "--config.optim.stage_epochs=(4,)" --config.train.eval_every=4 \
    --config.train.checkpoint_every=4 --config.train.unroll="$u" --config.train.progress=False \
    --config.report.enabled=False --on_config_mismatch=overwrite > "$W.log" 2>&1
  $PY - "$W" "$u" <<'PY' | tee -a "$OUT/step_times.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if l.strip()]
t = sorted(r["epoch_time_s"] for r in rows[1:])[len(rows[1:]) // 2]
print(f"alone, unroll={sys.argv[2]}: {t:.2f} s/epoch = {1e3 * t / 3000:.3f} ms/step (batch 20, 3000 steps)")
PY
done

# 2. The 12 cells, PARALLEL at a time, full schedule; NLL by k = 5000 on the 10k test images.
time $PY experiments/iwae_table1/run.py --table --data_dir "$MNIST" --parallel "$PARALLEL" \
  --workdir "$OUT/table" --config.train.unroll="$UNROLL"
