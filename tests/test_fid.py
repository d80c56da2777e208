"""Fréchet distance: the formula against scipy, and its behaviour on a quickly trained classifier
(bundled 4,000-digit MNIST, one epoch of a 4-channel CNN: seconds, cached in a temp dir)."""
import numpy as np
import pytest
import scipy.linalg
from scipy.ndimage import gaussian_filter

from vae_jax.evaluation import classifier
from vae_jax import config as config_base
from vae_jax.evaluation import fid
from vae_jax import data as data_lib

TINY_SPEC = classifier.ClassifierSpec(channels=4, features=16, epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def bundled():
    c = config_base.base_config().data
    c.source = "bundled"
    return data_lib.load(c)


@pytest.fixture(scope="module")
def tiny_classifier(bundled, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv(classifier.CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
    clf = classifier.get_classifier(bundled, TINY_SPEC, log=lambda *_: None)
    yield clf
    mp.undo()


def _scipy_fd(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(500, 6)), rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 1.0
    sa, sb = fid.feature_stats(a), fid.feature_stats(b)
    assert fid.frechet_distance(sa, sb) == pytest.approx(_scipy_fd(*sa, *sb), rel=1e-6)
    assert fid.frechet_distance(sa, sb) == pytest.approx(fid.frechet_distance(sb, sa), rel=1e-6)


def test_identical_sets_give_zero(tiny_classifier, bundled):
    x = bundled.test_images[:500]
    assert abs(fid.fid(tiny_classifier, x, x)) < 1e-6
    assert fid.fid(tiny_classifier, x, bundled.train_images[:500]) > 1e-3   # different real images: > 0


def _corrupt(images_u8, kind, level, seed=0):
    x = images_u8.astype(np.float32) / 255.0
    if kind == "noise":
        x = x + np.random.default_rng(seed).normal(size=x.shape).astype(np.float32) * level
    else:
        x = gaussian_filter(x, sigma=(0, level, level, 0)) if level else x
    return np.clip(x, 0.0, 1.0)


@pytest.mark.parametrize("kind,levels", [("noise", [0.0, 0.05, 0.1, 0.2, 0.4]), ("blur", [0.0, 0.5, 1.0, 1.5, 2.5])])
def test_distance_grows_monotonically_with_corruption(tiny_classifier, bundled, kind, levels):
    x = bundled.test_images[:500]
    d = [fid.fid(tiny_classifier, x, _corrupt(x, kind, lv)) for lv in levels]
    assert d[0] < 1e-6
    assert all(b > a for a, b in zip(d, d[1:])), d


def test_classifier_is_cached_and_learns(tiny_classifier, bundled):
    again = classifier.get_classifier(bundled, TINY_SPEC, log=lambda *_: None)
    assert again.cache_dir == tiny_classifier.cache_dir
    np.testing.assert_allclose(again.features(bundled.test_images[:8]),
                               tiny_classifier.features(bundled.test_images[:8]), rtol=1e-6)
    assert tiny_classifier.test_accuracy > 0.5          # 10 classes: chance is 0.1
    other = classifier.fingerprint(bundled.train_images[:100], bundled.train_labels[:100], TINY_SPEC)
    assert other not in tiny_classifier.cache_dir       # a different dataset gets its own entry
