"""vae_jax.prng reproduces jax.random bit for bit; dynamic binarization has the right probabilities."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax import data, prng

KEYS = [jax.random.PRNGKey(0), jax.random.PRNGKey(2**31 + 5), jax.random.key(7),
        jax.random.fold_in(jax.random.PRNGKey(3), 9)]
SHAPES = [(1,), (7,), (128, 20), (3, 4, 5), (50176,)]


@pytest.mark.parametrize("key", KEYS)
def test_bits_uniform_normal_equal_jax_random(key):
    for shape in SHAPES:
        np.testing.assert_array_equal(prng.bits(key, shape), jax.random.bits(key, shape, jnp.uint32))
        np.testing.assert_array_equal(jax.jit(prng.uniform, static_argnums=1)(key, shape),
                                      jax.random.uniform(key, shape))
        np.testing.assert_array_equal(jax.jit(prng.normal, static_argnums=1)(key, shape),
                                      jax.random.normal(key, shape))


def test_other_prng_implementations_go_to_jax_random():
    key = jax.random.key(0, impl="rbg")
    np.testing.assert_array_equal(prng.bits(key, (5,)), jax.random.bits(key, (5,), jnp.uint32))
    np.testing.assert_array_equal(prng.normal(key, (5,)), jax.random.normal(key, (5,)))


def test_dynamic_binarization_probability_per_intensity():
    """P(x = 1 | v) = v / 255 to within 1/65536 plus sampling error, exactly 0 and 1 at the ends."""
    reps = 4001  # an odd pixel count exercises the padding path
    v = np.tile(np.arange(256, dtype=np.uint8), reps).reshape(-1, 1, 1, 1)
    draws = 16
    freq = np.zeros(256)
    for s in range(draws):
        x = np.asarray(data.to_float(v, "dynamic", jax.random.PRNGKey(s))).reshape(reps, 256)
        assert set(np.unique(x)) <= {0.0, 1.0}
        freq += x.mean(0) / draws
    p = np.arange(256) / 255
    assert freq[0] == 0.0 and freq[255] == 1.0
    se = np.sqrt(p * (1 - p) / (reps * draws))
    z = (freq[1:255] - p[1:255]) / se[1:255]
    assert np.abs(z).max() < 5.0
    assert abs(z.mean()) < 0.5  # no systematic bias over the 254 intensities
