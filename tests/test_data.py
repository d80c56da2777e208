"""Data sources and binarization modes."""
import gzip
import os
import struct

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from vae_jax import data


def _cfg(**kw):
    c = ConfigDict(dict(name="mnist", source="bundled", dir="", binarization="none", static_seed=0,
                        train_subset=0, test_subset=0))
    c.update(kw)
    return c


def write_idx_dir(d, n_train=20, n_test=10, size=28):
    rng = np.random.default_rng(0)
    os.makedirs(d, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
        labs = rng.integers(0, 10, n, dtype=np.uint8)
        with gzip.open(os.path.join(d, f"{split}-images-idx3-ubyte.gz"), "wb") as f:
            f.write(struct.pack(">HBBIII", 0, 8, 3, n, size, size) + imgs.tobytes())
        with gzip.open(os.path.join(d, f"{split}-labels-idx1-ubyte.gz"), "wb") as f:
            f.write(struct.pack(">HBBI", 0, 8, 1, n) + labs.tobytes())
    return d


def test_bundled_is_real_mnist_with_split():
    ds = data.load(_cfg())
    assert ds.train_images.shape == (4000, 28, 28, 1) and ds.test_images.shape == (1000, 28, 28, 1)
    assert ds.train_images.dtype == np.uint8
    assert set(np.unique(ds.train_labels)) == set(range(10))
    # Real digits: mostly-black background and mean intensity close to MNIST's (≈ 0.13).
    assert 0.10 < ds.train_images.mean() / 255 < 0.16
    assert ds.meta["source"] == "bundled" and ds.meta["n_train"] == 4000


def test_idx_roundtrip_and_env_var(tmp_path, monkeypatch):
    d = write_idx_dir(str(tmp_path / "idx"))
    ds = data.load(_cfg(source="idx", dir=d))
    assert ds.train_images.shape == (20, 28, 28, 1) and ds.test_labels.shape == (10,)
    monkeypatch.setenv(data.DATA_DIR_ENV, d)
    ds2 = data.load(_cfg(source="idx"))
    np.testing.assert_array_equal(ds.train_images, ds2.train_images)
    assert ds2.meta["dir"] == os.path.abspath(d)


def test_idx_without_dir_is_an_error(monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    with pytest.raises(data.DataError, match="data.dir"):
        data.load(_cfg(source="idx"))


def test_truncated_idx_names_file(tmp_path):
    d = write_idx_dir(str(tmp_path / "idx"))
    path = os.path.join(d, "train-images-idx3-ubyte.gz")
    raw = gzip.open(path).read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(data.DataError, match="train-images-idx3-ubyte.gz"):
        data.load(_cfg(source="idx", dir=d))


def test_static_binarization_is_fixed_by_seed():
    a = data.load(_cfg(binarization="static", train_subset=100, test_subset=10))
    b = data.load(_cfg(binarization="static", train_subset=100, test_subset=10))
    c = data.load(_cfg(binarization="static", train_subset=100, test_subset=10, static_seed=1))
    assert set(np.unique(a.train_images)) <= {0, 255}
    np.testing.assert_array_equal(a.train_images, b.train_images)
    assert not np.array_equal(a.train_images, c.train_images)


def test_dynamic_binarization_draws_fresh_bernoulli():
    x = np.full((2000, 4, 4, 1), 64, np.uint8)  # p = 0.251
    b1 = data.to_float(x, "dynamic", jax.random.PRNGKey(0))
    b2 = data.to_float(x, "dynamic", jax.random.PRNGKey(1))
    assert set(np.unique(np.asarray(b1))) == {0.0, 1.0}
    assert abs(float(b1.mean()) - 64 / 255) < 0.01
    assert not np.array_equal(np.asarray(b1), np.asarray(b2))
    np.testing.assert_allclose(data.to_float(x, "none"), 64 / 255, rtol=1e-6)
    # Each pixel's own intensity is its probability: black stays 0 and white 1 in every draw, and
    # a gradient image binarizes to the per-column means it should.
    ramp = np.broadcast_to(np.arange(0, 256, 51, dtype=np.uint8), (4000, 6)).reshape(4000, 6, 1, 1)
    b = np.asarray(data.to_float(ramp, "dynamic", jax.random.PRNGKey(2))).reshape(4000, 6)
    assert np.all(b[:, 0] == 0.0) and np.all(b[:, -1] == 1.0)
    np.testing.assert_allclose(b.mean(0), np.arange(0, 256, 51) / 255, atol=0.03)
    with pytest.raises(ValueError, match="key"):
        data.to_float(x, "dynamic")


def test_unknown_source_and_bundled_name():
    with pytest.raises(data.DataError, match="data.source"):
        data.load(_cfg(source="ftp"))
    with pytest.raises(data.DataError, match="data.name"):
        data.load(_cfg(name="cifar10"))
