"""Rate / distortion, posterior-collapse diagnostics and reconstruction quality on a test set.

* rate        R = E_x KL(q(z|x) ‖ p(z))                 (nats per example)
* distortion  D = −E_x E_q log p(x|z)  (one z per x)     (nats per example); −ELBO = R + D
* kl_per_dim  E_x KL(q(z_u|x) ‖ p(z_u)) for each latent unit u
* active_units  #{u : Cov_x(E_q[z_u]) > 0.01}  (Burda et al. 2015, §5.2)
* mutual_info   I(x; z) under the aggregate posterior q(z) = (1/N) Σ_n q(z|x_n) (see ``mutual_information``)
* mse / psnr / bce  reconstruction at z = E_q[z]: per-pixel MSE, per-image PSNR (peak 1) averaged
  over images, and per-image binary cross-entropy (nats, summed over pixels) of the mean.

``evaluate_with_diagnostics`` has the signature of ``evaluate.evaluate_dataset`` and costs one
extra decoder pass per batch, so the trainer calls it at every evaluation.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import data as data_lib
import vae_jax.models.distributions as D
import vae_jax.evaluation.batched as eval_lib
from vae_jax import models

ACTIVE_UNIT_THRESHOLD = 0.01
_EPS = 1e-6


def reconstruction_quality(x, recon):
    """Per-example PSNR (dB, peak 1) and BCE (nats, summed over pixels) of a [0,1] reconstruction."""
    flat_x, flat_r = x.reshape(x.shape[0], -1), recon.reshape(recon.shape[0], -1)
    mse = jnp.mean((flat_r - flat_x) ** 2, axis=-1)
    psnr = -10.0 * jnp.log10(mse + 1e-10)
    r = jnp.clip(flat_r, _EPS, 1.0 - _EPS)
    bce = -jnp.sum(flat_x * jnp.log(r) + (1.0 - flat_x) * jnp.log1p(-r), axis=-1)
    return {"psnr": psnr, "bce": bce}


def diagnostic_metrics(model, params, x, key):
    """``evaluate.per_example_metrics`` plus rate/distortion, and the per-unit sums behind
    kl_per_dim and active units ([B, n] values; evaluate_dataset averages them over the set)."""
    out = eval_lib.per_example_metrics(model, params, x, key)
    if model.is_vae:
        mean, logvar = model.apply({"params": params}, x, method="encode")
        out.update(rate=out["kl"], distortion=out["rec_loss"],
                   kl_per_dim=D.kl_diag_gaussian_std_normal(mean, logvar),
                   z_mean=mean, z_mean_sq=mean ** 2)
    out.update(reconstruction_quality(x, models.reconstruct(model, params, x)))
    return out


def summarize(sums: dict) -> dict:
    """Turns the set means of ``diagnostic_metrics`` into JSON-ready numbers (drops the raw moments)."""
    out = {k: v for k, v in sums.items() if np.ndim(v) == 0}
    if "z_mean" in sums:
        cov = np.asarray(sums["z_mean_sq"]) - np.asarray(sums["z_mean"]) ** 2  # Var_x(E_q[z_u])
        out["active_units"] = int(np.sum(cov > ACTIVE_UNIT_THRESHOLD))
        out["kl_per_dim"] = [float(v) for v in sums["kl_per_dim"]]
    return out


def evaluate_with_diagnostics(model, params, images_u8, key, binarization: str,
                              batch_size: int = 1000) -> dict:
    """Test-set means of the ELBO terms, rate/distortion, active units, kl_per_dim, mse/psnr/bce."""
    sums = eval_lib.evaluate_dataset(model, params, images_u8, key, binarization, batch_size,
                                     metric_fn=diagnostic_metrics)
    return summarize(sums)


# ---------------------------------------------------------------------------- mutual information
def encode_dataset(model, params, images_u8, key, binarization: str, batch_size: int = 1000):
    """(mean, logvar) of q(z|x) for every image, [N, n] each, on the evaluation binarization."""
    enc = jax.jit(lambda p, x: model.apply({"params": p}, x, method="encode"))
    batches, _ = eval_lib.pad_batches(np.asarray(images_u8), min(batch_size, len(images_u8)))
    means, logvars = [], []
    for i, xb in enumerate(batches):
        kx, _ = eval_lib.batch_keys(key, i)
        m, lv = enc(params, data_lib.to_float(jnp.asarray(xb), binarization, kx))
        means.append(m)
        logvars.append(lv)
    n = len(images_u8)
    return jnp.concatenate(means)[:n], jnp.concatenate(logvars)[:n]


@jax.jit
def _log_aggregate_posterior(z, mean, logvar):
    """log q(z_i) = logsumexp_n log q(z_i | x_n) − log N for a block of z [M, n].
    (z − μ)² is formed directly: expanding it into matmuls (z²/σ² − 2zμ/σ² + μ²/σ²) cancels
    catastrophically in float32 when σ is small (measured: I > log N for σ² = e⁻¹²)."""
    diff = z[:, None, :] - mean[None, :, :]                                     # [M, N, n], fused
    quad = jnp.sum(diff ** 2 * jnp.exp(-logvar)[None], axis=-1)
    log_q = -0.5 * (quad + jnp.sum(logvar, -1) + z.shape[-1] * D.LOG_2PI)        # [M, N]
    return jax.nn.logsumexp(log_q, axis=-1) - jnp.log(mean.shape[0])


def mutual_information(mean, logvar, key, block: int = 256) -> dict:
    """I(x; z) = E_x E_{q(z|x)} log q(z|x) − E_{q(z)} log q(z), with q(z) the aggregate posterior
    over the N given examples (Hoffman & Johnson 2016; He et al. 2019). One z_i ~ q(z|x_i) per
    example; log q(z_i) is a logsumexp over all N posteriors (blocks of ``block`` rows, so memory is
    block × N). The estimate is at most log N. Also returns the marginal KL(q(z) ‖ p(z)) =
    rate − I, the part of the rate not explained by information about x."""
    mean, logvar = jnp.asarray(mean), jnp.asarray(logvar)
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    z = mean + jnp.exp(0.5 * logvar) * eps
    # log q(z_i|x_i) at the same z_i as log q(z_i) (not the closed-form entropy): the two terms
    # are then strongly correlated and their difference has far less Monte-Carlo noise; a
    # collapsed posterior (q(z|x) = q(z)) gives exactly 0.
    log_qzx = -0.5 * jnp.sum(D.LOG_2PI + logvar + eps ** 2, axis=-1)
    log_qz = jnp.concatenate([_log_aggregate_posterior(z[i:i + block], mean, logvar)
                              for i in range(0, len(z), block)])
    mi = float(jnp.mean(log_qzx - log_qz))
    rate = float(jnp.mean(D.kl_diag_gaussian_std_normal(mean, logvar).sum(-1)))
    return {"mutual_info": mi, "mutual_info_max": math.log(len(mean)), "marginal_kl": rate - mi}
