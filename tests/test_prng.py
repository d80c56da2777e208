"""vae_jax/prng.py: JAX's unrolled threefry lowering on the CPU draws exactly the numbers of its
rolled one, in plain draws and in a whole training epoch, and a bad VAE_JAX_THREEFRY is refused."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vae_jax.prng as prng
from conftest import load_config

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the choice applies to the CPU lowering")


@pytest.fixture
def restore_lowering():
    before = prng.active()
    yield
    prng.use(before)


def _draws(key):
    # The draws a run makes: shuffling, dynamic binarization, Gaussian noise, a folded-in step key.
    k1, k2, k3 = jax.random.split(jax.random.fold_in(key, 7), 3)
    return (jax.random.permutation(k1, 1000), jax.random.bernoulli(k2, jnp.linspace(0, 1, 4 * 784).reshape(4, 784)),
            jax.random.normal(k3, (3, 5, 50)), jax.random.bits(key, (257,), jnp.uint32))


def _lowered(mode):
    prng.use(mode)
    fn = jax.jit(lambda k: _draws(k))   # a new function object: lowered now, with this rule
    return fn.lower(jax.random.key(3)).as_text(), fn(jax.random.key(3))


def test_unrolled_and_rolled_draw_the_same_bits(restore_lowering):
    text_rolled, rolled = _lowered("rolled")
    text_unrolled, unrolled = _lowered("unrolled")
    # Each form is what it says: the rolled one loops over the rounds, the unrolled one does not.
    assert "stablehlo.while" in text_rolled and "stablehlo.while" not in text_unrolled
    for a, b in zip(rolled, unrolled):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("mode", ["rolled", "unrolled"])
def test_known_answers_of_threefry2x32_20(mode, restore_lowering):
    # Random123's known-answer vectors for Threefry-2x32 with 20 rounds (kat_vectors):
    # (counter, key) -> output.
    from jax.extend.random import threefry_2x32
    prng.use(mode)
    fn = jax.jit(lambda k, c: threefry_2x32(k, c))
    for counter, key, expected in [((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
                                   ((0x243F6A88, 0x85A308D3), (0x13198A2E, 0x03707344), (0xC4923A9C, 0x483DF7A0))]:
        assert [int(v) for v in fn(np.uint32(key), np.uint32(counter))] == list(expected)


def test_a_training_epoch_is_identical_under_both(restore_lowering):
    import vae_jax.models as models
    import vae_jax.training.trainer as trainer

    config = load_config("iwae_two_layer")
    model = models.build_model(config.model, (28, 28, 1))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8))
    keys = trainer.split_keys(0)
    out = {}
    for mode in ("rolled", "unrolled"):
        prng.use(mode)
        epoch, steps = trainer.make_epoch(model, config, len(images))
        state = trainer.init_model_state(config, model, keys["init"], (28, 28, 1), np.asarray(images), steps)
        state, metrics = epoch(state, images, keys["data"], keys["noise"], trainer.hparams_of(config))
        out[mode] = jax.tree.map(np.asarray, (state.params, metrics))
    jax.tree.map(np.testing.assert_array_equal, out["rolled"], out["unrolled"])


def test_bad_value_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(prng.ENV, "fast")
    assert prng.check_env() == "VAE_JAX_THREEFRY: 'fast' is not one of ['auto', 'unrolled', 'rolled'] (unset it for 'auto')"
    with pytest.raises(ValueError, match="VAE_JAX_THREEFRY"):
        prng.active()
    with pytest.raises(ValueError, match="VAE_JAX_THREEFRY"):
        prng.use("fast")
    from conftest import cli_run
    run = cli_run(str(tmp_path / "w"), ["--config=configs/vae_mnist.py:tiny"], env={prng.ENV: "fast"})
    assert run.returncode == 2, run.stderr[-500:]
    assert run.stderr.strip().splitlines()[-1].startswith("error: VAE_JAX_THREEFRY: 'fast'")
    assert run.files == [] and "Traceback" not in run.stderr


def test_run_meta_records_the_lowering(tmp_path, monkeypatch, restore_lowering):
    from vae_jax.training import run_meta
    prng.use("rolled")
    with run_meta.open_workdir(str(tmp_path), load_config("vae_mnist"), {"source": "test"}):
        pass
    assert json.load(open(tmp_path / "run_meta.json"))["threefry_lowering"] == "rolled"
