"""Bad data files: a clear DataError naming the file, and nothing but error.log in the workdir."""
import gzip
import os
import struct

import numpy as np
import pytest
from conftest import load_config

from vae_jax import data as data_lib
from vae_jax import main as main_lib
from vae_jax.data import DataError, IDX_FILES


def _idx_bytes(a: np.ndarray) -> bytes:
    code = 0x08  # uint8
    return bytes([0, 0, code, a.ndim]) + struct.pack(">" + "I" * a.ndim, *a.shape) + a.tobytes()


def _write(path, raw: bytes, compress=True):
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(raw)


@pytest.fixture
def idx_dir(tmp_path):
    """A valid MNIST-format directory (80 train / 20 test random 28x28 images)."""
    d = tmp_path / "mnist"
    d.mkdir()
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (80, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, 80, dtype=np.uint8),
              "test_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, 20, dtype=np.uint8)}
    for key, a in arrays.items():
        _write(d / IDX_FILES[key], _idx_bytes(a))
    return d


def _cfg(directory):
    c = load_config("vae_mnist")
    c.data.source, c.data.dir = "idx", str(directory)
    c.data.train_subset = c.data.test_subset = 0
    c.train.batch_size = 16
    return c


def test_valid_dir_loads(idx_dir):
    ds = data_lib.load(_cfg(idx_dir).data)
    assert ds.train_images.shape == (80, 28, 28, 1) and ds.test_labels.shape == (20,)


def _truncate_gzip(path):
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[: len(raw) // 2])


def _garbage_gzip(path):
    open(path, "wb").write(b"this is not gzip data at all" * 10)


def _wrong_magic(path):
    a = np.zeros((80, 28, 28), np.uint8)
    _write(path, b"\x00\x00\x09\x03" + _idx_bytes(a)[4:])


def _short_payload(path):
    _write(path, _idx_bytes(np.zeros((80, 28, 28), np.uint8))[:-100])


def _label_count(path):
    _write(path, _idx_bytes(np.zeros(79, np.uint8)))


def _deleted(path):
    os.remove(path)


# (id, which file, damage, words the message must hold besides the file's path)
DAMAGE = [
    ("truncated_gzip", "train_images", _truncate_gzip, "corrupt or truncated"),
    ("not_gzip", "test_images", _garbage_gzip, "corrupt or truncated"),
    ("wrong_magic", "train_images", _wrong_magic, "bad IDX magic number"),
    ("payload_shorter_than_header", "train_images", _short_payload, "header says shape (80, 28, 28)"),
    ("label_count_mismatch", "train_labels", _label_count, "79 labels for 80 images"),
    ("missing_file", "test_labels", _deleted, "not found"),
]


@pytest.mark.parametrize("name,key,damage,words", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_file_is_named(idx_dir, name, key, damage, words):
    path = idx_dir / IDX_FILES[key]
    damage(path)
    with pytest.raises(DataError) as info:
        data_lib.load(_cfg(idx_dir).data)
    msg = str(info.value)
    assert str(path) in msg and words in msg, msg
    assert "\n" not in msg


def test_empty_directory_names_the_first_missing_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="data file not found: .*empty/train-images-idx3-ubyte.gz"):
        data_lib.load(_cfg(tmp_path / "empty").data)


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match=f"data.dir: directory not found: {tmp_path}/nope"):
        data_lib.load(_cfg(tmp_path / "nope").data)


def test_unreadable_file_is_named(idx_dir, monkeypatch):
    path = idx_dir / IDX_FILES["train_labels"]
    if os.geteuid() == 0:
        # root reads any file whatever its mode: make the OS refuse the open as it would for a user.
        real_open = gzip.open

        def refuse(p, *a, **k):
            if os.fspath(p) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(p, *a, **k)

        monkeypatch.setattr(gzip, "open", refuse)
    else:
        os.chmod(path, 0)
    with pytest.raises(DataError) as info:
        data_lib.load(_cfg(idx_dir).data)
    assert str(path) in str(info.value) and "not readable" in str(info.value), str(info.value)


@pytest.mark.parametrize("damage", [_truncate_gzip, _label_count], ids=["truncated", "count"])
def test_cli_writes_only_error_log(idx_dir, tmp_path, capsys, damage):
    """The CLI's mode runner: exit status 2, one stderr line naming the file, and the workdir holds
    nothing but error.log (no config.json, checkpoints, lock or metrics)."""
    path = idx_dir / IDX_FILES["train_labels"]
    damage(path)
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main_lib.run_mode("train", _cfg(idx_dir), str(workdir))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0], err
    assert sorted(os.listdir(workdir)) == ["error.log"]
    assert str(path) in (workdir / "error.log").read_text()


def test_bad_data_leaves_an_existing_run_untouched(idx_dir, tmp_path):
    """Resuming an existing run with damaged data fails before the run's files are touched."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text("{}")
    before = {p: os.path.getmtime(workdir / p) for p in os.listdir(workdir)}
    _garbage_gzip(idx_dir / IDX_FILES["train_images"])
    with pytest.raises(SystemExit):
        main_lib.run_mode("train", _cfg(idx_dir), str(workdir))
    assert sorted(os.listdir(workdir)) == ["config.json", "error.log"]
    assert os.path.getmtime(workdir / "config.json") == before["config.json"]
