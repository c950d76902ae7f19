"""Tests for hampjax.metrics.calibration: ECE, OE, MMPS, reliability bins, 1-D EMD."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from hampjax.metrics.calibration import (
    ReliabilityDiagram,
    expected_calibration_error,
    mean_max_prediction_score,
    overconfidence_error,
    reliability_diagram_data,
    wasserstein_distance,
)


def _slow_calibration(probs, labels, num_bins):
    """Loop over bins exactly as written in the paper: conf in (l, u] (first bin takes 0)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    n = len(conf)
    ece = oe = 0.0
    for b in range(num_bins):
        lo, hi = edges[b], edges[b + 1]
        in_bin = (conf > lo) & (conf <= hi)
        if b == 0:
            in_bin |= conf == 0.0
        if not in_bin.any():
            continue
        conf_b, acc_b = conf[in_bin].mean(), correct[in_bin].mean()
        ece += in_bin.sum() / n * abs(conf_b - acc_b)
        oe += in_bin.sum() / n * conf_b * max(conf_b - acc_b, 0.0)
    return ece, oe


def _random_probs(seed, n=300, c=10, sharpness=0.3):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(c, sharpness), size=n)
    labels = rng.integers(0, c, size=n)
    return probs, labels


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("num_bins", [1, 5, 15, 40])
def test_ece_and_oe_match_slow_loop(seed, num_bins):
    probs, labels = _random_probs(seed)
    want_ece, want_oe = _slow_calibration(probs, labels, num_bins)
    assert expected_calibration_error(probs, labels, num_bins=num_bins) == pytest.approx(want_ece, abs=1e-12)
    assert overconfidence_error(probs, labels, num_bins=num_bins) == pytest.approx(want_oe, abs=1e-12)


def test_calibrated_predictions_have_zero_ece():
    # Every prediction has confidence 0.9 and 9 of 10 are right: one bin, conf = acc = 0.9.
    probs = np.tile([0.9, 0.1], (10, 1))
    labels = np.array([0] * 9 + [1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    assert overconfidence_error(probs, labels) == pytest.approx(0.0, abs=1e-12)


def test_overconfident_predictions():
    # Confidence 1.0, accuracy 0.5: ECE = |1 - 0.5| = 0.5; OE = 1.0 * 0.5 = 0.5.
    probs = np.tile([1.0, 0.0], (4, 1))
    labels = np.array([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5)
    assert overconfidence_error(probs, labels) == pytest.approx(0.5)
    # Confidence 0.8 (= 12/15, an upper edge: all in bin (11/15, 12/15]), accuracy 0.25:
    # ECE = 0.55, OE = 0.8 * 0.55 = 0.44.
    probs = np.tile([0.8, 0.2], (4, 1))
    labels = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.55)
    assert overconfidence_error(probs, labels) == pytest.approx(0.44)


def test_underconfident_predictions_have_zero_oe():
    # Confidence 0.6, all correct: ECE = 0.4, OE = 0 (only over-confidence counts).
    probs = np.tile([0.6, 0.4], (5, 1))
    labels = np.zeros(5, int)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.4)
    assert overconfidence_error(probs, labels) == 0.0


def test_two_bins_mixed_weights():
    # Bin (0.5, 1] with 2 bins: conf 1.0 (wrong) and 0.75 (right) -> conf_b 0.875, acc_b 0.5.
    # Bin [0, 0.5]: conf 0.5 (right) -> conf_b 0.5, acc_b 1.
    # ECE = 2/3 * 0.375 + 1/3 * 0.5 = 0.41667; OE = 2/3 * 0.875 * 0.375 = 0.21875.
    probs = np.array([[1.0, 0.0], [0.25, 0.75], [0.5, 0.5]])
    labels = np.array([1, 1, 0])
    assert expected_calibration_error(probs, labels, num_bins=2) == pytest.approx(0.25 + 1 / 6)
    assert overconfidence_error(probs, labels, num_bins=2) == pytest.approx(2 / 3 * 0.875 * 0.375)


def test_bin_membership_is_left_open_right_closed():
    # With 4 bins, conf 0.5 is an upper edge: bin (0.25, 0.5] = bin 1, not bin 2; conf 0.25
    # (the uniform row) is the upper edge of the first bin; conf 1.0 goes to the last.
    probs = np.array([[0.5, 0.5, 0, 0], [0.5, 0.25, 0.25, 0], [0.25] * 4, [1.0, 0, 0, 0],
                      [0.5000001, 0.4999999, 0, 0]])
    labels = np.array([0, 0, 0, 0, 0])
    d = reliability_diagram_data(probs, labels, num_bins=4)
    assert isinstance(d, ReliabilityDiagram)
    np.testing.assert_array_equal(d.counts, [1, 2, 1, 1])
    np.testing.assert_allclose(d.bin_edges, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(d.confidence, [0.25, 0.5, 0.5000001, 1.0])
    np.testing.assert_allclose(d.accuracy, [1.0, 1.0, 1.0, 1.0])


def test_reliability_diagram_matches_ece_and_marks_empty_bins():
    probs, labels = _random_probs(0, n=50, c=3, sharpness=5.0)
    d = reliability_diagram_data(probs, labels, num_bins=15)
    assert d.counts.sum() == 50 and d.counts.dtype == np.int64
    empty = d.counts == 0
    assert empty.any()  # near-uniform probs over 3 classes never reach confidence < 1/3
    assert np.all(np.isnan(d.confidence[empty])) and np.all(np.isnan(d.accuracy[empty]))
    w = d.counts[~empty] / 50
    ece = np.sum(w * np.abs(d.confidence[~empty] - d.accuracy[~empty]))
    assert ece == pytest.approx(expected_calibration_error(probs, labels))


def test_accepts_jax_arrays():
    probs, labels = _random_probs(1)
    want = expected_calibration_error(probs.astype(np.float32), labels)
    got = expected_calibration_error(jnp.asarray(probs, jnp.float32), jnp.asarray(labels))
    assert got == want
    assert mean_max_prediction_score(jnp.asarray(probs)) == pytest.approx(probs.max(1).mean())


def test_mmps():
    assert mean_max_prediction_score([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5]]) == pytest.approx(0.7)
    assert mean_max_prediction_score(np.eye(3)) == 1.0


# ------------------------------------------------------------------------------------------
# Wasserstein distance.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,m", [(1, 1), (50, 50), (37, 113), (200, 3)])
@pytest.mark.parametrize("tied", [False, True])
def test_wasserstein_matches_scipy(n, m, tied):
    rng = np.random.default_rng(n * 1000 + m)
    a, b = rng.normal(size=n), rng.normal(loc=0.5, scale=2.0, size=m)
    if tied:
        a, b = np.round(a), np.round(b)
    want = stats.wasserstein_distance(a, b)
    assert wasserstein_distance(a, b) == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert wasserstein_distance(b, a) == pytest.approx(want, rel=1e-12, abs=1e-14)


def test_wasserstein_equal_sizes_is_mean_abs_diff_of_sorted():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(size=100), rng.uniform(size=100) ** 2
    assert wasserstein_distance(a, b) == pytest.approx(np.mean(np.abs(np.sort(a) - np.sort(b))))


def test_wasserstein_hand_values():
    assert wasserstein_distance([0.0, 1.0, 3.0], [0.0, 1.0, 3.0]) == 0.0
    assert wasserstein_distance([1.0, 2.0, 3.0], [6.0, 7.0, 8.0]) == pytest.approx(5.0)
    # Point mass at 0 vs half at 0, half at 1: half the mass moves 1 -> 0.5.
    assert wasserstein_distance([0.0], [0.0, 1.0]) == pytest.approx(0.5)
    assert wasserstein_distance(jnp.array([0.0, 1.0]), np.array([0.5, 1.5])) == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------
# Validation.
# ------------------------------------------------------------------------------------------

CAL_FNS = [
    expected_calibration_error,
    overconfidence_error,
    reliability_diagram_data,
]


@pytest.mark.parametrize("fn", CAL_FNS)
@pytest.mark.parametrize(
    "probs,labels,match",
    [
        ([0.5, 0.5], [0], "probs must be 2-D"),
        (np.zeros((1, 2, 2)), [0], "probs must be 2-D"),
        (np.zeros((0, 2)), np.zeros(0, int), "at least 1 example"),
        (np.zeros((2, 0)), [0, 0], "at least 1 class"),
        ([[1.5, -0.5]], [0], r"probs must be in \[0, 1\]"),
        ([[-0.1, 0.2]], [0], r"probs must be in \[0, 1\]"),
        ([[np.nan, 0.2]], [0], r"probs must be finite \(no NaN or inf\); found nan at index \(0, 0\)"),
        ([[0.9, 0.1], [1.0, 1.0]], [0, 0], r"probs must have rows that sum to 1 \(within 0.001\); row \(1,\) sums to 2.0"),
        ([[0.5, 0.5]], [0.0], "integer class indices"),
        ([[0.5, 0.5]], [2], r"labels must be in \[0, 2\)"),
        ([[0.5, 0.5]], [-1], r"labels must be in \[0, 2\)"),
        ([[0.5, 0.5]], [0, 1], "one entry per row"),
        ([[0.5, 0.5]], [[0]], "labels must be 1-D"),
    ],
)
def test_calibration_invalid_inputs(fn, probs, labels, match):
    with pytest.raises(ValueError, match=match):
        fn(np.asarray(probs), np.asarray(labels))


@pytest.mark.parametrize("fn", CAL_FNS)
@pytest.mark.parametrize("num_bins", [0, -3, 1.5, None])
def test_calibration_invalid_num_bins(fn, num_bins):
    with pytest.raises(ValueError, match="num_bins must be an integer >= 1"):
        fn(np.array([[0.5, 0.5]]), np.array([0]), num_bins=num_bins)


@pytest.mark.parametrize(
    "probs,match",
    [([0.5, 0.5], "2-D"), (np.zeros((0, 2)), "at least 1 example"), (np.zeros((2, 0)), "at least 1 class"),
     ([[1.2, 0.0]], r"\[0, 1\]"), ([[np.nan, 0.0]], r"must be finite"), ([[0.5, 0.6]], r"sum to 1")],
)
def test_mmps_invalid(probs, match):
    with pytest.raises(ValueError, match=match):
        mean_max_prediction_score(np.asarray(probs))


@pytest.mark.parametrize(
    "a,b,match",
    [([], [1.0], "a must contain at least 1"), ([1.0], [], "b must contain at least 1"),
     ([[1.0]], [1.0], "a must be 1-D"), ([1.0], [np.nan], "b must be finite"),
     ([np.inf], [1.0], "a must be finite")],
)
def test_wasserstein_invalid(a, b, match):
    with pytest.raises(ValueError, match=match):
        wasserstein_distance(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
