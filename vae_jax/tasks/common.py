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

MASK_KINDS = ("bottom_half", "centre_square", "random", "quadrant")


# ---------------------------------------------------------------------------- config section
def task_config() -> ml_collections.ConfigDict:
    """Defaults of the ``tasks`` config section (``config_base.base_config`` holds one)."""
    t = ml_collections.ConfigDict()
    t.eval_subset = 1000           # test images used for the task metrics (0: all)
    t.data_dir = ""                # overrides the trained run's data.dir when the data moved
    t.classifier = "auto"          # digit classifier of the metrics: auto | cnn | mlp (see digit_classifier)

    t.interpolate = ml_collections.ConfigDict()
    t.interpolate.num_pairs = 200      # test-image pairs (different labels) measured
    t.interpolate.steps = 10           # frames per path = steps + 1 (endpoints included)
    t.interpolate.grid_pairs = 8       # pairs drawn in the grids
    t.interpolate.compare_workdirs = ""  # comma-separated other trained runs (e.g. an AE) to compare
    t.interpolate.nn_reference = 10000   # training images searched for the nearest-neighbour distance

    t.latents = ml_collections.ConfigDict()
    t.latents.grid_size = 20           # manifold grid (2-D latent): grid_size x grid_size
    t.latents.traversal_steps = 11
    t.latents.max_traversal_dims = 16  # traversal rows (dimensions with the largest KL)

    t.inpaint = ml_collections.ConfigDict()
    t.inpaint.masks = ",".join(MASK_KINDS)
    t.inpaint.random_hidden_fraction = 0.75  # mask 'random': fraction p of pixels hidden
    t.inpaint.num_samples = 16         # completions per image (best-of-N and the NLL mixture)
    t.inpaint.opt_steps = 200          # Adam steps on the per-image q(z) (masked ELBO)
    t.inpaint.opt_learning_rate = 0.05
    t.inpaint.opt_mc_samples = 4       # reparameterized samples per step
    t.inpaint.gibbs_steps = 30         # pseudo-Gibbs iterations per chain
    t.inpaint.cvae = True              # also train (or reuse) and measure the conditional VAE
    t.inpaint.grid_images = 8

    t.colorize = ml_collections.ConfigDict()
    t.colorize.palette_size = 6        # colours of equal luminance and equal saturation
    t.colorize.luminance = 0.5         # luminance (Rec. 601 Y) of every palette colour
    t.colorize.num_samples = 8
    t.colorize.kl_warmup_steps = 1000  # CVAE KL weight rises 0 -> 1 over these many steps
    t.colorize.palette_tolerance = 0.1  # RGB distance under which a sample's colour counts as a palette colour
    t.colorize.grid_images = 8
    return t


def shrink_for_tests(t: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ``tiny`` variant of the tasks section: seconds instead of minutes."""
    t.eval_subset = 48
    t.classifier = "mlp"  # seconds; the CNN of vae_jax.classifier trains for minutes on CPU
    t.interpolate.num_pairs = 8
    t.interpolate.steps = 6
    t.interpolate.grid_pairs = 4
    t.interpolate.nn_reference = 256
    t.latents.grid_size = 6
    t.latents.traversal_steps = 5
    t.latents.max_traversal_dims = 4
    t.inpaint.num_samples = 4
    t.inpaint.opt_steps = 20
    t.inpaint.opt_mc_samples = 2
    t.inpaint.gibbs_steps = 4
    t.inpaint.grid_images = 4
    t.colorize.num_samples = 4
    t.colorize.kl_warmup_steps = 40
    t.colorize.grid_images = 4
    return t


def mask_kinds(tasks) -> tuple[str, ...]:
    return tuple(m.strip() for m in tasks.inpaint.masks.split(",") if m.strip())


def validate_tasks(cfg) -> None:
    from vae_jax.config_validation import ConfigError

    if "tasks" not in cfg:
        return
    t = cfg.tasks
    if t.get("classifier", "auto") not in ("auto", "cnn", "mlp"):
        raise ConfigError(f"tasks.classifier: {t.classifier!r} is not allowed; choose one of ['auto', 'cnn', 'mlp']")
    bad = [m for m in mask_kinds(t) if m not in MASK_KINDS]
    if bad or not mask_kinds(t):
        raise ConfigError(f"tasks.inpaint.masks: {t.inpaint.masks!r} must be a comma-separated subset of {list(MASK_KINDS)}")
    if not 0.0 < t.inpaint.random_hidden_fraction < 1.0:
        raise ConfigError(f"tasks.inpaint.random_hidden_fraction: {t.inpaint.random_hidden_fraction!r} must be in (0, 1)")
    for path in ("inpaint.num_samples", "inpaint.opt_steps", "inpaint.opt_mc_samples", "inpaint.gibbs_steps",
                 "colorize.num_samples", "colorize.palette_size", "interpolate.num_pairs", "interpolate.steps",
                 "latents.grid_size", "latents.traversal_steps"):
        sec, field = path.split(".")
        v = t[sec][field]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"tasks.{path}: {v!r} must be an integer >= 1")
    if t.colorize.palette_size < 2:
        raise ConfigError("tasks.colorize.palette_size: needs >= 2 colours (one colour is determined by gray)")
    if not 0.05 <= t.colorize.luminance <= 0.8:
        raise ConfigError(f"tasks.colorize.luminance: {t.colorize.luminance!r} must be in [0.05, 0.8] "
                          "(saturated colours exist only at moderate luminance)")


def _register_check():
    from vae_jax import config_validation
    if validate_tasks not in config_validation.EXTRA_CHECKS:
        config_validation.EXTRA_CHECKS.append(validate_tasks)


_register_check()


# ---------------------------------------------------------------------------- trained runs
class Run:
    """A trained run: its config (from config.json), data, model and restored parameters."""

    def __init__(self, workdir, config, ds, model, params):
        self.workdir, self.config, self.ds, self.model, self.params = workdir, config, ds, model, params

    @property
    def kind(self) -> str:
        return "vae" if self.model.is_vae else "ae"


def has_checkpoint(workdir: str) -> bool:
    d = os.path.join(workdir, "checkpoints")
    return os.path.isdir(d) and any(p.isdigit() for p in os.listdir(d))


def load_run(workdir: str, data_dir: str = "", ds=None) -> Run:
    """Rebuilds the model of ``workdir/config.json`` and restores its latest checkpoint's params."""
    from vae_jax import checkpointing, models, train
    from vae_jax import data as data_lib
    from vae_jax.config_validation import ConfigError

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path) or not has_checkpoint(workdir):
        raise ConfigError(f"--workdir: {workdir!r} holds no trained run (config.json and checkpoints/); "
                          "train one first with --mode=train")
    config = ml_collections.ConfigDict(json.load(open(path)))
    if data_dir:
        config.data.dir = data_dir
    if ds is None:
        ds = data_lib.load(config.data)
    model = models.build_model(config.model, ds.image_shape)
    # The optimizer state's structure depends on the lr schedule, which needs steps per epoch.
    template = train.create_state(config, model, jax.random.PRNGKey(0), ds.image_shape,
                                  max(1, len(ds.train_images) // config.train.batch_size))
    ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
    try:
        params = ckpt.restore_params(template)
    finally:
        ckpt.close()
    return Run(workdir, config, ds, model, params)


def tasks_of(config, run: Run | None = None) -> ml_collections.ConfigDict:
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
    cached in ``workdir/task_classifier.msgpack``; ``auto`` the CNN when that module exists."""
    if which in ("auto", "cnn"):
        try:
            from vae_jax import classifier as clf_lib
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

    from vae_jax import nets

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
def region_mse(pred, target, region):
    """Mean squared error per image over the pixels where ``region`` is 1 (numpy, [B,...] -> [B])."""
    axes = tuple(range(1, np.ndim(target)))
    region = np.broadcast_to(region, np.shape(target))
    return np.sum(region * (pred - target) ** 2, axis=axes) / np.maximum(np.sum(region, axis=axes), 1.0)


def psnr(mse, peak: float = 1.0):
    return 10.0 * np.log10(peak ** 2 / np.maximum(mse, 1e-10))


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
    from vae_jax import report

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
    from vae_jax import report
    return report.write_html(workdir)
