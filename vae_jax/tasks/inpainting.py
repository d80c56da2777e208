"""Inpainting: fill the hidden pixels of a test image from its observed ones.

Masks (1 = observed, 0 = hidden): ``bottom_half``, ``centre_square`` (the central half-size
square), ``random`` (each pixel hidden with probability ``tasks.inpaint.random_hidden_fraction``)
and ``quadrant`` (one of the four quadrants, drawn per image). A mask hides whole pixels: on
colour images all channels of a hidden pixel are hidden together.

Methods
  * ``vae_opt``   the trained unconditional VAE; per image, q(z) = N(μ, diag σ²) is initialised by
                  the encoder on the mean-filled image and optimised (Adam) on the masked ELBO
                  E_q[Σ_observed log p(x_i|z)] − KL(q ‖ N(0, I)); completions decode z ~ q.
  * ``vae_gibbs`` pseudo-Gibbs (Rezende et al. 2014): alternately z ~ q(z | x̃) with the encoder and
                  x̃_hidden ← E[x_hidden | z], observed pixels clamped; one chain per completion.
  * ``cvae``      a conditional VAE p(x | x⊙m, m, z) trained here on (masked image → full image)
                  with random masks of the configured kinds, same layer sizes and epochs as the run.
  * ``mean_fill`` the mean training image; ``zero_fill`` black; ``nearest_neighbour`` the training
                  image closest on the observed pixels (L2).

Every method returns only the hidden pixels: the completed image is ``m·x + (1−m)·prediction``, so
observed pixels are never changed. The masked ELBO, the CVAE's loss and the NLL read the
likelihood only through ``protocol.observed_log_prob`` (log p of the observed pixels) and
``likelihood.mean``, so any likelihood works: Bernoulli on binarized digits, the discretized
mixture of logistics on 8-bit colour photos. Metrics (``inpaint_metrics``) are over the hidden
pixels only: MSE, PSNR and SSIM of the mean completion, best-of-N MSE / PSNR / SSIM over the N
completions, NLL of the hidden pixels under the mixture of the N completions' likelihoods (a fixed
binarization for Bernoulli models, the 8-bit values for discretized ones; for the mean fill its one
Bernoulli / Gaussian), and a classifier's accuracy on the completed images (``tasks.classifier``;
'none' for data whose labels are no classes, e.g. the photo a patch came from).
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import vae_jax.models.cvae as cvae_lib
import vae_jax.models.distributions as D
import vae_jax.models.protocol as protocol
import vae_jax.tasks.fit as fit_lib
from vae_jax.models import likelihood_of
import vae_jax.tasks.common as common
from vae_jax.tasks.inpaint_metrics import measure, mixture_nll, save_mask_grid, write_tables  # noqa: F401
import vae_jax.training.runs as runs


# ---------------------------------------------------------------------------- masks
def make_masks(kind: str, key, n: int, shape, hidden_fraction: float = 0.75):
    """[n, H, W, C] float masks, 1 = observed. ``key`` only matters for 'random' and 'quadrant'."""
    h, w, c = shape
    rows = jnp.arange(h)[:, None]
    cols = jnp.arange(w)[None, :]
    if kind == "bottom_half":
        hidden = jnp.broadcast_to(rows >= h // 2, (h, w))
    elif kind == "centre_square":
        hidden = (jnp.abs(rows - (h - 1) / 2) < h / 4) & (jnp.abs(cols - (w - 1) / 2) < w / 4)
    elif kind == "random":
        hidden = jax.random.uniform(key, (n, h, w)) < hidden_fraction
    elif kind == "quadrant":
        q = jax.random.randint(key, (n,), 0, 4)
        top, left = (q // 2)[:, None, None], (q % 2)[:, None, None]
        hidden = ((rows[None] < h // 2) == (top == 0)) & ((cols[None] < w // 2) == (left == 0))
    else:
        raise ValueError(f"tasks.inpaint.masks: {kind!r} is not one of {list(common.MASK_KINDS)}")
    hidden = jnp.broadcast_to(hidden, (n, h, w))
    return jnp.broadcast_to((~hidden).astype(jnp.float32)[..., None], (n, h, w, c))


def random_training_masks(key, shape, kinds, hidden_fraction):
    """One mask per example, its kind drawn uniformly from ``kinds`` (for training the CVAE)."""
    n = shape[0]
    keys = jax.random.split(key, len(kinds) + 1)
    all_masks = jnp.stack([make_masks(k, keys[i], n, shape[1:], hidden_fraction) for i, k in enumerate(kinds)])
    pick = jax.random.randint(keys[-1], (n,), 0, len(kinds))
    return all_masks[pick, jnp.arange(n)]


def condition(x, m):
    """The CVAE's input: the observed pixels (hidden ones zeroed) and the mask itself."""
    return jnp.concatenate([x * m, m], axis=-1)


def complete(x, m, prediction):
    """Observed pixels from ``x``, hidden ones from ``prediction`` (broadcast over sample axes)."""
    return m * x + (1.0 - m) * prediction


# ---------------------------------------------------------------------------- CVAE objective
def cvae_inpaint_objective(model, params, x, key, step, cfg):
    """−ELBO of the hidden pixels given (x⊙m, m) under a random mask of the configured kinds.
    ``x`` arrives gray (the condition sees gray pixels, as at test time); for a Bernoulli model
    the target is a fresh binarization of it (dynamic binarization, as the unconditional VAE)."""
    k_mask, k_bin, k_z = jax.random.split(key, 3)
    kinds = tuple(cfg.masks.split(","))
    m = random_training_masks(k_mask, x.shape, kinds, cfg.random_hidden_fraction)
    y = (jax.random.uniform(k_bin, x.shape) < x).astype(x.dtype) if model.likelihood == "bernoulli" else x
    return cvae_lib.conditional_elbo(model, params, y, condition(x, m), k_z, weight=1.0 - m)


def train_cvae(run, tasks, workdir):
    model = cvae_lib.build(run.config.model, run.ds.image_shape)
    cond_shape = run.ds.image_shape[:2] + (2 * run.ds.image_shape[2],)
    params = fit_lib.fit(model, run.config, cvae_inpaint_objective,
                          {"masks": ",".join(common.mask_kinds(tasks)),
                           "random_hidden_fraction": tasks.inpaint.random_hidden_fraction},
                          run.ds.train_images, (run.ds.image_shape, cond_shape),
                          fit_lib.checkpoint_dir(workdir, "cvae_inpaint"), label="cvae_inpaint")
    return model, params


# ---------------------------------------------------------------------------- VAE inference
def _masked_neg_elbo(model, params, x, m, mean, logvar, key, num_mc):
    """Per-image −(E_q Σ_observed log p(x_i|z) − KL), num_mc reparameterized samples."""
    lik = likelihood_of(model)
    z = D.reparameterize(key, mean, logvar, num_mc)  # [S, B, n]
    out = model.apply({"params": params}, z.reshape(-1, z.shape[-1]), method="decode")
    out = out.reshape(z.shape[:2] + out.shape[1:])
    rec = -protocol.observed_log_prob(lik, x, out, m).mean(0)
    return rec + D.kl_diag_gaussian_std_normal(mean, logvar).sum(-1)


@functools.partial(jax.jit, static_argnames=("model", "steps", "num_mc", "lr"))
def fit_masked_posterior(model, params, x, m, fill, key, steps: int, lr: float, num_mc: int):
    """Optimises per-image (μ, log σ²) on the masked ELBO; returns them and the final −ELBO [B]."""
    mean0, logvar0 = model.apply({"params": params}, complete(x, m, fill), method="encode")
    tx = optax.adam(lr)
    q = (mean0, logvar0)

    def loss(q, k):
        return _masked_neg_elbo(model, params, x, m, q[0], q[1], k, num_mc).sum()

    def step(carry, i):
        q, s = carry
        g = jax.grad(loss)(q, jax.random.fold_in(key, i))
        upd, s = tx.update(g, s, q)
        return (optax.apply_updates(q, upd), s), None

    (q, _), _ = jax.lax.scan(step, (q, tx.init(q)), jnp.arange(steps))
    final = _masked_neg_elbo(model, params, x, m, q[0], q[1], jax.random.fold_in(key, steps), num_mc)
    return q[0], q[1], final


@functools.partial(jax.jit, static_argnames=("model", "num_samples"))
def decode_from_q(model, params, mean, logvar, key, num_samples: int):
    z = D.reparameterize(key, mean, logvar, num_samples)
    out = model.apply({"params": params}, z.reshape(-1, z.shape[-1]), method="decode")
    return out.reshape(z.shape[:2] + out.shape[1:])


@functools.partial(jax.jit, static_argnames=("model", "steps", "num_chains"))
def pseudo_gibbs(model, params, x, m, fill, key, steps: int, num_chains: int):
    """``num_chains`` pseudo-Gibbs chains per image; returns likelihood params [N, B, ...]."""
    lik = likelihood_of(model)
    xs = jnp.broadcast_to(x, (num_chains,) + x.shape).reshape((-1,) + x.shape[1:])
    ms = jnp.broadcast_to(m, (num_chains,) + m.shape).reshape(xs.shape)
    x0 = complete(xs, ms, fill)

    def body(xt, i):
        mean, logvar = model.apply({"params": params}, xt, method="encode")
        z = D.reparameterize(jax.random.fold_in(key, i), mean, logvar)
        out = model.apply({"params": params}, z, method="decode")
        return complete(xs, ms, lik.mean(out)), out

    _, outs = jax.lax.scan(body, x0, jnp.arange(steps))
    last = outs[-1]
    return last.reshape((num_chains, x.shape[0]) + last.shape[1:])


def nearest_neighbour(x, m, train_x, chunk: int = 250):
    """Training image closest to each ``x`` on its observed pixels (squared L2 over m=1)."""
    t = jnp.asarray(train_x.reshape(len(train_x), -1))
    t2 = t ** 2

    @jax.jit
    def best(xb, mb):
        xf, mf = xb.reshape(len(xb), -1), mb.reshape(len(mb), -1)
        # ||m⊙(x − t)||² = Σ m x² − 2 Σ m x t + Σ m t², the last two as matmuls over the train set
        d = jnp.sum(mf * xf ** 2, -1, keepdims=True) - 2 * (mf * xf) @ t.T + mf @ t2.T
        return jnp.argmin(d, axis=-1)

    idx = common.batched(best, np.asarray(x), np.asarray(m), batch_size=chunk)
    return np.asarray(train_x)[idx]


# ---------------------------------------------------------------------------- the mode
def run_inpaint(config, workdir: str) -> dict:
    """``--mode=inpaint``: every method on every mask kind; writes inpaint.json, inpaint.md,
    inpaint_<mask>.png and regenerates report.html. Trains the unconditional VAE first when the
    workdir holds none (with ``--config``), and the CVAE (cached in workdir/cvae_inpaint/)."""
    if not runs.has_checkpoint(workdir):
        if config is None:
            from vae_jax.errors import ConfigError
            raise ConfigError(f"--workdir: {workdir!r} holds no trained VAE and no --config was given to train one")
        print(f"inpaint: no trained model in {workdir}; training one with the given config first", flush=True)
        runs.train_and_evaluate(config, workdir)
    run = common.load_run(workdir, common.data_dir_of(config))
    if not run.model.is_vae:
        from vae_jax.errors import ConfigError
        raise ConfigError(f"model.kind: the run in {workdir} is {run.config.model.kind!r}; inpainting by "
                          "posterior inference needs model.kind='vae'")
    tasks = common.tasks_of(config, run)
    t = tasks.inpaint
    ds, model, params = run.ds, run.model, run.params
    lik = likelihood_of(model)
    x, labels = common.eval_split(ds, tasks)
    n = len(x)
    key = jax.random.PRNGKey(run.config.seed + 4242)
    classifier = common.digit_classifier(ds, workdir, run.config.seed, tasks.get("classifier", "auto"))
    train_x = ds.train_images.astype(np.float32) / 255.0
    fill = jnp.asarray(train_x.mean(0))
    # The NLL target: one fixed binarization of the test images for Bernoulli models, else gray.
    target = (np.asarray(jax.random.uniform(jax.random.fold_in(key, 1), x.shape)) < x).astype(np.float32) \
        if model.likelihood == "bernoulli" else x
    cvae_model = cvae_params = None
    if t.cvae:
        cvae_model, cvae_params = train_cvae(run, tasks, workdir)

    def fill_params(img):  # the mean image as likelihood parameters, where that is defined
        if model.likelihood == "bernoulli":
            p = jnp.clip(img, 1e-4, 1 - 1e-4)
            return (jnp.log(p) - jnp.log1p(-p))[None, None, ..., None]
        if model.likelihood == "gaussian":
            return jnp.asarray(img)[None, None, ..., None]
        return None

    results, tables = {}, []
    xj = jnp.asarray(x)
    for mi, kind in enumerate(common.mask_kinds(tasks)):
        km = jax.random.fold_in(key, 100 + mi)
        m = make_masks(kind, km, n, ds.image_shape, t.random_hidden_fraction)
        mn = np.asarray(m)
        hidden = 1.0 - m
        methods = {}
        fp = fill_params(fill)
        methods["mean_fill"] = (np.asarray(complete(xj, m, fill))[None],
                                None if fp is None else mixture_nll(lik, target, hidden, jnp.broadcast_to(fp, (1, n) + fp.shape[2:])))
        methods["zero_fill"] = (np.asarray(complete(xj, m, 0.0))[None], None)
        methods["nearest_neighbour"] = (np.asarray(complete(xj, m, nearest_neighbour(x, mn, train_x)))[None], None)

        def vae_opt(xb, mb, kb):
            mean, logvar, _ = fit_masked_posterior(model, params, xb, mb, fill, kb, t.opt_steps,
                                                   float(t.opt_learning_rate), t.opt_mc_samples)
            return decode_from_q(model, params, mean, logvar, jax.random.fold_in(kb, 1), t.num_samples)

        def gibbs(xb, mb, kb):
            return pseudo_gibbs(model, params, xb, mb, fill, kb, t.gibbs_steps, t.num_samples)

        stochastic = {"vae_opt": vae_opt, "vae_gibbs": gibbs}
        if cvae_model is not None:
            stochastic["cvae"] = lambda xb, mb, kb: cvae_lib.sample(cvae_model, cvae_params, condition(xb, mb), kb,
                                                                    t.num_samples)
        for mk, (name, fn) in enumerate(stochastic.items()):
            kk = jax.random.fold_in(km, 10 + mk)
            # Batches of 500 images keep memory bounded ([N, B, H, W, C, P] likelihood params).
            outs = [fn(xj[i:i + 500], m[i:i + 500], jax.random.fold_in(kk, i)) for i in range(0, n, 500)]
            lp = jnp.concatenate(outs, axis=1)
            comp = np.asarray(complete(xj, m, lik.mean(lp)))
            methods[name] = (comp, mixture_nll(lik, target, hidden, lp))
        results[kind] = {}
        for name, (comp, nll) in methods.items():
            results[kind][name] = measure(x, mn, comp, labels, classifier, nll)
            tables.append(dict(mask=kind, method=name, **results[kind][name]))
        save_mask_grid(workdir, kind, x, mn, methods, t.grid_images)
        print(f"inpaint {kind}: " + ", ".join(f"{k} psnr {v['psnr']:.2f}" for k, v in results[kind].items()),
              flush=True)

    nll_unit = ("fixed binarization of the hidden pixels" if model.likelihood == "bernoulli" else
                "8-bit hidden pixel values" if lik.needs_8bit_data else "gray hidden pixels")
    out = {"masks": results, "num_images": n, "classifier": None if classifier is None else classifier.source,
           "classifier_clean_accuracy": None if classifier is None else classifier.clean_accuracy,
           "settings": tasks.inpaint.to_dict(), "data": ds.meta.get("source"), "nll_target": nll_unit}
    common.save_json(workdir, "inpaint.json", out)
    write_tables(workdir, tables, n, classifier, nll_unit)
    common.finish(workdir)
    print(f"inpaint: {os.path.abspath(workdir)}/inpaint.json, inpaint.md, inpaint_*.png", flush=True)
    return out
