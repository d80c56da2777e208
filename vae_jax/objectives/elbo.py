"""The ELBO family: β-ELBO, KL warm-up, cyclical KL annealing, free bits.

=================  =====================================================  ==========================
name               loss (batch mean, nats per example)                      fields of ``objective``
=================  =====================================================  ==========================
elbo               rec + β·KL  (β-VAE for β ≠ 1)                             kl_weight
elbo_warmup        rec + β·w(t)·KL, w(t)=min(1, t/N)                         warmup_steps
elbo_cyclical      rec + β·c(t)·KL, M cycles over T steps, each rising        cycles, cycle_ratio,
                   linearly for a fraction R                                  anneal_steps
elbo_free_bits     rec + β·Σ_d max(λ, mean_batch KL_d)                       free_bits
=================  =====================================================  ==========================

``t`` is the global optimizer step, so schedules resume exactly from a checkpoint. All of them are
written on the latent-variable protocol (vae_jax/models/protocol.py), so they apply to every
latent family: KL is the closed form where the family has one, else log q − log p on the sample;
free bits floors each unit of every layer (``layer_kl``).
"""
from __future__ import annotations

import jax.numpy as jnp

from vae_jax import checks
from vae_jax.errors import ConfigError
import vae_jax.models.protocol as protocol
from vae_jax.objectives.registry import register, vae_metrics, vae_terms


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


def _weighted_elbo(model, params, x, key, weight, **extra):
    rec, kl, lik_params = vae_terms(model, params, x, key)
    loss = jnp.mean(rec + weight * kl)
    return loss, vae_metrics(loss, rec, kl, lik_params, model, x, **extra)


@register("elbo")
def elbo(model, params, x, key, step, cfg):
    """-ELBO with KL weight β (``objective.kl_weight``; β=1 is the ELBO, β≠1 the β-VAE)."""
    return _weighted_elbo(model, params, x, key, cfg.kl_weight)


def _check_warmup(cfg):
    checks.positive_int(cfg, "objective.warmup_steps")


@register("elbo_warmup", fields=("warmup_steps",), check=_check_warmup)
def elbo_warmup(model, params, x, key, step, cfg):
    """β-ELBO whose KL weight rises linearly from 0 to β over ``objective.warmup_steps`` steps."""
    w = cfg.kl_weight * warmup_factor(step, cfg.warmup_steps)
    return _weighted_elbo(model, params, x, key, w, kl_weight=jnp.asarray(w, jnp.float32))


def _check_cyclical(cfg):
    checks.positive_int(cfg, "objective.cycles")
    checks.number(cfg, "objective.cycle_ratio", low=0, low_inclusive=False, high=1)
    checks.positive_int(cfg, "objective.anneal_steps", allow_zero=True)
    ob = cfg.objective
    if ob.anneal_steps < ob.cycles:
        raise ConfigError(f"objective.anneal_steps: {ob.anneal_steps!r} must be >= objective.cycles "
                          f"({ob.cycles}) with objective.name='elbo_cyclical' (total steps of the "
                          "cyclical schedule)")


@register("elbo_cyclical", fields=("cycles", "cycle_ratio", "anneal_steps"), check=_check_cyclical)
def elbo_cyclical(model, params, x, key, step, cfg):
    """β-ELBO with ``objective.cycles`` linear ramps (fraction ``objective.cycle_ratio`` of each
    period) over the first ``objective.anneal_steps`` steps."""
    w = cfg.kl_weight * cyclical_factor(step, cfg.anneal_steps, cfg.cycles, cfg.cycle_ratio)
    return _weighted_elbo(model, params, x, key, w, kl_weight=jnp.asarray(w, jnp.float32))


def _check_free_bits(cfg):
    checks.number(cfg, "objective.free_bits", low=0)


@register("elbo_free_bits", fields=("free_bits",), check=_check_free_bits)
def elbo_free_bits(model, params, x, key, step, cfg):
    """Free bits (Kingma et al. 2016): each latent dimension's batch-mean KL is floored at λ
    (``objective.free_bits``, nats), so the optimizer gains nothing from pushing a unit's KL below λ
    and collapsing it. ``neg_elbo`` is still the true (unfloored) bound."""
    rec, kl, lik_params, kl_units = protocol.elbo_terms_per_unit(model, params, x, key)
    # Batch-mean KL of every unit of every layer (closed form, or on the ELBO's own sample).
    kl_per_dim = jnp.concatenate([v.mean(0) for v in kl_units.values()])
    penalty = jnp.sum(jnp.maximum(cfg.free_bits, kl_per_dim))
    loss = rec.mean() + cfg.kl_weight * penalty
    return loss, vae_metrics(loss, rec, kl, lik_params, model, x,
                             dims_below_floor=jnp.sum(kl_per_dim < cfg.free_bits).astype(jnp.float32))
