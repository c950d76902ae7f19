"""HAMP / RelaxLoss / LiRA split schemes: sizes, disjointness, determinism, recorded metadata."""

import hashlib
import json

import numpy as np
import pytest

from hampjax.data.splits import (
    HAMP_SPLIT_SIZES,
    SplitSizes,
    data_hash,
    hamp_split,
    hamp_split_sizes,
    lira_candidate_pool,
    relaxloss_image_split,
    relaxloss_tabular_split,
)


def _data(n, d=3):
    x = np.arange(n * d, dtype=np.uint8).reshape(n, d)
    return x, (np.arange(n) % 7).astype(np.int32)


def _disjoint(*parts):
    joined = np.concatenate(parts)
    return len(np.unique(joined)) == len(joined)


def test_paper_table_sizes():
    table = {
        "purchase100": (18_000, 2_000, 2_000, 18_000),
        "texas100": (13_500, 1_500, 1_500, 13_500),
        "location30": (1_350, 300, 1_000, 1_350),
        "cifar10": (22_500, 2_500, 2_500, 22_500),
        "cifar100": (22_500, 2_500, 2_500, 22_500),
    }
    for name, sizes in table.items():
        s = HAMP_SPLIT_SIZES[name]
        assert (s.members, s.val, s.test, s.nonmembers) == sizes, name
    assert HAMP_SPLIT_SIZES["location30"].total == 4_000


def test_hamp_split_full_size_purchase():
    x, y = _data(197_324, 1)
    split = hamp_split(x, y, HAMP_SPLIT_SIZES["purchase100"], seed=3)
    sizes = [len(split.members), len(split.val), len(split.test), len(split.nonmembers)]
    assert sizes == [18_000, 2_000, 2_000, 18_000]
    assert _disjoint(split.members, split.val, split.test, split.nonmembers)
    perm = np.random.default_rng(3).permutation(197_324)
    np.testing.assert_array_equal(split.members, perm[:18_000])
    np.testing.assert_array_equal(split.nonmembers, perm[22_000:40_000])


def test_hamp_split_deterministic_and_recorded():
    x, y = _data(100)
    sizes = hamp_split_sizes(20)
    a, b = hamp_split(x, y, sizes, seed=1), hamp_split(x, y, sizes, seed=1)
    for field in ("members", "val", "test", "nonmembers"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.members, hamp_split(x, y, sizes, seed=2).members)
    record = a.record()
    json.dumps(record)
    assert record == {"scheme": "hamp", "seed": 1, "data_hash": data_hash(x, y), "num_examples": 100,
                      "sizes": {"members": 18, "val": 2, "test": 2, "nonmembers": 18}}


def test_hamp_split_sizes_rules():
    assert hamp_split_sizes(1_500, val_fraction=0.2, test_size=1_000) == SplitSizes(1_350, 300, 1_000, 1_350)
    assert hamp_split_sizes(10) == SplitSizes(9, 1, 1, 9)


def test_relaxloss_image_split():
    x, y = _data(60_000, 1)
    s = relaxloss_image_split(x, y, seed=0)
    parts = [s.target_train, s.target_test, s.shadow_train, s.shadow_test, s.reference]
    assert [len(p) for p in parts] == [12_000] * 5 and _disjoint(*parts)
    perm = np.random.default_rng(0).permutation(60_000)
    np.testing.assert_array_equal(s.shadow_train, perm[24_000:36_000])
    small = relaxloss_image_split(x[:10], y[:10], seed=0, slice_size=2)
    assert len(small.reference) == 2 and small.record()["scheme"] == "relaxloss"


def test_relaxloss_tabular_split():
    n = 197_324
    x, y = _data(n, 1)
    s = relaxloss_tabular_split(x, y, seed=5)
    h = int(0.4 * n) // 2
    perm = np.random.default_rng(5).permutation(n)
    np.testing.assert_array_equal(s.target_train, perm[:h])
    np.testing.assert_array_equal(s.shadow_train, perm[h:2 * h])
    np.testing.assert_array_equal(s.target_test, perm[n - 2 * h:n - h])
    np.testing.assert_array_equal(s.shadow_test, perm[n - h:])
    parts = [s.target_train, s.target_test, s.shadow_train, s.shadow_test, s.reference]
    assert sum(len(p) for p in parts) == n and _disjoint(*parts)
    assert len(s.reference) == n - 4 * h and abs(len(s.reference) - 0.2 * n) < 5


def test_lira_candidate_pool():
    x, y = _data(60_000, 1)
    pool = lira_candidate_pool(x, y, num_members=25_000, seed=0)
    assert len(pool.candidates) == 50_000 and len(pool.remainder) == 10_000
    assert _disjoint(pool.candidates, pool.remainder)
    np.testing.assert_array_equal(pool.candidates, np.random.default_rng(0).permutation(60_000)[:50_000])
    assert pool.record()["sizes"] == {"candidates": 50_000, "remainder": 10_000}


def test_data_hash():
    x, y = _data(10)
    expected = hashlib.sha256()
    expected.update(f"{x.dtype.str}{x.shape};".encode())
    expected.update(x.tobytes())
    expected.update(f"{y.dtype.str}{y.shape};".encode())
    expected.update(y.tobytes())
    assert data_hash(x, y) == expected.hexdigest()
    assert data_hash(np.asfortranarray(x), y) == data_hash(x, y)
    x2 = x.copy()
    x2[3, 1] ^= 1
    assert data_hash(x2, y) != data_hash(x, y)
    assert data_hash(x.astype(np.int16), y) != data_hash(x, y)
    assert data_hash(x.reshape(5, 6), y) != data_hash(x, y)
    assert data_hash(x, y[::-1]) != data_hash(x, y)
    assert len(data_hash(np.zeros((0, 2)), np.zeros(0))) == 64


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: hamp_split(*_data(30), hamp_split_sizes(20), seed=0), "needs 40 examples, but the dataset has only"),
        (lambda: hamp_split(*_data(100), (18, 2, 2, 18), seed=0), "sizes must be a SplitSizes"),
        (lambda: hamp_split(*_data(100), hamp_split_sizes(20), seed=-1), "seed must be an integer >= 0"),
        (lambda: hamp_split(*_data(100), hamp_split_sizes(20), seed=1.5), "seed must be an integer"),
        (lambda: hamp_split(_data(100)[0], _data(99)[1], hamp_split_sizes(20), seed=0), "same number of examples"),
        (lambda: hamp_split(np.zeros((0, 2)), np.zeros(0), hamp_split_sizes(20), seed=0), "at least 1 example"),
        (lambda: hamp_split(_data(100)[0], np.zeros((100, 1)), hamp_split_sizes(20), seed=0), "y must be 1-D"),
        (lambda: hamp_split_sizes(9), "train_size must be an integer >= 10"),
        (lambda: hamp_split_sizes(100, val_fraction=0.0), r"val_fraction must be in \(0, 1\]"),
        (lambda: hamp_split_sizes(100, test_size=0), "test_size must be an integer >= 1"),
        (lambda: relaxloss_image_split(*_data(10), seed=0, slice_size=3), "5 slices of slice_size=3 needs 15"),
        (lambda: relaxloss_image_split(*_data(10), seed=0, slice_size=0), "slice_size must be"),
        (lambda: relaxloss_tabular_split(*_data(4), seed=0), "needs 5 examples"),
        (lambda: lira_candidate_pool(*_data(10), num_members=6, seed=0), "2 \\* num_members=12 needs 12"),
        (lambda: lira_candidate_pool(*_data(10), num_members=0, seed=0), "num_members must be"),
    ],
)
def test_validation(call, match):
    with pytest.raises(ValueError, match=match):
        call()
