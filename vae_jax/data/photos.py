"""``data.source='photos'``: 32×32×3 uint8 patches of real colour photographs that installed
packages ship (no download, ever).

What it is: seven photographs — scikit-learn's ``china.jpg`` and ``flower.jpg``
(``sklearn/datasets/images``) and scikit-image's ``astronaut.png``, ``coffee.png``,
``chelsea.png``, ``rocket.jpg`` and ``motorcycle_left.png`` (``skimage/data``) — each averaged
down by 1, 2 and 4 (exact box means, so the result does not depend on an image library's
resampling filter) and cut into 32×32 patches. WHOLE photos are held out for the test split
(``TEST_PHOTOS``: flower and chelsea), so no test patch overlaps a training patch or shares a
scene with one. Training patches overlap (stride 16, a data-augmentation); test patches do not
(stride 32). Both splits are shuffled with a fixed seed so that any prefix (``data.train_subset``)
holds every photo and scale. ``label`` is the photo's index in ``PHOTOS``.

What it is not: a benchmark. Seven photos are far less varied than CIFAR-10 or SVHN, patches of
one photo are correlated, and bits/dim here are not comparable with published CIFAR-10 numbers.
It exists so that colour models (conv nets, discretized likelihoods, bits/dim) train and are
tested offline; for real numbers prepare ``cifar10`` or ``svhn_cropped`` with TFDS
(``data.source='tfds'``).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from typing import Any

import numpy as np
from PIL import Image

from vae_jax.errors import DataError

NAME = "photos"
PATCH = 32
SCALES = (1, 2, 4)
TRAIN_STRIDE = 16
TEST_STRIDE = 32

# name -> (package that ships it, path inside the package). Only natural-scene photographs: the
# microscopy, astronomy and retina images skimage also ships are left out, and so is
# motorcycle_right.png (the same scene as motorcycle_left from a second camera).
PHOTOS = {
    "china": ("sklearn", "datasets/images/china.jpg"),
    "astronaut": ("skimage", "data/astronaut.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "chelsea": ("skimage", "data/chelsea.png"),
}
TEST_PHOTOS = ("flower", "chelsea")
_PIP_NAME = {"sklearn": "scikit-learn", "skimage": "scikit-image"}


def photo_path(name: str) -> str:
    """Path of photo ``name`` inside its package, found without importing the package."""
    package, rel = PHOTOS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data.source='photos' needs the {_PIP_NAME[package]} package, which ships "
                        f"{os.path.basename(rel)} (pip install {_PIP_NAME[package]})")
    path = os.path.join(list(spec.submodule_search_locations)[0], rel)
    if not os.path.exists(path):
        raise DataError(f"data.source='photos': {path} not found in the installed {_PIP_NAME[package]}")
    return path


def read_photo(path: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), np.uint8)
    except OSError as e:
        raise DataError(f"data.source='photos': cannot decode {path}: {e}") from e


def box_downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor×factor blocks (the edge rows/columns that do not fill a block are dropped),
    rounded to uint8."""
    if factor == 1:
        return img
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    blocks = img[:h, :w].reshape(h // factor, factor, w // factor, factor, img.shape[2]).astype(np.float64)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def patches(img: np.ndarray, size: int, stride: int) -> np.ndarray:
    """All size×size windows at multiples of ``stride`` that fit, [N, size, size, C]."""
    rows = range(0, img.shape[0] - size + 1, stride)
    cols = range(0, img.shape[1] - size + 1, stride)
    return np.stack([img[r:r + size, c:c + size] for r in rows for c in cols]) if rows and cols \
        else np.zeros((0, size, size, img.shape[2]), np.uint8)


def _split(names, stride, seed):
    images, labels = [], []
    for name in names:
        img = read_photo(photo_path(name))
        for s in SCALES:
            p = patches(box_downscale(img, s), PATCH, stride)
            images.append(p)
            labels.append(np.full(len(p), list(PHOTOS).index(name), np.int32))
    images, labels = np.concatenate(images), np.concatenate(labels)
    perm = np.random.default_rng(seed).permutation(len(images))
    return images[perm], labels[perm]


def load_photos(name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if name != NAME:
        raise DataError(f"data.source='photos' only holds {NAME!r}, not data.name={name!r}")
    train_names = [n for n in PHOTOS if n not in TEST_PHOTOS]
    tr_x, tr_y = _split(train_names, TRAIN_STRIDE, seed=0)
    te_x, te_y = _split(TEST_PHOTOS, TEST_STRIDE, seed=1)
    digest = hashlib.sha256()
    for a in (tr_x, te_x):
        digest.update(a.tobytes())
    files = {}
    for n in PHOTOS:
        with open(photo_path(n), "rb") as f:
            files[n] = hashlib.sha256(f.read()).hexdigest()[:16]
    meta = {"source": "photos", "fingerprint": digest.hexdigest()[:16], "files_sha256": files,
            "train_photos": train_names, "test_photos": list(TEST_PHOTOS),
            "note": (f"{PATCH}x{PATCH} patches of 7 photographs shipped by scikit-learn/scikit-image at "
                     f"scales 1/{', 1/'.join(map(str, SCALES))}; whole photos held out for test; not a benchmark")}
    return {"train_images": tr_x, "train_labels": tr_y, "test_images": te_x, "test_labels": te_y}, meta
