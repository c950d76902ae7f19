"""Keep matrices: exact balance, complementarity, stratification, determinism, I/O."""

import numpy as np
import pytest

from hampjax.training.membership import (
    balanced_keep,
    check_keep,
    load_keep,
    paired_keep,
    save_keep,
)


@pytest.mark.parametrize("m,n", [(2, 5), (16, 101), (128, 400)])
def test_balanced_every_example_in_exactly_half(m, n):
    keep = balanced_keep(m, n, seed=0)
    assert keep.shape == (m, n) and keep.dtype == bool
    np.testing.assert_array_equal(keep.sum(axis=0), m // 2)
    # each model gets about half of the examples
    assert np.all(np.abs(keep.sum(axis=1) - n / 2) < 5 * np.sqrt(n))


def test_balanced_reference_scheme():
    # The LiRA construction, written out.
    rng = np.random.default_rng(7)
    u = rng.uniform(size=(6, 10))
    want = np.argsort(u, axis=0) < 3
    np.testing.assert_array_equal(balanced_keep(6, 10, seed=7), want)


def test_deterministic_and_seed_dependent():
    np.testing.assert_array_equal(balanced_keep(4, 50, seed=1), balanced_keep(4, 50, seed=1))
    assert not np.array_equal(balanced_keep(4, 50, seed=1), balanced_keep(4, 50, seed=2))
    np.testing.assert_array_equal(paired_keep(4, 50, seed=1), paired_keep(4, 50, seed=1))


@pytest.mark.parametrize("n", [10, 11])
def test_paired_complementary(n):
    keep = paired_keep(6, n, seed=0)
    for i in range(3):
        np.testing.assert_array_equal(keep[2 * i], ~keep[2 * i + 1])
        assert keep[2 * i].sum() in (n // 2, (n + 1) // 2)
    np.testing.assert_array_equal(keep.sum(axis=0), 3)


def test_paired_stratified_halves_each_class():
    labels = np.repeat(np.arange(4), [10, 7, 6, 1])
    keep = paired_keep(4, len(labels), seed=3, stratify_labels=labels)
    for m in range(4):
        for c, size in enumerate([10, 7, 6, 1]):
            assert keep[m, labels == c].sum() in (size // 2, (size + 1) // 2)
    np.testing.assert_array_equal(keep.sum(axis=0), 2)


def test_save_load_roundtrip(tmp_path):
    keep = balanced_keep(4, 20, seed=0)
    path = tmp_path / "keep.npy"
    save_keep(path, keep)
    np.testing.assert_array_equal(load_keep(path), keep)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npy"]  # no temp file left


@pytest.mark.parametrize("call,match", [
    (lambda: balanced_keep(3, 10, seed=0), "num_models must be an even integer >= 2"),
    (lambda: balanced_keep(0, 10, seed=0), "num_models must be an integer >= 2"),
    (lambda: balanced_keep(4, 0, seed=0), "num_examples must be an integer >= 1"),
    (lambda: balanced_keep(4, 10, seed=-1), "seed must be an integer >= 0"),
    (lambda: paired_keep(4, 10, seed=0, stratify_labels=np.zeros(3, int)),
     r"stratify_labels must have shape \(num_examples,\)"),
    (lambda: check_keep(np.zeros((2, 3), int)), "keep must be a boolean matrix"),
    (lambda: check_keep(np.zeros(3, bool)), "keep must be 2-D"),
])
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("stored,match", [
    (np.ones((2, 4), np.float32), "must have dtype bool .* got dtype float32 \\(not cast"),
    (np.array([[0.5, 1.0], [1.0, 0.0]]), "got dtype float64"),
    (np.ones((2, 4), np.int64), "got dtype int64"),
    (np.ones(4, bool), "keep must be 2-D"),
    (np.array([[True, False], [False, False]]), "model\\(s\\) \\[1\\] have none"),
])
def test_load_keep_refuses_instead_of_casting(tmp_path, stored, match):
    path = tmp_path / "keep.npy"
    np.save(path, stored)
    with pytest.raises(ValueError, match=match) as info:
        load_keep(path)
    assert str(path) in str(info.value)


def test_load_keep_corrupt_file_names_it(tmp_path):
    path = tmp_path / "keep.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="keep.npy is corrupt or truncated"):
        load_keep(path)
