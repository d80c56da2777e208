"""IWAE evaluation (``vae_jax.evaluation.iwae.iwae_dataset``) speed against the machine's matmul peak, and
its peak memory for small and large k.

    python bench/iwae_throughput.py [--data_dir DIR] [--k 5000] [--examples 200]

Throughput: k importance samples for each of ``--examples`` test images of the 784-500-20 VAE
(weights as initialized: the work does not depend on their values), after one warm-up batch.
Useful FLOPs = examples × k × the decoder's forward matmul FLOPs (2·(20·500 + 500·784)); the
encoder runs once per example and is not counted. Peak: a jitted 4096² f32 matmul, measured
before and after in the same process. The full 10k test set takes 10000/examples times longer.

Memory: the same evaluation for k=100 and k=5000 in fresh child processes; peak RSS from wait4.
``--config path[:variant]`` measures the memory of that config's model instead (e.g. the conv VAE
on colour photos, ``configs/vae_photos.py``), at ``--memory_k`` and ``--memory_examples``, with
``--skip_throughput`` (the throughput's FLOP count is the MLP decoder's):

    python bench/iwae_throughput.py --skip_throughput --config configs/vae_photos.py --memory_k 100,1000 --name iwae_photos
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def _setup(data_dir, examples, config_spec=""):
    from vae_jax import models
    import vae_jax.evaluation.iwae as iwae

    if config_spec:
        config, ds, model, keys = common.config_setup(config_spec, data_dir, **{"data.test_subset": examples})
    else:
        config, ds, model, keys = common.default_vae(data_dir, test_subset=examples)
    params = models.init_params(model, keys["init"], ds.image_shape)
    x = iwae.evaluation_inputs(ds.test_images, keys["eval"], config.data.binarization, 100)
    return model, params, x, keys["eval"]


def child(data_dir, k, examples, config_spec=""):
    """One evaluation in this process; prints a JSON line (for the memory comparison)."""
    import vae_jax.evaluation.iwae as iwae

    model, params, x, key = _setup(data_dir, examples, config_spec)
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
    p.add_argument("--skip_throughput", action="store_true")
    p.add_argument("--config", default="", help="path[:variant]: measure the memory of this config's model")
    p.add_argument("--memory_k", default="100,5000", help="the two k of the memory comparison")
    p.add_argument("--memory_examples", type=int, default=100, help="test images in each memory child")
    p.add_argument("--name", default="iwae", help="results file bench/results/<name>.json")
    args = p.parse_args(argv)
    data_dir = common.data_dir(args.data_dir)
    if args.child_k:
        return child(data_dir, args.child_k, args.examples, args.config)

    result = {"machine": common.machine_description(), "load_avg": common.load_avg(),
              "command": " ".join(sys.argv), "config": args.config or "configs/vae_mnist.py"}
    if not args.skip_throughput:
        result["throughput"] = t = throughput(data_dir, args.k, args.examples)
        print(f"IWAE k={args.k} on {args.examples} examples: {t['seconds']:.1f} s, "
              f"{t['achieved_flops'] / 1e9:.1f} GFLOP/s = {100 * t['fraction_of_peak']:.0f}% of the matmul peak "
              f"({t['peak_flops'] / 1e9:.1f} GFLOP/s); full 10k test set ≈ {t['full_test_set_estimate_s']:.0f} s")
    if not args.skip_memory:
        mem, ks = {}, [int(k) for k in args.memory_k.split(",")]
        for k in ks:
            cmd = [common.python(), os.path.abspath(__file__), "--data_dir", data_dir, "--child_k", str(k),
                   "--examples", str(args.memory_examples), "--config", args.config]
            rc, wall, rss = common.run_timed(cmd)
            if rc != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed (rc {rc})")
            mem[k] = {"peak_rss_mib": rss, "wall_s": wall}
            print(f"IWAE k={k} on {args.memory_examples} examples: peak RSS {rss:.0f} MiB ({wall:.1f} s)")
        result["memory"] = mem
        result["memory_ratio"] = mem[ks[-1]]["peak_rss_mib"] / mem[ks[0]]["peak_rss_mib"]
        print(f"peak RSS k={ks[-1]} / k={ks[0]}: {result['memory_ratio']:.2f}x")
    print("saved", common.save_result(args.name, result))


if __name__ == "__main__":
    main()
