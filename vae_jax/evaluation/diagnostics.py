"""Rate / distortion, posterior-collapse diagnostics and reconstruction quality on a test set.

* rate        R = E_x KL(q(z|x) ‖ p(z))                 (nats per example)
* distortion  D = −E_x E_q log p(x|z)  (one z per x)     (nats per example); −ELBO = R + D
* kl_per_dim  E_x KL(q(z_u|x) ‖ p(z_u)) for each latent unit u (``layer_kl`` of the protocol)
* active_units  #{u : Cov_x(E_q[z_u]) > 0.01}  (Burda et al. 2015, §5.2), E_q[z] taken as the
  family's ``posterior_mean``
* mutual_info   I(x; z) under the aggregate posterior q(z) = (1/N) Σ_n q(z|x_n) (see ``mutual_information``)
* mse / psnr / bce  reconstruction at z = E_q[z]: per-pixel MSE, per-image PSNR (peak 1) averaged
  over images, and per-image binary cross-entropy (nats, summed over pixels) of the mean.
* bits_per_dim  neg_elbo / (D·ln 2), D = H·W·C: an upper bound on the code length of 8-bit data
  with the discretized likelihoods (and of binary data with Bernoulli); for a density on [0, 1]
  (gaussian, continuous_bernoulli) it is a density's −log₂, not a code length, and may be negative.

Families with several stochastic layers (``model.latent_layers``) get the per-unit statistics per
layer: ``kl_per_dim/<layer>``, ``active_units/<layer>``, ``rate/<layer>`` (one-layer families keep
the plain ``kl_per_dim``); ``active_units`` is the total over layers for every family.

``evaluate_with_diagnostics`` has the signature of ``evaluate.evaluate_dataset`` and costs one
extra decoder pass per batch, so the trainer calls it at every evaluation.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import data as data_lib
import vae_jax.models.discretized as discretized
import vae_jax.models.distributions as D
import vae_jax.evaluation.batched as eval_lib
import vae_jax.models.protocol as protocol

ACTIVE_UNIT_THRESHOLD = 0.01
_EPS = 1e-6
# Per-unit sums of diagnostic_metrics, per layer: "<stat>/<layer>".
_KL, _MEAN, _MEAN_SQ = "kl_per_dim", "z_mean", "z_mean_sq"


def reconstruction_quality(x, recon):
    """Per-example PSNR (dB, peak 1) and BCE (nats, summed over pixels) of a [0,1] reconstruction."""
    flat_x, flat_r = x.reshape(x.shape[0], -1), recon.reshape(recon.shape[0], -1)
    mse = jnp.mean((flat_r - flat_x) ** 2, axis=-1)
    psnr = -10.0 * jnp.log10(mse + 1e-10)
    r = jnp.clip(flat_r, _EPS, 1.0 - _EPS)
    bce = -jnp.sum(flat_x * jnp.log(r) + (1.0 - flat_x) * jnp.log1p(-r), axis=-1)
    return {"psnr": psnr, "bce": bce}


def diagnostic_metrics(model, params, x, key):
    """``evaluate.per_example_metrics`` plus rate/distortion, and per layer the per-unit sums
    behind kl_per_dim and active units ([B, n_l] values; evaluate_dataset averages them over the
    set). The layer KL draws from the same key as the ELBO sample: where it is Monte-Carlo (a flow
    posterior) its sum over units is then exactly that sample's KL."""
    out = eval_lib.per_example_metrics(model, params, x, key)
    if model.is_vae:
        out.update(rate=out["kl"], distortion=out["rec_loss"])
        kl = protocol.layer_kl(model, params, x, key)
        means = dict(zip(model.latent_layers, jax.tree.leaves(protocol.posterior_mean(model, params, x))))
        for name in model.latent_layers:
            m = means[name].reshape(x.shape[0], -1)
            out.update({f"{_KL}/{name}": kl[name], f"{_MEAN}/{name}": m, f"{_MEAN_SQ}/{name}": m ** 2})
    out.update(reconstruction_quality(x, protocol.reconstruct(model, params, x)))
    return out


def summarize(sums: dict) -> dict:
    """Turns the set means of ``diagnostic_metrics`` into JSON-ready numbers (drops the raw moments).
    One layer: ``kl_per_dim`` and ``active_units``; several: also ``kl_per_dim/<layer>``,
    ``active_units/<layer>`` and ``rate/<layer>`` (and no unqualified ``kl_per_dim``)."""
    out = {k: v for k, v in sums.items() if np.ndim(v) == 0}
    layers = [k.split("/", 1)[1] for k in sums if k.startswith(_KL + "/")]
    if not layers:
        return out
    active = {}
    for name in layers:
        cov = np.asarray(sums[f"{_MEAN_SQ}/{name}"]) - np.asarray(sums[f"{_MEAN}/{name}"]) ** 2  # Var_x(E_q[z_u])
        active[name] = int(np.sum(cov > ACTIVE_UNIT_THRESHOLD))
    out["active_units"] = sum(active.values())
    if len(layers) == 1:
        out[_KL] = [float(v) for v in sums[f"{_KL}/{layers[0]}"]]
        return out
    for name in layers:
        kl = np.asarray(sums[f"{_KL}/{name}"])
        out.update({f"{_KL}/{name}": [float(v) for v in kl], f"active_units/{name}": active[name],
                    f"rate/{name}": float(kl.sum())})
    return out


def evaluate_with_diagnostics(model, params, images_u8, key, binarization: str,
                              batch_size: int = 1000) -> dict:
    """Test-set means of the ELBO terms, rate/distortion, active units, kl_per_dim, mse/psnr/bce,
    and ``bits_per_dim`` = neg_elbo / (D·ln 2) (D = pixels × channels). The one place bits/dim of
    the ELBO is computed: the training log (test/bits_per_dim) and eval.json both come from here."""
    sums = eval_lib.evaluate_dataset(model, params, images_u8, key, binarization, batch_size,
                                     metric_fn=diagnostic_metrics)
    out = summarize(sums)
    if "neg_elbo" in out:
        out["bits_per_dim"] = float(discretized.bits_per_dim(out["neg_elbo"], int(np.prod(np.shape(images_u8)[1:]))))
    return out


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
