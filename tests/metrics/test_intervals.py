"""Tests for hampjax.metrics.intervals: percentile bootstrap and Clopper-Pearson."""

import functools
import warnings

import numpy as np
import pytest
from scipy import stats

from hampjax.metrics.intervals import Interval, bootstrap_interval, clopper_pearson
from hampjax.metrics.roc import ResolutionWarning, auc, tpr_at_fpr


def _case(n_pos=200, n_neg=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.ones(n_pos, int), np.zeros(n_neg, int)])
    scores = rng.normal(size=labels.size) + labels
    return scores, labels


def test_interval_contains_estimate_and_is_ordered():
    scores, labels = _case()
    out = bootstrap_interval(auc, scores, labels, seed=0, num_resamples=300)
    assert isinstance(out, Interval)
    assert out.estimate == auc(scores, labels)
    assert out.low < out.estimate < out.high
    assert 0.0 <= out.low and out.high <= 1.0
    assert all(isinstance(v, float) for v in out)


def test_deterministic_for_seed_and_different_across_seeds():
    scores, labels = _case()
    a = bootstrap_interval(auc, scores, labels, seed=3, num_resamples=100)
    b = bootstrap_interval(auc, scores, labels, seed=3, num_resamples=100)
    c = bootstrap_interval(auc, scores, labels, seed=4, num_resamples=100)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.estimate == c.estimate


def _recording_metric(calls):
    def metric(s, y):
        assert s.dtype == np.float64 and y.shape == s.shape
        calls.append((int(np.sum(y == 1)), int(np.sum(y == 0))))
        return float(np.mean(s[y == 1]))

    return metric


def test_stratified_resamples_keep_class_counts():
    scores, labels = _case(n_pos=7, n_neg=13)
    calls = []
    bootstrap_interval(_recording_metric(calls), scores, labels, seed=0, num_resamples=50)
    assert len(calls) == 51  # the estimate plus every resample
    assert set(calls) == {(7, 13)}


def test_unstratified_resamples_vary_counts_but_keep_both_classes():
    # 1 member and 2 non-members: about 30% of plain resamples would miss a class.
    scores = np.array([2.0, 0.0, 1.0])
    labels = np.array([1, 0, 0])
    calls = []
    bootstrap_interval(
        _recording_metric(calls), scores, labels, seed=0, num_resamples=200, stratified=False
    )
    assert len({c for c in calls}) > 1
    assert all(p >= 1 and n >= 1 and p + n == 3 for p, n in calls)


def test_bootstrap_of_mean_matches_normal_theory():
    # Stratified bootstrap of the member mean: interval ~ mean +- 1.96 sd / sqrt(n).
    scores, labels = _case(n_pos=2000, n_neg=10, seed=1)
    member_scores = scores[labels == 1]

    def mean_of_members(s, y):
        return float(np.mean(s[y == 1]))

    out = bootstrap_interval(mean_of_members, scores, labels, seed=0, num_resamples=1000)
    half = 1.959964 * np.std(member_scores) / np.sqrt(member_scores.size)
    assert out.estimate == pytest.approx(np.mean(member_scores))
    assert out.high - out.low == pytest.approx(2 * half, rel=0.15)
    assert (out.low + out.high) / 2 == pytest.approx(out.estimate, abs=0.3 * half)


def test_higher_confidence_is_wider():
    scores, labels = _case()
    a = bootstrap_interval(auc, scores, labels, seed=0, num_resamples=200, confidence=0.5)
    b = bootstrap_interval(auc, scores, labels, seed=0, num_resamples=200, confidence=0.99)
    assert b.low < a.low and a.high < b.high


def test_works_with_low_fpr_reading():
    scores, labels = _case(n_pos=500, n_neg=500)
    metric = functools.partial(tpr_at_fpr, fpr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResolutionWarning)
        out = bootstrap_interval(metric, scores, labels, seed=0, num_resamples=100)
    assert 0.0 <= out.low <= out.high <= 1.0


def test_single_resample():
    scores, labels = _case()
    out = bootstrap_interval(auc, scores, labels, seed=0, num_resamples=1)
    assert out.low == out.high


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(seed=None), "seed must be an integer >= 0"),
        (dict(seed=-1), "seed must be an integer >= 0"),
        (dict(seed=1.5), "seed must be an integer >= 0"),
        (dict(seed=0, num_resamples=0), "num_resamples must be an integer >= 1"),
        (dict(seed=0, num_resamples=2.0), "num_resamples must be an integer >= 1"),
        (dict(seed=0, confidence=0.0), r"confidence must be in \(0, 1\)"),
        (dict(seed=0, confidence=1.0), r"confidence must be in \(0, 1\)"),
        (dict(seed=0, confidence=np.nan), r"confidence must be in \(0, 1\)"),
    ],
)
def test_bootstrap_validation(kwargs, match):
    scores, labels = _case(n_pos=5, n_neg=5)
    with pytest.raises(ValueError, match=match):
        bootstrap_interval(auc, scores, labels, **kwargs)


def test_bootstrap_requires_seed():
    scores, labels = _case(n_pos=5, n_neg=5)
    with pytest.raises(TypeError):
        bootstrap_interval(auc, scores, labels)  # pylint: disable=missing-kwoa


@pytest.mark.parametrize(
    "scores,labels,match",
    [([0.1, 0.2], [1, 1], "both members"), ([0.1, np.nan], [0, 1], "finite"),
     ([0.1, 0.2, 0.3], [0, 1], "same shape")],
)
def test_bootstrap_validates_data(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_interval(auc, np.asarray(scores), np.asarray(labels), seed=0)


# ------------------------------------------------------------------------------------------
# Clopper-Pearson.
# ------------------------------------------------------------------------------------------


def test_clopper_pearson_known_values():
    # 0 of 10 at 95%: upper = 1 - 0.025 ** (1 / 10) = 0.30850.
    low, high = clopper_pearson(0, 10)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** 0.1, abs=1e-12)
    assert high == pytest.approx(0.3085, abs=1e-4)
    low, high = clopper_pearson(10, 10)
    assert high == 1.0 and low == pytest.approx(0.025 ** 0.1, abs=1e-12)
    low, high = clopper_pearson(5, 10)
    assert (low, high) == pytest.approx((0.18709, 0.81291), abs=1e-5)
    # One-sided formula at the edges with other confidences: 0 of n -> 1 - (a/2)^(1/n).
    assert clopper_pearson(0, 3, confidence=0.9)[1] == pytest.approx(1 - 0.05 ** (1 / 3))


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (3, 17), (1, 1000), (999, 1000), (40, 50)])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.999])
def test_clopper_pearson_matches_scipy_binomtest(k, n, confidence):
    want = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    got = clopper_pearson(k, n, confidence=confidence)
    np.testing.assert_allclose(got, (want.low, want.high), rtol=1e-9, atol=1e-12)
    assert got[0] <= k / n <= got[1]


@pytest.mark.parametrize(
    "k,n,kwargs,match",
    [
        (0, 0, {}, "trials must be an integer >= 1"),
        (0, 2.0, {}, "trials must be an integer >= 1"),
        (-1, 5, {}, "successes must be an integer >= 0"),
        (0.5, 5, {}, "successes must be an integer >= 0"),
        (6, 5, {}, r"successes must be in \[0, trials=5\]"),
        (1, 5, dict(confidence=1.5), r"confidence must be in \(0, 1\)"),
        (1, 5, dict(confidence=0), r"confidence must be in \(0, 1\)"),
    ],
)
def test_clopper_pearson_validation(k, n, kwargs, match):
    with pytest.raises(ValueError, match=match):
        clopper_pearson(k, n, **kwargs)
