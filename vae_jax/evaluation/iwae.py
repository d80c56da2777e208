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
import vae_jax.models.distributions as D
import vae_jax.evaluation.batched as eval_lib
from vae_jax.models import likelihood_of


def log_weights(model, params, x, mean, logvar, key, num_samples: int):
    """log p(x|z) + log p(z) − log q(z|x) for ``num_samples`` z ~ q(z|x): [num_samples, B]."""
    eps = jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * logvar) * eps                                   # [S, B, n]
    flat = z.reshape((-1, z.shape[-1]))                                       # one decoder call
    lik_params = model.apply({"params": params}, flat, method="decode")
    lik_params = lik_params.reshape((num_samples,) + x.shape + lik_params.shape[-1:])
    log_px_z = likelihood_of(model).log_prob(x, lik_params)                         # x broadcasts over S
    # log p(z) − log q(z|x) with z = μ + σε: the (z−μ)²/σ² term of log q is ε².
    log_pz = D.std_normal_log_prob(z)
    log_qz = jnp.sum(-0.5 * (D.LOG_2PI + logvar + eps ** 2), axis=-1)
    return log_px_z + log_pz - log_qz


# Decoder rows per chunk. The chunk's logits ([rows, 784] float32) are written by the last matmul and
# read again by the log-likelihood: at 10,000 rows (31 MB) they stay in this CPU's 32 MB L3 cache,
# at 50,000 (157 MB) they go to memory. k=5000 on 100 test images: 174.0 GFLOP/s at 10,000 rows
# against 88.1 at 50,000 (python bench/iwae_chunks.py, 2-core CPU).
DECODER_ROWS = 10_000


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "chunk"))
def iwae_batch(model, params, x, key, num_samples: int, chunk: int):
    """Per-example (L_k, mean log-weight) for a batch x [B, ...]; k = num_samples in chunks."""
    if num_samples % chunk:
        raise ValueError(f"iwae: num_samples={num_samples} must be a multiple of chunk={chunk}")
    mean, logvar = model.apply({"params": params}, x, method="encode")
    b = x.shape[0]

    def body(carry, c):
        run_max, run_sum, sum_lw = carry
        lw = log_weights(model, params, x, mean, logvar, jax.random.fold_in(key, c), chunk)
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


def iwae_dataset(model, params, x: np.ndarray, key, num_samples: int = 5000, batch_size: int = 100,
                 chunk: int | None = None, progress: bool = True) -> dict:
    """L_k over a float dataset x [N, ...] (e.g. from ``evaluation_inputs``), averaged over N.

    ``chunk`` defaults to the largest divisor of k with chunk·batch ≤ ``DECODER_ROWS``."""
    if not model.is_vae:
        raise ValueError("iwae: the importance-weighted bound needs a VAE (model.kind='vae')")
    if chunk is None:
        chunk = max(c for c in range(1, num_samples + 1)
                    if num_samples % c == 0 and c * batch_size <= max(DECODER_ROWS, batch_size))
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
    return {"nll_iwae": nll, "iwae_k": int(num_samples), "nll_iwae_bits_per_dim": nll / (dims * math.log(2.0)),
            "neg_elbo_iwae_samples": -elbo_sum / n, "iwae_seconds": seconds, "iwae_chunk": int(chunk)}
