"""The offline digits dataset and the Dataset container."""

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from hampjax.data.dataset import Dataset
from hampjax.data.digits import load_digits_dataset


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset()


def test_digits_rescaled_pixels(digits):
    raw = load_digits()
    assert digits.x.shape == (1797, 8, 8, 1) and digits.x.dtype == np.uint8
    for i in (0, 17, 1796):
        for r in range(8):
            for c in range(8):
                assert digits.x[i, r, c, 0] == int(round(raw.images[i, r, c] * 255 / 16))
    assert digits.x.max() == 255 and digits.x.min() == 0
    np.testing.assert_array_equal(digits.y, raw.target)
    assert digits.y.dtype == np.int32 and digits.num_classes == 10 and digits.name == "digits"
    assert digits.image_shape == (8, 8, 1) and not digits.binary_features and len(digits) == 1797


def test_digits_normalized_and_flat(digits):
    z = digits.normalized()
    assert z.shape == (1797, 8, 8, 1) and z.dtype == np.float32
    expected = (digits.x.astype(np.float64) / 255 - digits.mean[0]) / digits.std[0]
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-5)
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5  # mean/std are the dataset's own.
    flat = digits.flat()
    assert flat.shape == (1797, 64) and digits.num_features == 64
    np.testing.assert_array_equal(flat[5], z[5].reshape(-1))


def test_random_inputs(digits):
    key = jax.random.key(0)
    imgs = np.asarray(digits.random_inputs(key, 50))
    assert imgs.shape == (50, 8, 8, 1)
    pixels = (imgs * digits.std[0] + digits.mean[0]) * 255
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)  # Integer pixel values.
    assert pixels.min() > -0.5 and pixels.max() < 255.5
    flat = np.asarray(digits.random_inputs(key, 50, flat=True))
    np.testing.assert_allclose(flat, imgs.reshape(50, 64))
    with pytest.raises(ValueError, match="key must be"):
        digits.random_inputs(0, 3)
    with pytest.raises(ValueError, match="flat must be"):
        digits.random_inputs(key, 3, flat=1)


def test_binary_dataset():
    x = np.array([[0, 1, 1], [1, 0, 0]], np.uint8)
    ds = Dataset(x, np.array([1, 0]), 2, "toy", None, True, None, None)
    np.testing.assert_array_equal(ds.normalized(), x.astype(np.float32))
    r = np.asarray(ds.random_inputs(jax.random.key(0), 200))
    assert r.shape == (200, 3) and set(np.unique(r)) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=np.zeros((2, 3), np.float32)), "x must have dtype uint8"),
        (dict(x=np.zeros(2, np.uint8)), "x must have at least 2"),
        (dict(y=np.zeros((2, 1), int)), "y must be 1-D"),
        (dict(y=np.zeros(3, int)), "same length"),
        (dict(y=np.array([0, 5])), r"y must be in \[0, 2\)"),
        (dict(num_classes=1), "num_classes must be an integer >= 2"),
        (dict(x=np.full((2, 3), 2, np.uint8)), "binary_features=True requires x in"),
        (dict(binary_features=False), "image_shape is required"),
        (dict(image_shape=(3, 1), mean=(0.5,), std=(0.2,), binary_features=False), "x must have shape"),
        (dict(x=np.zeros((2, 3, 1), np.uint8), image_shape=(3, 1), mean=None, std=(0.2,),
              binary_features=False), "mean must have one value per channel"),
        (dict(x=np.zeros((2, 3, 1), np.uint8), image_shape=(3, 1), mean=(0.1,), std=(0.0,),
              binary_features=False), "std must be in"),
    ],
)
def test_dataset_validation(kwargs, match):
    args = dict(x=np.zeros((2, 3), np.uint8), y=np.array([0, 1]), num_classes=2, name="toy",
                image_shape=None, binary_features=True, mean=None, std=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Dataset(**args)


def test_digits_digest_is_checked(monkeypatch):
    import sklearn.datasets

    from hampjax.data import DIGITS_SHA256, data_hash

    ds = load_digits_dataset()
    assert data_hash(ds.x, ds.y) == DIGITS_SHA256
    real = sklearn.datasets.load_digits

    def tampered():
        bunch = real()
        bunch.target = bunch.target.copy()
        bunch.target[0] = (bunch.target[0] + 1) % 10  # One label changed.
        return bunch

    monkeypatch.setattr(sklearn.datasets, "load_digits", tampered)
    with pytest.raises(ValueError, match=f"checksum mismatch for scikit-learn's bundled digits.*{DIGITS_SHA256}"):
        load_digits_dataset()
