"""Our trainer's throughput: ``vae_jax.train.make_train_epoch`` (the jitted ``lax.scan`` epoch the
CLI runs) on full MNIST, after one warm-up epoch. Prints '<N> examples/s' and a JSON line.

    python bench/our_loop.py [--data_dir DIR] [--batch_size 128] [--epochs 2] [--config configs/vae_mnist.py]

Also reports the compile time of the epoch (lower + XLA compile, timed separately from running it)
and the FLOP model (bench/flops.py), so MFU can be computed against a peak measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--config", default=os.path.join(common.ROOT, "configs", "vae_mnist.py"))
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up epoch")
    p.add_argument("--train_subset", type=int, default=0, help=">0: time on the first N images only")
    args = p.parse_args(argv)

    import jax
    import numpy as np

    import flops
    from vae_jax import data as data_lib, models, train
    from ml_collections import config_flags  # noqa: F401  (config files import ml_collections)
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_cfg", args.config)
    cfg_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg_mod)
    config = cfg_mod.get_config()
    config.data.source, config.data.dir = "idx", common.data_dir(args.data_dir)
    config.data.train_subset = args.train_subset
    config.train.batch_size = args.batch_size

    ds = data_lib.load(config.data)
    model = models.build_model(config.model, ds.image_shape)
    keys = train.split_keys(config.seed)
    state = train.create_state(config, model, keys["init"], ds.image_shape)
    fpe = flops.train_flops_per_example(state.params)
    images = jax.device_put(ds.train_images)
    train_epoch, steps = train.make_train_epoch(model, config, len(ds.train_images))
    epoch_keys = [jax.random.fold_in(keys["data"], e) for e in range(args.epochs + 1)]

    t = time.perf_counter()
    lowered = train_epoch.lower(state, images, epoch_keys[0], keys["noise"])
    t_lower = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile()
    t_compile = time.perf_counter() - t
    xla_step_flops = flops.xla_flops(compiled)

    rates = []
    t = time.perf_counter()
    state, m = train_epoch(state, images, epoch_keys[0], keys["noise"])  # warm-up (jit cache hit or compile)
    jax.block_until_ready(m)
    t_first = time.perf_counter() - t
    for e in range(1, args.epochs + 1):
        t = time.perf_counter()
        state, m = train_epoch(state, images, epoch_keys[e], keys["noise"])
        jax.block_until_ready(m)
        rates.append(steps * args.batch_size / (time.perf_counter() - t))
    loss = float(np.mean(jax.device_get(m["loss"])))
    rate = float(np.median(rates))
    print(f"vae_jax scan epoch (batch {args.batch_size}): {rate:,.0f} examples/s "
          f"(epochs {[round(r) for r in rates]}), compile {t_lower + t_compile:.2f} s, loss {loss:.1f}")
    print(json.dumps({"examples_per_s": rate, "epoch_rates": rates, "batch_size": args.batch_size,
                      "steps_per_epoch": steps, "lower_s": t_lower, "compile_s": t_compile,
                      "first_call_s": t_first, "flops_per_example": fpe,
                      "xla_flops_per_epoch": xla_step_flops, "loss": loss}))


if __name__ == "__main__":
    main()
