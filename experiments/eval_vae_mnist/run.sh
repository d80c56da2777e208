#!/usr/bin/env bash
# Trains the 784-500-20 VAE of configs/vae_mnist.py for 10 epochs on full MNIST, then runs the full
# evaluation (IWAE k=5000 over the 10,000 test images, diagnostics, Fréchet distance).
# Usage: experiments/eval_vae_mnist/run.sh [MNIST_IDX_DIR] [WORKDIR]
set -euo pipefail
DATA=${1:-../shared/data/mnist}
W=${2:-runs/eval_vae_mnist}
python -m vae_jax.main --config=configs/vae_mnist.py --workdir="$W" --config.data.dir="$DATA" \
    --config.train.progress=False
/usr/bin/time -v python -m vae_jax.main --mode=evaluate --workdir="$W" --iwae_k=5000
python - "$W" <<'PY'
import json, sys
e = json.load(open(sys.argv[1] + "/eval.json"))
keys = ["neg_elbo", "nll_iwae", "iwae_k", "nll_iwae_bits_per_dim", "neg_elbo_iwae_samples", "rate", "distortion",
        "active_units", "mutual_info", "mse", "psnr", "bce", "fid", "fid_recon", "fid_floor",
        "classifier_test_accuracy", "iwae_seconds", "eval_seconds"]
print(json.dumps({k: e.get(k) for k in keys}, indent=1))
PY
