"""Tests for hampjax/data/ood.py: TFDS OOD loaders (mock data), offline OOD sets, normalize_like."""

import sys
import types

import jax
import numpy as np
import pytest

from hampjax.data import ood
from hampjax.data.cifar import _id_sort_key
from hampjax.data.dataset import Dataset
from hampjax.data.ood import (
    OOD_SETS,
    STL10_MONKEY_LABEL,
    box_downsample,
    load_ood_images,
    normalize_like,
    sample_image_crops,
    uniform_noise_set,
)

STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def box_reference(images, factor):
    """Slow, obviously correct box filter: mean of each block, rounded half up."""
    n, h, w, c = images.shape
    out = np.zeros((n, h // factor, w // factor, c), np.uint8)
    for i in range(n):
        for r in range(h // factor):
            for q in range(w // factor):
                block = images[i, r * factor:(r + 1) * factor, q * factor:(q + 1) * factor].astype(np.float64)
                out[i, r, q] = np.floor(block.mean(axis=(0, 1)) + 0.5)
    return out


# ------------------------------------------------------------------------------------------
# A fake tensorflow_datasets module (runs without TFDS; controls ids, labels and label names).
# ------------------------------------------------------------------------------------------


class _FakeSource:
    def __init__(self, examples, names):
        self.examples = examples
        label = types.SimpleNamespace(names=names)
        self.dataset_info = types.SimpleNamespace(features={"label": label})

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]


def _install_fake_tfds(monkeypatch, examples, names=None):
    calls = []

    def data_source(builder, *, split, **kwargs):
        calls.append((builder, split, kwargs))
        return _FakeSource(examples, names)

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(data_source=data_source))
    return calls


def _examples(labels, size, *, ids=None, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for j, label in enumerate(labels):
        ex = {"image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "label": np.int64(label)}
        if ids is not None:
            ex["id"] = ids[j]
        out.append(ex)
    return out


def test_fake_tfds_sorts_ids_numerically_and_passes_arguments(monkeypatch, tmp_path):
    ids = [b"test_10", b"test_9", b"test_100", b"test_0"]
    examples = _examples([1, 2, 3, 4], 32, ids=ids)
    calls = _install_fake_tfds(monkeypatch, examples)
    ds = load_ood_images("svhn", split="train", data_dir=tmp_path)
    assert calls == [("svhn_cropped", "train", {"data_dir": str(tmp_path)})]
    np.testing.assert_array_equal(ds.y, [4, 2, 1, 3])  # ids 0, 9, 10, 100
    np.testing.assert_array_equal(ds.x[0], examples[3]["image"])
    assert ds.name == "svhn" and ds.num_classes == 10 and ds.image_shape == (32, 32, 3)


def test_fake_stl10_drops_monkey_by_recorded_name(monkeypatch):
    labels = [0, 7, 3, 7, 9, 1]
    examples = _examples(labels, 96)
    _install_fake_tfds(monkeypatch, examples, names=STL10_NAMES)
    ds = load_ood_images("stl10")
    np.testing.assert_array_equal(ds.y, [0, 3, 9, 1])  # TFDS index order, monkeys gone
    kept = np.stack([examples[i]["image"] for i in (0, 2, 4, 5)])
    np.testing.assert_array_equal(ds.x, box_reference(kept, 3))
    # Names recorded in another order: the name decides, not the index 7.
    moved = ["monkey"] + [n for n in STL10_NAMES if n != "monkey"]
    _install_fake_tfds(monkeypatch, examples, names=moved)
    np.testing.assert_array_equal(load_ood_images("stl10").y, [7, 3, 7, 9, 1])


def test_fake_tfds_errors(monkeypatch):
    _install_fake_tfds(monkeypatch, _examples([0, 1], 96), names=[f"c{i}" for i in range(10)])
    with pytest.raises(ValueError, match="do not contain 'monkey'"):
        load_ood_images("stl10")
    _install_fake_tfds(monkeypatch, _examples([-1, -1], 96))  # STL-10's unlabelled split
    with pytest.raises(ValueError, match=r"labels outside \[0, 10\).*labelled split"):
        load_ood_images("stl10", split="unlabelled")
    _install_fake_tfds(monkeypatch, [])
    with pytest.raises(ValueError, match="is empty"):
        load_ood_images("cifar10")
    _install_fake_tfds(monkeypatch, _examples([0, 1, 2], 32, ids=["a1", "a2", "a3"]))
    with pytest.raises(ValueError, match="max_examples must be <= the 3 examples"):
        load_ood_images("cifar10", max_examples=4, seed=0)


def test_drop_label_index():
    assert ood._drop_label_index(None, "monkey", 7) == 7
    assert ood._drop_label_index([str(i) for i in range(10)], "monkey", 7) == 7  # TFDS defaults
    assert ood._drop_label_index(STL10_NAMES, "monkey", 0) == STL10_MONKEY_LABEL == 7


# ------------------------------------------------------------------------------------------
# TFDS mock data (needs tensorflow_datasets, not TensorFlow).
# ------------------------------------------------------------------------------------------


def _raw(tfds, builder, split, n):
    with tfds.testing.mock_data(num_examples=n):
        source = tfds.data_source(builder, split=split)
        return [source[i] for i in range(len(source))]


@pytest.mark.parametrize("name", ["svhn", "stl10", "cifar100", "cifar10"])
def test_mock_shapes_dtypes_and_stable_order(name):
    tfds = pytest.importorskip("tensorflow_datasets")
    spec = OOD_SETS[name]
    with tfds.testing.mock_data(num_examples=20):
        ds = load_ood_images(name)
        again = load_ood_images(name)
    raw = _raw(tfds, spec.builder, "test", 20)
    kept = [e for e in raw if name != "stl10" or int(e["label"]) != STL10_MONKEY_LABEL]
    assert ds.x.shape == (len(kept), 32, 32, 3) and ds.x.dtype == np.uint8
    assert ds.y.dtype == np.int32 and ds.num_classes == spec.num_classes and ds.name == name
    np.testing.assert_array_equal(ds.x, again.x)
    np.testing.assert_array_equal(ds.y, again.y)
    if "id" in raw[0]:
        kept = sorted(kept, key=lambda e: _id_sort_key(e["id"]))
    expected = np.stack([e["image"] for e in kept])
    if name == "stl10":
        expected = box_reference(expected, 3)
    np.testing.assert_array_equal(ds.x, expected)
    np.testing.assert_array_equal(ds.y, [int(e[spec.label_key]) for e in kept])
    # The set's own statistics (the caller normalizes with the in-distribution ones).
    np.testing.assert_allclose(ds.mean, (ds.x / 255.0).mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(ds.std, (ds.x / 255.0).std(axis=(0, 1, 2)), rtol=1e-12)


def test_mock_stl10_monkey_removed():
    tfds = pytest.importorskip("tensorflow_datasets")
    raw = _raw(tfds, "stl10", "test", 60)
    labels = np.array([int(e["label"]) for e in raw])
    assert (labels == 7).any()  # the mock draws every class at this size
    with tfds.testing.mock_data(num_examples=60):
        ds = load_ood_images("stl10")
    assert len(ds) == int((labels != 7).sum()) and 7 not in ds.y


def test_mock_image_size_and_subset():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=30):
        full = load_ood_images("svhn")
        small = load_ood_images("svhn", image_size=16)
        stl8 = load_ood_images("stl10", image_size=8)
        a = load_ood_images("svhn", max_examples=10, seed=3)
        b = load_ood_images("svhn", max_examples=10, seed=3)
        c = load_ood_images("svhn", max_examples=10, seed=4)
    np.testing.assert_array_equal(small.x, box_reference(full.x, 2))
    assert small.image_shape == (16, 16, 3) and stl8.x.shape[1:] == (8, 8, 3)
    np.testing.assert_array_equal(a.x, b.x)
    assert len(a) == 10 and not np.array_equal(a.x, c.x)
    # A subset without replacement, kept in the stable order: a subsequence of the full load.
    flat = full.x.reshape(len(full), -1)
    rows = [int(np.flatnonzero((flat == r).all(axis=1))[0]) for r in a.x.reshape(10, -1)]
    assert rows == sorted(set(rows))
    np.testing.assert_array_equal(a.y, full.y[rows])


# ------------------------------------------------------------------------------------------
# Validation, ImportError.
# ------------------------------------------------------------------------------------------


def test_load_validation_errors():
    with pytest.raises(ValueError, match="name must be one of 'svhn', 'stl10', 'cifar100', 'cifar10'"):
        load_ood_images("mnist")
    with pytest.raises(ValueError, match="split must be a non-empty"):
        load_ood_images("svhn", split="")
    for bad in (5, 0, 64, True, 32.0):
        with pytest.raises(ValueError, match=r"image_size must be an integer dividing svhn's native size 32"):
            load_ood_images("svhn", image_size=bad)
    with pytest.raises(ValueError, match=r"native size 96 \(one of \[1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 96\]\)"):
        load_ood_images("stl10", image_size=28)
    with pytest.raises(ValueError, match="max_examples must be an integer >= 1"):
        load_ood_images("svhn", max_examples=0, seed=0)
    with pytest.raises(ValueError, match="seed is required with max_examples"):
        load_ood_images("svhn", max_examples=5)
    with pytest.raises(ValueError, match="seed is only used with max_examples"):
        load_ood_images("svhn", seed=1)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        load_ood_images("svhn", max_examples=5, seed=-1)


def test_tfds_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[tfds\]"'):
        load_ood_images("svhn")


def test_pillow_missing_is_named(monkeypatch):
    ood._bundled_photos.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match="pip install pillow"):
            sample_image_crops(jax.random.key(0), 1, (4, 4, 1))
    finally:
        ood._bundled_photos.cache_clear()


# ------------------------------------------------------------------------------------------
# box_downsample, normalize_like.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1, 2, 3, 4])
def test_box_downsample_matches_reference(factor):
    x = np.random.default_rng(factor).integers(0, 256, (3, 12, 24, 2), dtype=np.uint8)
    np.testing.assert_array_equal(box_downsample(x, factor), box_reference(x, factor))


def test_box_downsample_rounds_half_up_and_errors():
    x = np.array([0, 1, 1, 1], np.uint8).reshape(1, 2, 2, 1)  # mean 0.75 -> 1
    assert box_downsample(x, 2)[0, 0, 0, 0] == 1
    x = np.array([0, 0, 1, 1], np.uint8).reshape(1, 2, 2, 1)  # mean 0.5 -> 1 (half up)
    assert box_downsample(x, 2)[0, 0, 0, 0] == 1
    with pytest.raises(ValueError, match="factor must divide the image height and width"):
        box_downsample(np.zeros((1, 6, 6, 1), np.uint8), 4)
    with pytest.raises(ValueError, match="images must have dtype uint8"):
        box_downsample(np.zeros((1, 6, 6, 1), np.float32), 2)
    with pytest.raises(ValueError, match="images must be 4-D"):
        box_downsample(np.zeros((6, 6, 1), np.uint8), 2)
    with pytest.raises(ValueError, match="factor must be an integer >= 1"):
        box_downsample(np.zeros((1, 6, 6, 1), np.uint8), 0)


def _image_ds(x, mean, std, name="d"):
    x = np.asarray(x, np.uint8)
    return Dataset(x, np.zeros(len(x), np.int32), 2, name, x.shape[1:], False, mean, std)


def test_normalize_like_hand_computed():
    ds = _image_ds([[[[0, 51]], [[255, 102]]]], (0.1, 0.2), (0.3, 0.4))  # [1, 2, 1, 2]
    ref = _image_ds(np.zeros((1, 2, 1, 2)), (0.5, 0.2), (0.25, 0.5))
    out = normalize_like(ds, ref)
    expected = np.array([[[[(0.0 - 0.5) / 0.25, (0.2 - 0.2) / 0.5]], [[(1.0 - 0.5) / 0.25, (0.4 - 0.2) / 0.5]]]])
    assert out.dtype == np.float32 and out.shape == (1, 2, 1, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert normalize_like(ds, ref, dtype=np.float64).dtype == np.float64
    np.testing.assert_allclose(normalize_like(ds, ds), ds.normalized(), rtol=1e-6)


def test_normalize_like_errors():
    img = _image_ds(np.zeros((1, 2, 2, 1)), (0.5,), (0.25,))
    other = _image_ds(np.zeros((1, 3, 3, 1)), (0.5,), (0.25,))
    tab = Dataset(np.zeros((2, 4), np.uint8), np.zeros(2, np.int32), 2, "tab", None, True, None, None)
    with pytest.raises(ValueError, match="ds and reference must have the same image_shape"):
        normalize_like(img, other)
    with pytest.raises(ValueError, match="reference must be an image Dataset"):
        normalize_like(img, tab)
    with pytest.raises(ValueError, match="ds must be an image Dataset"):
        normalize_like(np.zeros((1, 2, 2, 1)), img)


# ------------------------------------------------------------------------------------------
# Offline sets.
# ------------------------------------------------------------------------------------------


def test_uniform_noise_set():
    key = jax.random.key(0)
    ds = uniform_noise_set(key, 400, (8, 8, 1))
    assert ds.x.shape == (400, 8, 8, 1) and ds.x.dtype == np.uint8 and ds.image_shape == (8, 8, 1)
    assert ds.y.dtype == np.int32 and not ds.y.any() and ds.name == "uniform_noise"
    u = np.asarray(jax.random.uniform(key, (400, 8, 8, 1)))
    np.testing.assert_array_equal(ds.x, np.floor(u * 256).astype(np.uint8))
    counts = np.bincount(ds.x.ravel(), minlength=256)
    assert counts.min() > 0  # 25,600 draws cover all 256 values
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
    assert chi2 < 400  # 255 dof: mean 255, sd ~22.6
    np.testing.assert_array_equal(uniform_noise_set(key, 400, (8, 8, 1)).x, ds.x)
    assert not np.array_equal(uniform_noise_set(jax.random.key(1), 400, (8, 8, 1)).x, ds.x)
    np.testing.assert_allclose(ds.mean, [(ds.x / 255).mean()], rtol=1e-12)
    assert uniform_noise_set(jax.random.key(2), 2, (4, 5, 3)).x.shape == (2, 4, 5, 3)


def test_offline_set_errors():
    for fn in (uniform_noise_set, sample_image_crops):
        with pytest.raises(ValueError, match="key must be a jax.random key"):
            fn(0, 2, (4, 4, 1))
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            fn(jax.random.key(0), 0, (4, 4, 1))
        with pytest.raises(ValueError, match=r"image_shape must be \(H, W, C\)"):
            fn(jax.random.key(0), 2, (4, 4))
        with pytest.raises(ValueError, match=r"image_shape\[1\] must be an integer >= 1"):
            fn(jax.random.key(0), 2, (4, 0, 1))
    with pytest.raises(ValueError, match=r"image_shape\[2\] must be one of 1, 3"):
        sample_image_crops(jax.random.key(0), 2, (4, 4, 2))


def test_sample_image_crops():
    key = jax.random.key(0)
    rgb = sample_image_crops(key, 40, (8, 8, 3))
    gray = sample_image_crops(key, 40, (8, 8, 1))
    assert rgb.x.shape == (40, 8, 8, 3) and gray.x.shape == (40, 8, 8, 1)
    assert rgb.x.dtype == gray.x.dtype == np.uint8 and rgb.y.dtype == np.int32
    assert set(np.unique(rgb.y)) == {0, 1} and rgb.num_classes == 2
    np.testing.assert_array_equal(gray.y, rgb.y)  # same key -> same photos and boxes
    diff = gray.x[..., 0].astype(float) - rgb.x.mean(axis=-1)
    assert np.abs(diff).max() <= 1.0  # gray = channel mean (each rounded once)
    np.testing.assert_array_equal(sample_image_crops(key, 40, (8, 8, 3)).x, rgb.x)
    other = sample_image_crops(jax.random.key(1), 40, (8, 8, 3))
    assert not np.array_equal(other.x, rgb.x)
    assert rgb.x.std() > 10  # natural images, not constant
    # More than one padded chunk, non-square shape.
    wide = sample_image_crops(key, ood._CROP_CHUNK + 3, (4, 8, 1))
    assert wide.x.shape == (ood._CROP_CHUNK + 3, 4, 8, 1)


def test_crop_resize_coordinate_convention():
    photo = ood._bundled_photos()[0].astype(np.float32)
    # Scale 1, integer offset: exactly the sub-image.
    out = ood._crop_resize_one(photo, np.float32(10), np.float32(20), np.float32(6), np.float32(7), (6, 7))
    np.testing.assert_allclose(np.asarray(out), photo[10:16, 20:27], atol=1e-3)
    # Downsampling a constant region keeps the constant.
    flat = np.full((30, 30, 1), 77.0, np.float32)
    out = ood._crop_resize_one(flat, np.float32(3.5), np.float32(2.0), np.float32(20), np.float32(20), (4, 4))
    np.testing.assert_allclose(np.asarray(out), 77.0, atol=1e-3)
