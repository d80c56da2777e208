"""What the application modes share: their config section, loading a trained run, a digit
classifier for the metrics, per-region error measures, labelled image grids and the JSON/report
outputs.

Modes ``interpolate``, ``latents`` and ``inpaint`` work on a run trained in ``workdir``: the model,
data and seed come from ``workdir/config.json`` and the latest checkpoint; only the ``tasks``
section of the ``--config`` given on the command line is read (so one can change e.g.
``--config.tasks.inpaint.num_samples`` without retraining).
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np



from vae_jax.tasks.settings import MASK_KINDS, mask_kinds, shrink_for_tests, task_config, validate_tasks  # noqa: E402,F401


# ---------------------------------------------------------------------------- trained runs
def load_run(workdir: str, data_dir: str = "", ds=None):
    """The trained run in ``workdir`` (``vae_jax.training.runs.load_run``). The task modes read
    codes as one array (a Gaussian encoder's means, or an autoencoder's code), so a family without
    either (hierarchies, flows, learned priors) is refused naming its kind."""
    import vae_jax.models.families as families
    import vae_jax.training.runs as runs
    from vae_jax.errors import ConfigError

    run = runs.load_run(workdir, data_dir, ds)
    caps = families.get_family(run.config.model.kind).capabilities
    if not caps & {families.GAUSSIAN_ENCODER, families.AUTOENCODER}:
        raise ConfigError(f"model.kind: the run in {workdir} is {run.config.model.kind!r}; the task modes need "
                          f"one code per image, from model.kind in "
                          f"{families.supporting([families.GAUSSIAN_ENCODER]) + families.supporting([families.AUTOENCODER])}")
    return run


def tasks_of(config, run=None) -> ml_collections.ConfigDict:
    """The tasks section: from the command-line config if it has one, else the run's, else defaults."""
    if config is not None and "tasks" in config:
        return config.tasks
    if run is not None and "tasks" in run.config:
        merged = task_config()
        merged.update(run.config.tasks)
        return merged
    return task_config()


def data_dir_of(config) -> str:
    """A data directory given on the command line wins over the one recorded in the run."""
    if config is None:
        return ""
    if "tasks" in config and config.tasks.data_dir:
        return config.tasks.data_dir
    return ""


def eval_split(ds, tasks):
    """The first ``tasks.eval_subset`` test images as floats in [0, 1] and their labels."""
    n = tasks.eval_subset or len(ds.test_images)
    n = min(n, len(ds.test_images))
    return ds.test_images[:n].astype(np.float32) / 255.0, ds.test_labels[:n]


def encode_mean(model, params, x):
    """E_q[z] for a VAE, the code for an AE."""
    out = model.apply({"params": params}, x, method="encode")
    return out[0] if model.is_vae else out


def decode_mean(model, params, z):
    from vae_jax.models import likelihood_of
    return likelihood_of(model).mean(model.apply({"params": params}, z, method="decode"))


def batched(fn, *arrays, batch_size: int = 1000):
    """Applies ``fn`` to slices of the leading axis and concatenates (bounded memory)."""
    n = len(arrays[0])
    outs = [fn(*(a[i:i + batch_size] for a in arrays)) for i in range(0, n, batch_size)]
    return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *outs)


# ---------------------------------------------------------------------------- classifier
def digit_classifier(ds, workdir: str, seed: int = 0, which: str = "auto"):
    """A function images [B,H,W,C] in [0,1] -> logits [B, K] for the task metrics, with
    ``predict``/``probs`` helpers and its clean test accuracy (metrics are read against it).

    ``which`` (``tasks.classifier``): ``cnn`` the evaluation suite's CNN (``vae_jax.classifier``,
    trained once per dataset and cached); ``mlp`` a 784-256-10 MLP trained here for 3 epochs and
    cached in ``workdir/task_classifier.msgpack``; ``auto`` the CNN when that module exists;
    ``none``: no classifier (returns None), for labels that are not classes of the image content
    (the photo set's label is the photo a patch came from, and test photos are never trained on)."""
    if which == "none":
        return None
    if which in ("auto", "cnn"):
        try:
            import vae_jax.evaluation.classifier as clf_lib
        except ImportError:
            if which == "cnn":
                raise
        else:
            clf = clf_lib.get_classifier(ds)
            logits = jax.jit(lambda x: clf.model.apply({"params": clf.params}, x))
            return _Classifier(logits, float(clf.test_accuracy), "CNN of vae_jax.classifier")
    return _mlp_classifier(ds, workdir, seed)


class _Classifier:
    def __init__(self, logits_fn, accuracy, source):
        self.logits, self.clean_accuracy, self.source = logits_fn, accuracy, source

    def __call__(self, x):
        return self.logits(x)

    def predict(self, x):
        return batched(lambda b: np.argmax(np.asarray(self.logits(jnp.asarray(b))), -1), np.asarray(x))

    def probs(self, x):
        return batched(lambda b: np.asarray(jax.nn.softmax(self.logits(jnp.asarray(b)), -1)), np.asarray(x))


def _with_accuracy(logits_fn, ds, source):
    c = _Classifier(logits_fn, 0.0, source)
    x = ds.test_images.astype(np.float32) / 255.0
    c.clean_accuracy = float(np.mean(c.predict(x) == ds.test_labels))
    return c


def _mlp_classifier(ds, workdir, seed):
    import flax.serialization
    import optax

    import vae_jax.models.nets as nets

    num_classes = int(max(ds.train_labels.max(), ds.test_labels.max())) + 1
    net = nets.MLP((256,), num_classes)
    x_train = jnp.asarray(ds.train_images.reshape(len(ds.train_images), -1).astype(np.float32) / 255.0)
    y_train = jnp.asarray(ds.train_labels)
    params = net.init(jax.random.PRNGKey(seed), x_train[:1])["params"]
    path = os.path.join(workdir, "task_classifier.msgpack")
    fingerprint = f"{ds.meta.get('fingerprint', ds.meta.get('source'))}-{len(ds.train_images)}-{num_classes}"
    cached = os.path.exists(path) and os.path.exists(path + ".id") and open(path + ".id").read() == fingerprint
    if cached:
        params = flax.serialization.from_bytes(params, open(path, "rb").read())
    else:
        tx = optax.adam(1e-3)
        batch, epochs = 128, 3
        steps = len(x_train) // batch

        @jax.jit
        def epoch_fn(params, opt_state, key):
            perm = jax.random.permutation(key, len(x_train))[: steps * batch].reshape(steps, batch)

            def step(carry, idx):
                p, s = carry
                def loss(p):
                    logits = net.apply({"params": p}, x_train[idx])
                    return optax.softmax_cross_entropy_with_integer_labels(logits, y_train[idx]).mean()
                g = jax.grad(loss)(p)
                upd, s = tx.update(g, s, p)
                return (optax.apply_updates(p, upd), s), None

            return jax.lax.scan(step, (params, opt_state), perm)[0]

        opt_state = tx.init(params)
        for e in range(epochs):
            params, opt_state = epoch_fn(params, opt_state, jax.random.PRNGKey(seed * 1000 + e))
        os.makedirs(workdir, exist_ok=True)
        with open(path, "wb") as f:
            f.write(flax.serialization.to_bytes(params))
        with open(path + ".id", "w") as f:
            f.write(fingerprint)

    apply = jax.jit(lambda x: net.apply({"params": params}, x.reshape(x.shape[0], -1)))
    return _with_accuracy(apply, ds, "MLP 784-256-10 trained by vae_jax.tasks (3 epochs)")


# ---------------------------------------------------------------------------- measures
# (vae_jax/tasks/image_metrics.py; kept importable from here)
from vae_jax.tasks.image_metrics import psnr, region_mse  # noqa: E402,F401


# ---------------------------------------------------------------------------- outputs
def save_json(workdir: str, name: str, obj) -> str:
    path = os.path.join(workdir, name)
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=float)
    return path


def save_labeled_grid(path: str, columns: list[np.ndarray], labels: list[str], title: str = "",
                      row_labels: list[str] | None = None) -> str:
    """``columns``: list of [R, H, W, C] arrays (one per column, same R); labels under each column
    (and optionally left of each row). Pixel-exact (one image pixel = 3 screen px)."""
    import vae_jax.report.html as report

    stacked = np.stack([np.asarray(c, np.float32) for c in columns], 1)  # [R, K, H, W, C]
    grid = report.image_grid(stacked.reshape((-1,) + stacked.shape[2:]), ncol=len(columns))
    plt = report._plt()
    h, w = grid.shape[:2]
    scale = 3.0 / 100
    left = 1.0 if row_labels else 0.0  # inches kept for the row labels
    fig = plt.figure(figsize=(w * scale + left, h * scale + 0.9))
    ax = fig.add_axes([left / (w * scale + left), 0.9 / (h * scale + 0.9), w * scale / (w * scale + left),
                       h * scale / (h * scale + 0.9)])
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    cell = stacked.shape[3] + 1
    ax.set_xticks([1 + cell * i + cell / 2 - 0.5 for i in range(len(columns))])
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    if row_labels:
        ax.set_yticks([1 + cell * i + cell / 2 - 0.5 for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels, fontsize=7)
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown_table(rows: list[dict], columns: list[str], floatfmt: str = "{:.4f}") -> str:
    def fmt(v):
        if v is None:
            return "—"
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def finish(workdir: str) -> str:
    """Regenerates workdir/report.html (it links every PNG and HTML page the modes wrote)."""
    import vae_jax.report.html as report
    return report.write_html(workdir)
