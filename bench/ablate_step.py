"""Profile-guided ablation of the training step: which per-step work costs what.

    python bench/ablate_step.py [--data_dir DIR] [--rounds 5] [--subset 25600] [--variants a,b,...]

Builds the scan epoch the trainer uses (``vae_jax.train.make_train_epoch``) and variants that each
remove or replace one piece of per-step work, then times them round-robin in one process (so every
variant sees the same machine load) and prints the median time per epoch relative to the trainer.
Variants that only change a process-wide setting (PRNG implementation, XLA flags) are run in a
child process per setting with ``--only``. ``optax_adam`` is the trainer with ``train.fused_adam=
'off'``; ``prepare_in_step`` is the trainer's own step with its input prepared inside the step
instead of one iteration ahead. The other variants rebuild the step
with optax's Adam and the input prepared inside the step (the trainer before the fused Adam kernel
and the pipelined input): compare them with ``copy``, which is that step unchanged.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def make_variant_epoch(model, config, n_train, variant):
    """A copy of the trainer's epoch with one change, named by ``variant``."""
    import jax
    import jax.numpy as jnp

    from vae_jax import data as data_lib, objectives, train

    if variant == "trainer":
        return train.make_train_epoch(model, config, n_train)[0]
    if variant == "optax_adam":  # the trainer with optax's Adam instead of the fused kernel
        cfg = config.copy_and_resolve_references()
        cfg.train.fused_adam = "off"
        return train.make_train_epoch(model, cfg, n_train)[0]
    batch_size, obj_cfg = config.train.batch_size, config.objective
    num_steps = n_train // batch_size
    if variant == "prepare_in_step":  # the trainer's own step, its input prepared inside the step
        from vae_jax import fused_adam

        train_step = train.make_train_step(model, config, fused_adam.plan(config, model), num_steps)

        @functools.partial(jax.jit, donate_argnums=(0,))
        def in_step_epoch(state, images_u8, epoch_key, noise_key):
            perm = jax.random.permutation(epoch_key, images_u8.shape[0])[: num_steps * batch_size]
            return jax.lax.scan(lambda st, idx: train_step(st, images_u8[idx], noise_key), state,
                                perm.reshape(num_steps, batch_size))
        return in_step_epoch
    objective = objectives.get_objective(config.objective.name)
    unroll = int(variant.split("unroll")[1]) if variant.startswith("unroll") else 1

    def to_float(u8, key):
        if variant == "bits16":  # 16 random bits per pixel instead of a float32 uniform
            bits = jax.random.bits(key, u8.shape, jnp.uint16)
            return (bits < u8.astype(jnp.uint16) * 257).astype(jnp.float32)
        if variant == "bits8":
            bits = jax.random.bits(key, u8.shape, jnp.uint8)
            return (bits < u8).astype(jnp.float32)
        if variant == "halves16":  # each threefry 32-bit word gives two 16-bit thresholds
            n = u8.size
            words = jax.random.bits(key, ((n + 1) // 2,), jnp.uint32)
            bits = jnp.stack([words & 0xFFFF, words >> 16], -1).reshape(-1)[:n].reshape(u8.shape)
            return (bits < u8.astype(jnp.uint32) * 257).astype(jnp.float32)
        if variant == "philox_bin":  # XLA's RngBitGenerator (Philox) seeded from the threefry key
            seed = jax.random.key_data(key).reshape(-1)
            state = jnp.concatenate([seed, seed ^ jnp.uint32(0x9E3779B9)]).astype(jnp.uint32)
            _, bits = jax.lax.rng_bit_generator(state, u8.shape, jnp.uint32,
                                                algorithm=jax.lax.RandomAlgorithm.RNG_PHILOX)
            return ((bits >> 16) < u8.astype(jnp.uint32) * 257).astype(jnp.float32)
        if variant == "no_binarize":
            return u8.astype(jnp.float32) * (1.0 / 255.0)
        return data_lib.to_float(u8, "dynamic", key)

    def fused_elbo(params, x, key):
        # -log Bernoulli(x; l) = softplus(l) - x·l (one softplus instead of distrax's two)
        lik, mean, logvar, _ = model.apply({"params": params}, x, key)
        l, xf = lik[..., 0].reshape(x.shape[0], -1), x.reshape(x.shape[0], -1)
        rec = jnp.sum(jax.nn.softplus(l) - xf * l, -1)
        kl = jnp.sum(0.5 * (jnp.exp(logvar) + mean**2 - 1.0 - logvar), -1)
        loss = jnp.mean(rec + kl)
        return loss, {"loss": loss, "rec_loss": rec.mean(), "kl": kl.mean(), "neg_elbo": loss,
                      "mse": jnp.mean((jax.nn.sigmoid(l) - xf) ** 2)}

    def loss_fn(params, x, key, step):
        if variant == "fused_elbo":
            return fused_elbo(params, x, key)
        if variant == "bf16_compute":  # profile only: mixed precision (bf16 operands, f32 master weights)
            p16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
            loss, metrics = objective(model, p16, x.astype(jnp.bfloat16), key, step, obj_cfg)
            return loss.astype(jnp.float32), {k: v.astype(jnp.float32) for k, v in metrics.items()}
        loss, metrics = objective(model, params, x, key, step, obj_cfg)
        if variant == "no_mse":
            metrics = {k: v for k, v in metrics.items() if k != "mse"}
        return loss, metrics

    def step_fn(state, batch_u8, noise_key):
        k_bin, k_obj = jax.random.split(jax.random.fold_in(noise_key, state.step))
        x = to_float(batch_u8, k_bin)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, x, k_obj, state.step)
        if variant == "sgd_profile":  # profile only: what the Adam update costs
            new = state.replace(step=state.step + 1,
                                params=jax.tree.map(lambda p, g: p - 1e-4 * g, state.params, grads))
        else:
            new = state.apply_gradients(grads=grads)
        if variant == "no_finite":
            finite = jnp.isfinite(loss)
        elif variant == "finite_sum0":  # one NaN-propagating reduction instead of isfinite per leaf
            finite = jnp.isfinite(loss + sum(jnp.sum(g * 0.0) for g in jax.tree.leaves(grads)))
        elif variant == "finite_grads":  # the earlier check: isfinite over every gradient leaf
            finite = jnp.isfinite(loss) & jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
        else:  # as the trainer: one sum per leaf of the updated parameters
            finite = jnp.isfinite(loss) & train._tree_all_finite(new.params)
        return new, dict(metrics, finite=finite.astype(jnp.float32))

    @functools.partial(jax.jit, donate_argnums=(0,))
    def epoch(state, images_u8, epoch_key, noise_key):
        perm = jax.random.permutation(epoch_key, images_u8.shape[0])[: num_steps * batch_size]
        if variant == "float_images":  # gather from a pre-converted float32 copy
            images_u8 = images_u8.astype(jnp.float32)

        def body(st, idx):
            return step_fn(st, images_u8[idx], noise_key)

        return jax.lax.scan(body, state, perm.reshape(num_steps, batch_size), unroll=unroll)

    return epoch


VARIANTS = ("trainer", "optax_adam", "prepare_in_step", "copy", "no_mse", "no_finite", "finite_sum0", "bits16", "bits8", "halves16",
            "philox_bin", "no_binarize", "fused_elbo", "sgd_profile", "unroll2", "unroll4", "float_images",
            "bf16_compute", "finite_grads")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--subset", type=int, default=25600)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args(argv)

    import jax

    from vae_jax import train

    config, ds, model, keys, images = common.default_vae(args.data_dir, args.subset, args.batch_size)
    variants = args.variants.split(",")
    epochs, states = {}, {}
    for v in variants:
        epochs[v] = make_variant_epoch(model, config, len(images), v)
        states[v] = train.create_state(config, model, keys["init"], ds.image_shape)
        states[v], m = epochs[v](states[v], images, keys["data"], keys["noise"])  # compile + warm up
        jax.block_until_ready(m)
    times, cpu = common.time_epochs_round_robin(epochs, states, images, keys, args.rounds)
    n_ex = (len(images) // args.batch_size) * args.batch_size
    base, base_cpu = common.median(times[variants[0]]), common.median(cpu[variants[0]])
    result = {}
    for v in variants:
        med, med_cpu = common.median(times[v]), common.median(cpu[v])
        result[v] = {"examples_per_s": n_ex / med, "time_vs_first": med / base,
                     "cpu_s_per_epoch": med_cpu, "cpu_vs_first": med_cpu / base_cpu}
        print(f"{v:14s} {n_ex / med:9,.0f} examples/s   wall x{med / base:.3f}   "
              f"cpu x{med_cpu / base_cpu:.3f} of {variants[0]}")
    print(json.dumps({"load_avg": common.load_avg(), "jax_prng": jax.config.jax_default_prng_impl,
                      "xla_flags": os.environ.get("XLA_FLAGS", ""), "variants": result}))


if __name__ == "__main__":
    main()
