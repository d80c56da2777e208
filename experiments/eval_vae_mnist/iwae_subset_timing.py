"""Times the k=5000 IWAE bound on the first N test images of a trained run (default 200).

    python experiments/eval_vae_mnist/iwae_subset_timing.py --workdir runs/eval_vae_mnist [--n 200] [--chunk 500]

Prints nll_iwae, the k-sample ELBO, the seconds (compile included) and the system load average.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402

from vae_jax.training import checkpointing
from vae_jax.evaluation import iwae
from vae_jax import models
from vae_jax.training import trainer as train  # noqa: E402
from vae_jax import data as data_lib  # noqa: E402
from vae_jax.evaluation.run import load_run_config  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", default="runs/eval_vae_mnist")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--chunk", type=int, default=500)
    args = p.parse_args()
    cfg = load_run_config(args.workdir)
    ds = data_lib.load(cfg.data)
    model = models.build_model(cfg.model, ds.image_shape)
    keys = train.split_keys(cfg.seed)
    state = train.create_state(cfg, model, keys["init"], ds.image_shape, len(ds.train_images) // cfg.train.batch_size)
    ckpt = checkpointing.Checkpointer(os.path.join(args.workdir, "checkpoints"))
    params = ckpt.restore_params(state)
    ckpt.close()
    x = iwae.evaluation_inputs(ds.test_images, keys["eval"], cfg.data.binarization, cfg.train.eval_batch_size)
    out = iwae.iwae_dataset(model, params, x[: args.n], jax.random.fold_in(keys["eval"], 2), args.k, 100,
                            args.chunk, progress=False)
    out["load_average"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
