"""Where the training step spends its time, op by op, from a JAX profiler trace of one epoch.

    python bench/profile_step.py [--data_dir DIR] [--subset 12800] [--top 30]
    python bench/profile_step.py --config configs/iwae_two_layer.py --batch_size 512   # any config

Runs the trainer's jitted scan epoch (``trainer.make_epoch``) once to compile, then once under
``jax.profiler.trace`` with XLA:CPU's per-thunk trace events on (``--xla_cpu_enable_xprof_traceme``,
set here before JAX starts), and prints the time summed per HLO op with the JAX source op it came
from. Tracing adds a fixed cost to every thunk, so small ops look more expensive here than they
are: use it to find candidates, then confirm a change with an interleaved A/B timing of the epoch
with and without it, and with ``bench/train_throughput.py``.
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true").strip()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--subset", type=int, default=12800)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--config", default="", help="path[:variant] of another config (default: the 784-500-20 VAE)")
    args = p.parse_args(argv)

    import jax
    from jax.profiler import ProfileData

    import vae_jax.training.trainer as trainer

    if args.config:
        config, ds, model, keys = common.config_setup(args.config, args.data_dir, **{
            "data.train_subset": args.subset, "train.batch_size": args.batch_size})
    else:
        config, ds, model, keys = common.default_vae(args.data_dir, args.subset, args.batch_size)
    images, hparams = jax.device_put(ds.train_images), trainer.hparams_of(config)
    epoch, steps = trainer.make_epoch(model, config, len(images))
    state = trainer.init_model_state(config, model, keys["init"], ds.image_shape, ds.train_images, steps)
    compiled = epoch.lower(state, images, keys["data"], keys["noise"], hparams).compile()
    hlo = compiled.as_text()  # op names of the very executable traced below
    state, m = compiled(state, images, keys["data"], keys["noise"], hparams)  # warm-up
    jax.block_until_ready(m)
    source = {}
    for line in hlo.splitlines():
        hit = re.match(r"\s*(?:ROOT )?%(\S+) = .*?op_name=\"([^\"]*)\"", line)
        if hit:
            source[hit.group(1)] = hit.group(2).split("/while/body/")[-1]

    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            state, m = compiled(state, images, jax.random.fold_in(keys["data"], 1), keys["noise"], hparams)
            jax.block_until_ready(m)
        profile = ProfileData.from_file(glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)[0])

    total, count = collections.Counter(), collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            if "Eigen" not in line.name:  # XLA:CPU's worker threads run the thunks
                continue
            for ev in line.events:
                if ev.name.startswith(("ThunkExecutor", "SlinkyThreadPool")):
                    continue
                total[ev.name] += ev.duration_ns
                count[ev.name] += 1
    leaf = sum(total.values())
    print(f"{steps} steps; summed thunk time {leaf / 1e6 / steps:.3f} ms per step (traced)")
    print(f"{'ms/step':>8} {'share':>6} {'calls/step':>10}  op  <- JAX source")
    for name, ns in total.most_common(args.top):
        print(f"{ns / 1e6 / steps:8.3f} {ns / leaf:6.1%} {count[name] / steps:10.1f}  {name}  <- {source.get(name, '')}")


if __name__ == "__main__":
    main()
