"""IWAE evaluation (``vae_jax.evaluation.iwae.iwae_dataset``) speed against the machine's matmul peak, and
its peak memory for small and large k.

    python bench/iwae_throughput.py [--data_dir DIR] [--k 5000] [--examples 200]

Throughput: k importance samples for each of ``--examples`` test images of the 784-500-20 VAE
(weights as initialized: the work does not depend on their values), after one warm-up batch.
Useful FLOPs = examples × k × the decoder's forward matmul FLOPs (2·(20·500 + 500·784)); the
encoder runs once per example and is not counted. Peak: a jitted 4096² f32 matmul, measured
before and after in the same process. The full 10k test set takes 10000/examples times longer.

Memory: the same evaluation for k=100 and k=5000 in fresh child processes; peak RSS from wait4.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def _setup(data_dir, examples):
    from vae_jax import models
    import vae_jax.evaluation.iwae as iwae

    config, ds, model, keys = common.default_vae(data_dir, test_subset=examples)
    params = models.init_params(model, keys["init"], ds.image_shape)
    x = iwae.evaluation_inputs(ds.test_images, keys["eval"], "dynamic", 100)
    return model, params, x, keys["eval"]


def child(data_dir, k, examples):
    """One evaluation in this process; prints a JSON line (for the memory comparison)."""
    import vae_jax.evaluation.iwae as iwae

    model, params, x, key = _setup(data_dir, examples)
    t = time.perf_counter()
    r = iwae.iwae_dataset(model, params, x, key, num_samples=k, progress=False)
    print(json.dumps(dict(r, seconds=time.perf_counter() - t)))


def throughput(data_dir, k, examples, batch_size=100):
    import vae_jax.evaluation.iwae as iwae

    model, params, x, key = _setup(data_dir, examples + batch_size)
    decoder_flops = common.forward_matmul_flops(params["decoder"])
    iwae.iwae_dataset(model, params, x[:batch_size], key, num_samples=k, progress=False)  # compile
    peak1 = common.matmul_peak()["median_flops"]
    t = time.perf_counter()
    r = iwae.iwae_dataset(model, params, x[batch_size:], key, num_samples=k, progress=False)
    seconds = time.perf_counter() - t
    peak2 = common.matmul_peak()["median_flops"]
    achieved = examples * k * decoder_flops / seconds
    peak = common.median([peak1, peak2])
    return {"k": k, "examples": examples, "seconds": seconds, "chunk": r["iwae_chunk"],
            "decoder_flops_per_sample": decoder_flops, "achieved_flops": achieved, "peak_flops": peak,
            "peak_flops_each": [peak1, peak2], "fraction_of_peak": achieved / peak,
            "full_test_set_estimate_s": seconds * 10000 / examples}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--examples", type=int, default=200,
                   help="test images timed; a multiple of 100 (the batch), so the warm-up compiled their shape")
    p.add_argument("--child_k", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--skip_memory", action="store_true")
    args = p.parse_args(argv)
    data_dir = common.data_dir(args.data_dir)
    if args.child_k:
        return child(data_dir, args.child_k, args.examples)

    result = {"machine": common.machine_description(), "load_avg": common.load_avg()}
    result["throughput"] = t = throughput(data_dir, args.k, args.examples)
    print(f"IWAE k={args.k} on {args.examples} examples: {t['seconds']:.1f} s, "
          f"{t['achieved_flops'] / 1e9:.1f} GFLOP/s = {100 * t['fraction_of_peak']:.0f}% of the matmul peak "
          f"({t['peak_flops'] / 1e9:.1f} GFLOP/s); full 10k test set ≈ {t['full_test_set_estimate_s']:.0f} s")
    if not args.skip_memory:
        mem = {}
        for k in (100, 5000):
            cmd = [common.python(), os.path.abspath(__file__), "--data_dir", data_dir, "--child_k", str(k),
                   "--examples", "100"]
            rc, wall, rss = common.run_timed(cmd)
            if rc != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed (rc {rc})")
            mem[k] = rss
            print(f"IWAE k={k} on 100 examples: peak RSS {rss:.0f} MiB ({wall:.1f} s)")
        result["memory_peak_rss_mib"] = mem
        result["memory_ratio_k5000_vs_k100"] = mem[5000] / mem[100]
        print(f"peak RSS k=5000 / k=100: {mem[5000] / mem[100]:.2f}x")
    print("saved", common.save_result("iwae", result))


if __name__ == "__main__":
    main()
