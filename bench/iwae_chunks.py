"""IWAE k=5000 FLOP rate against the decoder rows per chunk (``vae_jax.iwae.DECODER_ROWS``).

    python bench/iwae_chunks.py [--data_dir DIR] [--examples 100]

Same setup as bench/iwae_throughput.py (784-500-20 VAE, weights as initialized), batch 100; each
chunk size is compiled on one batch, then timed on ``--examples`` other test images.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import iwae_throughput  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--examples", type=int, default=100)
    args = p.parse_args()
    from vae_jax import iwae
    model, params, x, key = iwae_throughput._setup(common.data_dir(args.data_dir), args.examples + 100)
    for chunk in (500, 100, 50, 20, 10):
        iwae.iwae_dataset(model, params, x[:100], key, num_samples=5000, chunk=chunk, progress=False)
        t = time.perf_counter()
        iwae.iwae_dataset(model, params, x[100:], key, num_samples=5000, chunk=chunk, progress=False)
        s = time.perf_counter() - t
        print(f"chunk {chunk:4d} ({chunk * 100:6,d} decoder rows): {s:6.2f} s, "
              f"{args.examples * 5000 * 0.804e6 / s / 1e9:6.1f} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
