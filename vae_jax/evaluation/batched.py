"""Test-set evaluation in large static-shape batches (padding + mask for the remainder)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import data as data_lib
import vae_jax.models.protocol as protocol


def per_example_metrics(model, params, x, key):
    """Single-sample ELBO pieces (latent families, through the protocol) or the reconstruction loss
    (autoencoders), and the reconstruction error at the deterministic code, one value per example."""
    lik = protocol.likelihood_of(model)
    recon_params = protocol.decode(model, params, protocol.posterior_mean(model, params, x))
    if model.is_vae:
        rec, kl, _ = protocol.elbo_terms(model, params, x, key)
        out = {"neg_elbo": rec + kl, "rec_loss": rec, "kl": kl}
    else:  # the code is the reconstruction's own code: decode(encode(x))
        out = {"rec_loss": -lik.log_prob(x, recon_params)}
    out["mse"] = jnp.mean((lik.mean(recon_params) - x).reshape(x.shape[0], -1) ** 2, axis=-1)
    return out


def pad_batches(images: np.ndarray, batch_size: int):
    """[N, ...] -> ([nb, B, ...], mask [nb, B]) with zero padding; static shapes for jit."""
    n = len(images)
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    padded = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)]) if pad else images
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return padded.reshape((nb, batch_size) + images.shape[1:]), mask.reshape(nb, batch_size)


def batch_keys(key, i):
    """(binarization key, model key) of evaluation batch ``i``: every evaluator that uses it sees
    the same binarized test set for the same (key, batch size)."""
    return jax.random.split(jax.random.fold_in(key, i))


@functools.partial(jax.jit, static_argnames=("model", "binarization", "metric_fn"))
def _eval_scan(model, params, batches, mask, key, binarization, metric_fn):
    def body(carry, inp):
        i, xb, mb = inp
        kx, kz = batch_keys(key, i)
        x = data_lib.to_float(xb, binarization, kx)
        m = metric_fn(model, params, x, kz)
        # Metrics are [B] or [B, ...] (e.g. per-latent-dimension values): masked sums over B.
        carry = {k: carry[k] + jnp.tensordot(mb, v, axes=1) for k, v in m.items()}
        return carry, None

    x0 = data_lib.to_float(batches[0], "none")
    shapes = jax.eval_shape(lambda: metric_fn(model, params, x0, key))
    init = {k: jnp.zeros(s.shape[1:], jnp.float32) for k, s in shapes.items()}
    idx = jnp.arange(batches.shape[0])
    sums, _ = jax.lax.scan(body, init, (idx, batches, mask))
    return sums


def evaluate_dataset(model, params, images_u8: np.ndarray, key, binarization: str,
                     batch_size: int = 1000, metric_fn=per_example_metrics) -> dict[str, float]:
    """Means over the whole set of ``metric_fn``'s per-example values. Dynamic binarization of the
    evaluation data uses ``key`` (a fixed key gives a fixed binarized test set)."""
    batch_size = min(batch_size, len(images_u8))
    batches, mask = pad_batches(np.asarray(images_u8), batch_size)
    sums = _eval_scan(model, params, jnp.asarray(batches), jnp.asarray(mask), key, binarization, metric_fn)
    n = float(len(images_u8))
    return {k: float(v) / n if np.ndim(v) == 0 else np.asarray(v) / n
            for k, v in jax.device_get(sums).items()}
