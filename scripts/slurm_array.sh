#!/bin/bash
# A sweep as a SLURM job array: array task i of n trains points i, i+n, i+2n, ... of the sweep
# into the shared sweep folder (one folder per point; a task that is requeued or rerun skips the
# points marked done and resumes the others from their checkpoints). Each task is an independent
# one-process job, not part of a JAX process group.
#
#   sbatch --array=0-7 scripts/slurm_array.sh configs/vae_sweep.py runs/vae_sweep \
#       --config.data.dir=/path/to/mnist
#   # after every task finished (or chain it with --dependency=afterok:<array job id>):
#   python -m vae_jax.sweeps --workdir=runs/vae_sweep collect
#
# Any --array range works (the shard index is the task id minus the range's first id), as long
# as it has no step (0-7, not 0-14:2). WORKDIR must be on a filesystem every node sees.
# Environment: PYTHON (default: python) is the interpreter with vae_jax installed.
#
#SBATCH --job-name=vae_sweep
#SBATCH --output=slurm-%A_%a.out
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
# For GPUs add e.g. "#SBATCH --gres=gpu:1" (and the partition your site uses).
set -euo pipefail

usage="usage: sbatch --array=0-<n-1> scripts/slurm_array.sh CONFIG[:ARG] WORKDIR [--config.field=value ...]"
config=${1:?$usage}
workdir=${2:?$usage}
shift 2
: "${SLURM_ARRAY_TASK_ID:?not inside a SLURM array job; $usage}"
shard=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))/${SLURM_ARRAY_TASK_COUNT:?}

cd "${SLURM_SUBMIT_DIR:-.}"
unset VAE_JAX_DISTRIBUTED  # one process per task: JAX's SLURM detection must not join them up
echo "slurm_array: task ${SLURM_ARRAY_TASK_ID} -> --shard=${shard} on $(hostname)"
exec "${PYTHON:-python}" -m vae_jax.sweeps --config="$config" --workdir="$workdir" --shard="$shard" "$@"
