"""Importance-weighted estimate of log p(x) (Burda et al. 2015), k up to thousands of samples.

    log p(x) ≥ L_k = log (1/k) Σ_i p(x, z_i) / q(z_i|x),   z_i ~ q(z|x),   L_1 = ELBO ≤ L_k ↑ log p(x)

The k samples are drawn in chunks of ``chunk`` and folded into a running logsumexp, so memory is
O(batch × chunk × pixels) whatever k is. Within a chunk the decoder runs once on all
chunk × batch latent codes flattened into one [chunk·B, n] matrix, so its matmuls are large enough
to run near the machine's matmul peak. One jitted call per batch of examples (a tqdm bar counts
them); the chunk loop is a ``lax.scan`` inside it.

Also returned: the mean of the same k log-weights, a k-sample Monte-Carlo estimate of the ELBO
(≤ L_k for every example, by Jensen), and bits/dim = NLL / (D·ln 2).
"""
from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import data as data_lib
import vae_jax.evaluation.batched as eval_lib
import vae_jax.models.discretized as discretized
import vae_jax.models.protocol as protocol


def log_weights(model, params, x, key, num_samples: int):
    """log p(x|z) + log p(z) − log q(z|x) for ``num_samples`` z ~ q(z|x): [num_samples, B]
    (``protocol.log_weights``: any latent-variable family)."""
    return protocol.log_weights(model, params, x, key, num_samples)[0]


# Decoder output values per chunk (rows × pixel values). On MNIST, 10,000 rows of logits ([rows, 784]
# float32, 31 MB) are written by the last matmul and read again by the log-likelihood: they stay in
# this CPU's 32 MB L3 cache, 50,000 rows (157 MB) go to memory. k=5000 on 100 test images: 174.0
# GFLOP/s at 10,000 rows against 88.1 at 50,000 (BENCHMARKS.md, past measurements; 2-core CPU).
# Bounding values rather than rows keeps a 32×32×3 image's chunk as small (2,552 rows), so the
# memory stays flat in k for colour images too.
DECODER_ROWS = 10_000
DECODER_VALUES = DECODER_ROWS * 784


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "chunk"))
def iwae_batch(model, params, x, key, num_samples: int, chunk: int):
    """Per-example (L_k, mean log-weight) for a batch x [B, ...]; k = num_samples in chunks."""
    if num_samples % chunk:
        raise ValueError(f"iwae: num_samples={num_samples} must be a multiple of chunk={chunk}")
    b = x.shape[0]

    def body(carry, c):
        run_max, run_sum, sum_lw = carry
        # The encoder runs once per chunk (B rows, against chunk·B for the decoder): negligible.
        lw = log_weights(model, params, x, jax.random.fold_in(key, c), chunk)
        new_max = jnp.maximum(run_max, jnp.max(lw, axis=0))
        run_sum = run_sum * jnp.exp(run_max - new_max) + jnp.sum(jnp.exp(lw - new_max), axis=0)
        return (new_max, run_sum, sum_lw + jnp.sum(lw, axis=0)), None

    init = (jnp.full((b,), -jnp.inf), jnp.zeros((b,)), jnp.zeros((b,)))
    (run_max, run_sum, sum_lw), _ = jax.lax.scan(body, init, jnp.arange(num_samples // chunk))
    return run_max + jnp.log(run_sum) - math.log(num_samples), sum_lw / num_samples


def evaluation_inputs(images_u8, key, binarization: str, batch_size: int) -> np.ndarray:
    """The float test set exactly as ``evaluate.evaluate_dataset`` sees it for the same key and
    batch size (same dynamic-binarization draw), so L_k is comparable with its neg_elbo."""
    batches, _ = eval_lib.pad_batches(np.asarray(images_u8), min(batch_size, len(images_u8)))
    to_float = jax.jit(data_lib.to_float, static_argnames="binarization")
    xs = [to_float(jnp.asarray(xb), binarization, eval_lib.batch_keys(key, i)[0])
          for i, xb in enumerate(batches)]
    return np.concatenate([np.asarray(x) for x in xs])[: len(images_u8)]


def default_chunk(num_samples: int, batch_size: int, pixel_values: int) -> int:
    """The largest divisor of k with chunk·batch·pixel values ≤ ``DECODER_VALUES`` (at least 1)."""
    rows = max(DECODER_VALUES // pixel_values, batch_size)
    return max(c for c in range(1, num_samples + 1) if num_samples % c == 0 and c * batch_size <= rows)


def iwae_dataset(model, params, x: np.ndarray, key, num_samples: int = 5000, batch_size: int = 100,
                 chunk: int | None = None, progress: bool = True) -> dict:
    """L_k over a float dataset x [N, ...] (e.g. from ``evaluation_inputs``), averaged over N.

    ``chunk`` defaults to the largest divisor of k with chunk·batch·pixel values ≤
    ``DECODER_VALUES`` (at least one sample per chunk)."""
    if not model.is_vae:
        raise ValueError(f"iwae: the importance-weighted bound needs a latent-variable model (a VAE "
                         f"family); {type(model).__name__} has no q(z|x)")
    if chunk is None:
        chunk = default_chunk(num_samples, min(batch_size, len(x)), int(np.prod(x.shape[1:])))
    n = len(x)
    batches, mask = eval_lib.pad_batches(np.asarray(x), min(batch_size, n))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=n, desc=f"iwae k={num_samples}", unit="ex", dynamic_ncols=True)
    t0 = time.perf_counter()
    lk_sum, elbo_sum = 0.0, 0.0
    try:
        for i, (xb, mb) in enumerate(zip(batches, mask)):
            lk, elbo = iwae_batch(model, params, jnp.asarray(xb), jax.random.fold_in(key, i), num_samples, chunk)
            lk_sum += float(jnp.sum(lk * mb))    # one host sync per batch, for the bar
            elbo_sum += float(jnp.sum(elbo * mb))
            if bar is not None:
                bar.update(int(mb.sum()))
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    nll = -lk_sum / n
    dims = int(np.prod(x.shape[1:]))
    return {"nll_iwae": nll, "iwae_k": int(num_samples), "nll_iwae_bits_per_dim": discretized.bits_per_dim(nll, dims),
            "neg_elbo_iwae_samples": -elbo_sum / n, "iwae_seconds": seconds, "iwae_chunk": int(chunk)}
