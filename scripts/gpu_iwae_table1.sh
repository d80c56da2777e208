#!/usr/bin/env bash
# Runbook: IWAE Table 1 (Burda et al. 2015) on one GPU — the 12 runs (1 and 2 stochastic layers x
# VAE and IWAE x k in {1, 5, 50}) on the paper's full 3,280-epoch schedule, then the k = 5000 test
# NLL of each, the table in experiments/iwae_table1/README.md and the time per training step.
#
#   bash scripts/gpu_iwae_table1.sh MNIST_DIR [PARALLEL] [UNROLL]
#
# Environment: BUDGET=E trains every cell E epochs instead of the full schedule (a first look when
# the GPU time is short); NLL_SUBSET=N evaluates the first N test images (default all 10k); NLL_K
# (default 5000); EXTRA="--config.<field>=<value> ..." is passed to every training; TABLE_OUT (default
# experiments/iwae_table1, whose README gets the table) and OUT (default runs/gpu_iwae_table1: workdirs,
# logs, step_times.txt) say where things go.
#
# Batch 20 makes one step latency-bound on a GPU (about 0.1 ms of work), so the runbook
#  - puts UNROLL training steps in each iteration of the epoch's lax.scan (train.unroll; default 10;
#    the numbers are the same as with 1),
#  - trains PARALLEL runs at once on the one card (default 10: all of them), each its own process.
#    The 12 cells are 10 runs (at k = 1 the VAE and IWAE rows are the same ELBO run); they differ
#    in objective, k or depth, so no two have the same program and they cannot be vmapped into one;
#    concurrent processes fill the card instead.
# Step 1 times a run alone, step 2 the runs side by side (ms/step per run in the table). Rerunning
# resumes every run from its last checkpoint (checkpoints every 10 epochs) and skips finished cells.
set -euo pipefail
cd "$(dirname "$0")/.."
MNIST=${1:?usage: bash scripts/gpu_iwae_table1.sh MNIST_DIR [PARALLEL] [UNROLL]}
PARALLEL=${2:-10}
UNROLL=${3:-10}
PY=${PYTHON:-python}
# Several processes share the card: each allocates what it uses instead of JAX's default 75 %.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-runs/gpu_iwae_table1}
mkdir -p "$OUT"
$PY -c "import jax; print('devices:', jax.devices())" | tee "$OUT/devices.txt"

# 1. One run alone: 4 epochs of the 1-layer VAE; ms/step from its metrics (epoch 1 compiles).
for u in 1 "$UNROLL"; do
  W="$OUT/alone_unroll$u"
  $PY -m vae_jax.main --config=configs/iwae_table1.py --workdir="$W" --config.data.dir="$MNIST" \
    --config.train.epochs=4 "--config.optim.stage_epochs=(4,)" --config.train.eval_every=4 \
    --config.train.checkpoint_every=4 --config.train.unroll="$u" --config.train.progress=False \
    --config.report.enabled=False --on_config_mismatch=overwrite ${EXTRA:-} > "$W.log" 2>&1
  $PY - "$W" "$u" <<'PY' | tee -a "$OUT/step_times.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if l.strip()][1:]  # epoch 1 compiles
r = sorted(rows, key=lambda r: r["epoch_time_s"])[len(rows) // 2]
steps = r["step"] // r["epoch"]
print(f"alone, unroll={sys.argv[2]}: {r['epoch_time_s']:.2f} s/epoch = "
      f"{1e3 * r['epoch_time_s'] / steps:.3f} ms/step (batch 20, {steps} steps/epoch)")
PY
done

# 2. The 12 cells, PARALLEL at a time, full schedule; NLL by k = 5000 on the 10k test images.
# shellcheck disable=SC2086  # EXTRA holds several flags
time $PY experiments/iwae_table1/run.py --table --data_dir "$MNIST" --parallel "$PARALLEL" \
  --workdir "$OUT/table" --out "${TABLE_OUT:-experiments/iwae_table1}" --budget_epochs "${BUDGET:-0}" --nll_subset "${NLL_SUBSET:-0}" \
  --nll_k "${NLL_K:-5000}" --config.train.unroll="$UNROLL" --config.train.progress=False ${EXTRA:-}
