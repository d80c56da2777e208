"""Under- vs overcomplete autoencoders on MNIST, and what denoising / sparsity change.

    python experiments/under_vs_overcomplete/run.py --data_dir ../shared/data/mnist

Trains single-layer AEs x → z = W₁x + b₁ (n units) → x̂ = W₂z + b₂ with the MSE loss (Gaussian
likelihood, σ = 1) on grey-scale MNIST for n ∈ {2, 32, 784, 2048}, plus the denoising (Gaussian
noise) and sparse (L1 on z) objectives for the overcomplete sizes. For each it measures how close
the learned map is to the identity — reconstruction of corrupted digits and of pure-noise images —
and a linear-probe accuracy of the codes. Writes results.json / results.md and the README table.
"""
from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _shared  # noqa: E402
from vae_jax import data as data_lib, models  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LATENTS = (2, 32, 784, 2048)
REGULARIZED = (784, 2048)        # the overcomplete-or-equal sizes also get the regularized objectives
NOISE_STD = 0.3                  # denoising AE training noise, and the corruption used to test all AEs
L1_WEIGHT = 0.05
EVAL_IMAGES, PROBE_TRAIN, PROBE_STEPS = 5000, 5000, 200


def points():
    for n in LATENTS:
        yield n, "plain AE", {"objective.name": "ae"}
    for n in REGULARIZED:
        yield n, "denoising AE", {"objective.name": "denoising_ae", "objective.noise_type": "gaussian",
                                  "objective.noise_std": NOISE_STD}
        yield n, "sparse AE", {"objective.name": "sparse_ae", "objective.l1_weight": L1_WEIGHT}


def map_measurements(model, params, x, key):
    """Identity-ness of x ↦ x̂ on test digits x [N, 28, 28, 1]:
    * perturbation_gain = ‖x̂(x+ε) − x̂(x)‖² / ‖ε‖², ε ~ N(0, NOISE_STD²): the fraction of a small
      input perturbation's energy that reaches the output — 1 for the identity, ≈ n/784 for an
      orthogonal projection onto n dimensions;
    * denoise_ratio = MSE(x̂(x+ε), x) / MSE(x+ε, x), ε ~ N(0, NOISE_STD²): 1 for the identity map
      (noise passes through), < 1 for a map that projects back towards the digits;
    * noise_passthrough = 1 − MSE(x̂(u), u) / Var(u) for uniform-noise images u: 1 for the identity,
      ≈ 0 for a map whose outputs ignore what is not digit-like."""
    recon = jax.jit(lambda p, v: models.reconstruct(model, p, v))
    k1, k2 = jax.random.split(key)
    noisy = x + NOISE_STD * jax.random.normal(k1, x.shape)
    gain = float(jnp.mean((recon(params, noisy) - recon(params, x)) ** 2) / jnp.mean((noisy - x) ** 2))
    denoise_ratio = float(jnp.mean((recon(params, noisy) - x) ** 2) / jnp.mean((noisy - x) ** 2))
    u = jax.random.uniform(k2, (1000,) + x.shape[1:])
    passthrough = 1.0 - float(jnp.mean((recon(params, u) - u) ** 2) / jnp.var(u))
    return {"perturbation_gain": gain, "denoise_ratio": denoise_ratio, "noise_passthrough": passthrough}


def codes(model, params, x, batch=1000):
    enc = jax.jit(lambda p, v: model.apply({"params": p}, v, method="encode"))
    return np.concatenate([np.asarray(enc(params, x[i:i + batch])) for i in range(0, len(x), batch)])


def linear_probe(train_z, train_y, test_z, test_y, steps=PROBE_STEPS, l2=1e-4):
    """Multinomial logistic regression on standardized features (full-batch Adam); test accuracy."""
    mu, sd = train_z.mean(0), train_z.std(0) + 1e-6
    a, b = jnp.asarray((train_z - mu) / sd), jnp.asarray((test_z - mu) / sd)
    ya = jnp.asarray(train_y)
    params = {"w": jnp.zeros((a.shape[1], 10)), "b": jnp.zeros(10)}
    opt = optax.adam(1e-2)

    def loss(p):
        logits = a @ p["w"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, ya).mean() + l2 * jnp.sum(p["w"] ** 2)

    @jax.jit
    def fit(p):
        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None
        (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=steps)
        return p

    p = fit(params)
    return float(jnp.mean(jnp.argmax(b @ p["w"] + p["b"], -1) == jnp.asarray(test_y)))


def main():
    args = _shared.parse(_shared.parser("under_vs_overcomplete", __doc__, epochs=2))

    rows, ds = [], None
    for n, name, overrides in points():
        cfg = _shared.load_config("ae_mnist.py", dict(overrides, **{
            "model.latent_dim": n, "model.encoder_hidden": (), "model.decoder_hidden": ()}), args)
        if ds is None:
            ds = data_lib.load(cfg.data)
            x_test = ds.test_images[:EVAL_IMAGES].astype(np.float32) / 255.0
            x_probe = ds.train_images[:PROBE_TRAIN].astype(np.float32) / 255.0
            pixel_probe = linear_probe(x_probe.reshape(len(x_probe), -1), ds.train_labels[:PROBE_TRAIN],
                                       x_test.reshape(len(x_test), -1), ds.test_labels[:EVAL_IMAGES])
        workdir = os.path.join(args.workdir, f"n{n}_{name.split()[0]}")
        print(f"== n={n} {name}: {workdir}", flush=True)
        m = _shared.train_point(cfg, workdir)
        model, params, _ = _shared.load_trained(workdir, ds=ds)
        row = {"latent": n, "objective": name, "train_mse": _shared.last_train_metrics(workdir)["mse"],
               "test_mse": m["mse"], "train_seconds": m["train_seconds"]}
        row.update(map_measurements(model, params, jnp.asarray(x_test), jax.random.PRNGKey(0)))
        z_train, z_test = codes(model, params, x_probe), codes(model, params, x_test)
        row["probe_acc"] = linear_probe(z_train, ds.train_labels[:PROBE_TRAIN], z_test, ds.test_labels[:EVAL_IMAGES])
        row["code_near_zero"] = float(np.mean(np.abs(z_test) < 1e-2))
        rows.append(row)
        print(row, flush=True)
    columns = [("latent", "latent n", "d"), ("objective", "objective", "s"),
               ("train_mse", "train MSE (last epoch)", ".5f"), ("test_mse", "test MSE", ".5f"),
               ("perturbation_gain", "perturbation gain (1 = identity)", ".3f"),
               ("denoise_ratio", f"noisy-digit ratio MSE(x̂(x+ε),x)/MSE(x+ε,x), σ={NOISE_STD}", ".3f"),
               ("noise_passthrough", "noise pass-through (1 = identity)", ".3f"),
               ("probe_acc", "linear probe acc. on z", ".4f"), ("code_near_zero", "share of codes with abs(z) < 0.01", ".3f")]
    table = _shared.markdown_table(rows, columns)
    table += f"\n\nLinear probe on the raw pixels (same protocol): {pixel_probe:.4f}."
    protocol = {"command": "python experiments/under_vs_overcomplete/run.py --data_dir ../shared/data/mnist",
                "data": "MNIST IDX, 60k train / 10k test, pixels / 255 (no binarization)" if not args.tiny else "bundled tiny",
                "model": "single-layer AE: z = W1 x + b1, x̂ = W2 z + b2 (linear), Gaussian σ=1 likelihood (MSE)",
                "train": f"{args.epochs} epochs, batch 128, Adam 1e-3, seed 0",
                "denoising": f"Gaussian input noise σ = {NOISE_STD}", "sparse": f"L1 weight {L1_WEIGHT} on Σ|z_d|",
                "measurements": f"first {EVAL_IMAGES} test images; uniform-noise pass-through on 1000 U(0,1) "
                                f"images; linear probe: logistic regression (Adam 1e-2, {PROBE_STEPS} full-batch steps, "
                                f"L2 1e-4) on standardized codes of the first {PROBE_TRAIN} training images, "
                                f"accuracy on the {EVAL_IMAGES} test images",
                "pixel_probe_acc": pixel_probe, "jax_devices": [str(d) for d in jax.devices()]}
    _shared.write_results(HERE, args, rows, table, protocol)


if __name__ == "__main__":
    main()
