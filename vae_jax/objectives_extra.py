"""More objectives for the registry in ``objectives.py``: KL schedules, free bits, IWAE, and the
regularized autoencoders (denoising, sparse). Imported at the bottom of ``objectives.py``, so
``OBJECTIVES`` always holds them.

=================  ======  =====================================================================
name               models  loss (batch mean, nats per example)      fields of ``objective``
=================  ======  =====================================================================
elbo               vae     rec + β·KL  (β-VAE for β ≠ 1)                kl_weight
elbo_warmup        vae     rec + β·w(t)·KL, w(t)=min(1, t/N)             kl_weight, warmup_steps
elbo_cyclical      vae     rec + β·c(t)·KL, M cycles over T steps,       kl_weight, cycles,
                           each rising linearly for a fraction R         cycle_ratio, anneal_steps
elbo_free_bits     vae     rec + β·Σ_d max(λ, mean_batch KL_d)           kl_weight, free_bits
iwae               vae     −log (1/k) Σ_i p(x,z_i)/q(z_i|x)              iwae_k
ae                 ae      −log p(x | dec(enc(x)))                       –
denoising_ae       ae      −log p(x | dec(enc(x̃))), x̃ = corrupt(x)      noise_type, noise_std,
                                                                         mask_prob
sparse_ae          ae      −log p(x | dec(enc(x))) + α·Σ_d |z_d|          l1_weight
=================  ======  =====================================================================

``t`` is the global optimizer step (``step``), so schedules resume exactly from a checkpoint.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from vae_jax import distributions as D
from vae_jax.models import likelihood_of
from vae_jax.objectives import _mse, register, vae_terms

NOISE_TYPES = ("gaussian", "masking")


# ---------------------------------------------------------------------------- KL weight schedules
def warmup_factor(step, warmup_steps: int):
    """Linear KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): 0 at step 0, 1 from step N."""
    return jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / warmup_steps) if warmup_steps else 1.0


def cyclical_factor(step, anneal_steps: int, cycles: int, ratio: float):
    """Cyclical annealing (Fu et al. 2019): the first ``anneal_steps`` are split into ``cycles``
    periods; in each the weight rises linearly from 0 to 1 over the first ``ratio`` of the period
    and stays at 1 for the rest. After ``anneal_steps`` it stays at 1."""
    period = anneal_steps / cycles
    t = jnp.asarray(step, jnp.float32)
    tau = jnp.mod(t, period) / period
    rising = jnp.minimum(1.0, tau / ratio)
    return jnp.where(t >= anneal_steps, 1.0, rising)


def _vae_metrics(loss, rec, kl, lik_params, model, x, **extra):
    return dict({"loss": loss, "rec_loss": rec.mean(), "kl": kl.mean(), "neg_elbo": (rec + kl).mean(),
                 "mse": _mse(model, x, lik_params)}, **extra)


def _scheduled_elbo(model, params, x, key, weight):
    rec, kl_dims, aux = vae_terms(model, params, x, key)
    kl = kl_dims.sum(-1)
    loss = jnp.mean(rec + weight * kl)
    return loss, _vae_metrics(loss, rec, kl, aux["lik_params"], model, x,
                              kl_weight=jnp.asarray(weight, jnp.float32))


@register("elbo_warmup")
def elbo_warmup(model, params, x, key, step, cfg):
    """β-ELBO whose KL weight rises linearly from 0 to β over ``objective.warmup_steps`` steps."""
    return _scheduled_elbo(model, params, x, key, cfg.kl_weight * warmup_factor(step, cfg.warmup_steps))


@register("elbo_cyclical")
def elbo_cyclical(model, params, x, key, step, cfg):
    """β-ELBO with ``objective.cycles`` linear ramps (fraction ``objective.cycle_ratio`` of each
    period) over the first ``objective.anneal_steps`` steps."""
    w = cyclical_factor(step, cfg.anneal_steps, cfg.cycles, cfg.cycle_ratio)
    return _scheduled_elbo(model, params, x, key, cfg.kl_weight * w)


@register("elbo_free_bits")
def elbo_free_bits(model, params, x, key, step, cfg):
    """Free bits (Kingma et al. 2016): each latent dimension's batch-mean KL is floored at λ
    (``objective.free_bits``, nats), so the optimizer gains nothing from pushing a unit's KL below λ
    and collapsing it. ``neg_elbo`` is still the true (unfloored) bound."""
    rec, kl_dims, aux = vae_terms(model, params, x, key)
    kl_per_dim = kl_dims.mean(0)
    penalty = jnp.sum(jnp.maximum(cfg.free_bits, kl_per_dim))
    loss = rec.mean() + cfg.kl_weight * penalty
    return loss, _vae_metrics(loss, rec, kl_dims.sum(-1), aux["lik_params"], model, x,
                              dims_below_floor=jnp.sum(kl_per_dim < cfg.free_bits).astype(jnp.float32))


# ---------------------------------------------------------------------------- IWAE
def iwae_log_weights(model, params, x, key, k: int):
    """log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x) for z_i ~ q(z|x), i = 1..k.

    Returns (log_w [k, B], rec [k, B], kl [B] analytic, lik_params of sample 0). The samples are
    ``reparameterize(key, μ, log σ², k)``; for k = 1 they are the very ε the ``elbo`` objective
    draws from the same key."""
    mean, logvar = model.apply({"params": params}, x, method="encode")
    z = D.reparameterize(key, mean, logvar, k)                                  # [k, B, n]
    lik_params = model.apply({"params": params}, z.reshape((-1, z.shape[-1])), method="decode")
    lik_params = lik_params.reshape((k, x.shape[0]) + lik_params.shape[1:])
    log_px_z = likelihood_of(model).log_prob(x, lik_params)                      # [k, B]
    log_w = log_px_z + D.std_normal_log_prob(z) - D.diag_gaussian_log_prob(z, mean, logvar)
    kl = D.kl_diag_gaussian_std_normal(mean, logvar).sum(-1)
    return log_w, -log_px_z, kl, lik_params[0]


def log_mean_exp(a, axis=0):
    return jax.scipy.special.logsumexp(a, axis=axis) - jnp.log(a.shape[axis])


def log_effective_sample_size(log_w, axis=0):
    """log ESS of self-normalized importance weights: ESS = (Σw)² / Σw² ∈ [1, k]."""
    return 2 * jax.scipy.special.logsumexp(log_w, axis=axis) - jax.scipy.special.logsumexp(2 * log_w, axis=axis)


@register("iwae")
def iwae(model, params, x, key, step, cfg):
    """Importance-weighted bound with k = ``objective.iwae_k`` samples (Burda et al. 2016).

    The loss is written as ELBO + Jensen gap,
        L_k = [mean_i log p(x|z_i) − KL(q‖p)] + [log mean_i w_i − mean_i log w_i],
    whose expectation is exactly the IWAE bound (E_q[log w] equals the first bracket in expectation).
    Using the closed-form KL in the first bracket lowers variance and makes k = 1 *identical* to the
    ``elbo`` objective for the same key (the gap is exactly 0). ``neg_iwae`` reports the plain
    Monte-Carlo estimate −log mean_i w_i; ``log_ess`` is the log effective sample size (0 … log k):
    near 0 means one sample carries all the weight. ``objective.kl_weight`` is not used."""
    log_w, rec_k, kl, lik_params = iwae_log_weights(model, params, x, key, cfg.iwae_k)
    rec = rec_k.mean(0)
    log_mean_w = log_mean_exp(log_w)
    gap = log_mean_w - log_w.mean(0)
    loss = jnp.mean(rec + kl - gap)
    return loss, _vae_metrics(loss, rec, kl, lik_params, model, x, neg_iwae=-log_mean_w.mean(),
                              iwae_gap=gap.mean(), log_ess=log_effective_sample_size(log_w).mean())


# ---------------------------------------------------------------------------- regularized AEs
def corrupt(key, x, noise_type: str, noise_std: float, mask_prob: float):
    """Input corruption of the denoising AE (Vincent et al. 2008): additive Gaussian noise of std
    ``noise_std`` or masking noise that zeroes each pixel with probability ``mask_prob``."""
    if noise_type == "gaussian":
        return x + noise_std * jax.random.normal(key, x.shape, x.dtype)
    if noise_type == "masking":
        return x * jax.random.bernoulli(key, 1.0 - mask_prob, x.shape).astype(x.dtype)
    raise ValueError(f"objective.noise_type: {noise_type!r} is not one of {list(NOISE_TYPES)}")


def _ae_reconstruction(model, params, x_in, x_target):
    lik_params, z = model.apply({"params": params}, x_in)
    rec = -likelihood_of(model).log_prob(x_target, lik_params)
    return rec, z, lik_params


@register("denoising_ae", model_kinds=("ae", "linear_ae"))
def denoising_ae(model, params, x, key, step, cfg):
    """Reconstruct the clean x from a corrupted x̃ (``objective.noise_type``: 'gaussian' with
    ``noise_std`` or 'masking' with ``mask_prob``); the identity map no longer minimizes the loss."""
    x_noisy = corrupt(key, x, cfg.noise_type, cfg.noise_std, cfg.mask_prob)
    rec, _, lik_params = _ae_reconstruction(model, params, x_noisy, x)
    loss = rec.mean()
    return loss, {"loss": loss, "rec_loss": loss, "mse": _mse(model, x, lik_params),
                  "input_noise_mse": jnp.mean((x_noisy - x) ** 2)}


@register("sparse_ae", model_kinds=("ae", "linear_ae"))
def sparse_ae(model, params, x, key, step, cfg):
    """Reconstruction plus an L1 penalty α·Σ_d |z_d| on the code (α = ``objective.l1_weight``)."""
    rec, z, lik_params = _ae_reconstruction(model, params, x, x)
    code_l1 = jnp.abs(z).sum(-1).mean()
    loss = rec.mean() + cfg.l1_weight * code_l1
    return loss, {"loss": loss, "rec_loss": rec.mean(), "mse": _mse(model, x, lik_params),
                  "code_l1": code_l1, "code_near_zero": jnp.mean(jnp.abs(z) < 1e-2)}


# ---------------------------------------------------------------------------- config checks
# The ``objective`` fields each objective reads (a missing one is an error only when it is read).
FIELDS_USED = {
    "elbo_warmup": ("warmup_steps",),
    "elbo_cyclical": ("cycles", "cycle_ratio", "anneal_steps"),
    "elbo_free_bits": ("free_bits",),
    "iwae": ("iwae_k",),
    "denoising_ae": ("noise_type", "noise_std", "mask_prob"),
    "sparse_ae": ("l1_weight",),
}


def check_config(cfg) -> None:
    """Validates the ``objective`` fields above (registered in ``config_validation.EXTRA_CHECKS``)."""
    from vae_jax.config_validation import ConfigError, _choice, _number, _positive_int

    o, name = "objective", cfg.objective.name
    checks = {
        "warmup_steps": lambda p: _positive_int(cfg, p, allow_zero=True),
        "cycles": lambda p: _positive_int(cfg, p),
        "cycle_ratio": lambda p: _number(cfg, p, low=0, low_inclusive=False, high=1),
        "anneal_steps": lambda p: _positive_int(cfg, p, allow_zero=True),
        "free_bits": lambda p: _number(cfg, p, low=0),
        "iwae_k": lambda p: _positive_int(cfg, p),
        "noise_type": lambda p: _choice(cfg, p, NOISE_TYPES),
        "noise_std": lambda p: _number(cfg, p, low=0),
        "mask_prob": lambda p: _number(cfg, p, low=0, high=1),
        "l1_weight": lambda p: _number(cfg, p, low=0),
    }
    for field, check in checks.items():
        if field in cfg.objective or field in FIELDS_USED.get(name, ()):
            check(f"{o}.{field}")  # a missing field that the objective reads fails here, by name
    ob = cfg.objective
    if name == "denoising_ae" and ob.mask_prob >= 1:
        raise ConfigError(f"{o}.mask_prob: {ob.mask_prob!r} must be < 1 (1 masks every pixel)")
    if name == "elbo_warmup" and ob.warmup_steps < 1:
        raise ConfigError(f"{o}.warmup_steps: {ob.warmup_steps!r} must be >= 1 with "
                          "objective.name='elbo_warmup' (steps over which the KL weight rises to β)")
    if name == "elbo_cyclical" and ob.anneal_steps < ob.cycles:
        raise ConfigError(f"{o}.anneal_steps: {ob.anneal_steps!r} must be >= objective.cycles "
                          f"({ob.cycles}) with objective.name='elbo_cyclical' (total steps of the "
                          "cyclical schedule)")
