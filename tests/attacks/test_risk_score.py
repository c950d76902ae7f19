"""Tests for hampjax.attacks.risk_score (Song & Mittal privacy risk score)."""

import numpy as np
import pytest

from hampjax.attacks.risk_score import privacy_risk_scores
from hampjax.metrics import auc


def slow_risk(target, labels, shadow, keep, num_bins):
    """One example at a time, np.histogram per class."""
    out = np.zeros(len(target))
    for j in range(len(target)):
        cols = labels == labels[j]
        vals, inn = shadow[:, cols].ravel(), keep[:, cols].ravel()
        h_in, edges = np.histogram(vals[inn], bins=num_bins, range=(vals.min(), vals.max()))
        h_out, _ = np.histogram(vals[~inn], bins=num_bins, range=(vals.min(), vals.max()))
        b = int(np.clip(np.searchsorted(edges, target[j], side="right") - 1, 0, num_bins - 1))
        p_in, p_out = h_in[b] / inn.sum(), h_out[b] / (~inn).sum()
        out[j] = 0.5 if p_in + p_out == 0 else p_in / (p_in + p_out)
    return out


def _world(seed=0, s=8, n=200, c=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    keep = np.argsort(rng.uniform(size=(s + 1, n)), axis=0) < (s + 1) // 2
    scores = rng.normal(size=(s + 1, n)) + 1.5 * keep + 0.5 * labels
    return scores, labels, keep


@pytest.mark.parametrize("num_bins", [1, 7, 30])
def test_matches_slow_reference(num_bins):
    scores, labels, keep = _world()
    target = np.concatenate([scores[0, :-2], [100.0, -100.0]])  # two outside the shadow span
    got = privacy_risk_scores(target, labels, scores[1:], keep[1:], num_bins=num_bins)
    np.testing.assert_array_equal(got, slow_risk(target, labels, scores[1:], keep[1:], num_bins))
    assert np.all((got >= 0) & (got <= 1))


def test_members_riskier_and_monotone_when_in_dominates():
    scores, labels, keep = _world(n=2000)
    risk = privacy_risk_scores(scores[0], labels, scores[1:], keep[1:], num_bins=20)
    assert auc(risk, keep[0].astype(np.int8)) > 0.75
    # IN scores sit above OUT scores (shift 1.5, equal spread): along a grid of one class the
    # risk grows (up to histogram noise in the tails) and ends near 1.
    grid = np.linspace(-1.0, 3.5, 10)
    r = privacy_risk_scores(grid, np.zeros(10, int), scores[1:], keep[1:], num_bins=10,
                            shadow_labels=labels)
    assert np.all(np.diff(r) >= -0.05) and r[-1] > 0.8 and r[0] < 0.2


def test_separate_shadow_examples_and_errors():
    scores, labels, keep = _world()
    got = privacy_risk_scores(scores[0, :5], labels[:5], scores[1:], keep[1:], shadow_labels=labels)
    np.testing.assert_array_equal(got, privacy_risk_scores(scores[0], labels, scores[1:], keep[1:])[:5])
    with pytest.raises(ValueError, match="class 0 has 0 IN"):
        privacy_risk_scores(scores[0], labels, scores[1:], np.zeros_like(keep[1:]))
    with pytest.raises(ValueError, match="shadow_keep must be a boolean mask"):
        privacy_risk_scores(scores[0], labels, scores[1:], keep[1:, :3])
    with pytest.raises(ValueError, match="target_scores must be finite"):
        privacy_risk_scores(np.full(200, np.nan), labels, scores[1:], keep[1:])
    with pytest.raises(ValueError, match="labels must be integer"):
        privacy_risk_scores(scores[0], labels.astype(float), scores[1:], keep[1:])
    with pytest.raises(ValueError, match="num_bins must be an integer"):
        privacy_risk_scores(scores[0], labels, scores[1:], keep[1:], num_bins=0)
