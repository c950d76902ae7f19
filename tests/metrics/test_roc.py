"""Tests for hampjax.metrics.roc: exact ROC, low-FPR readings, resolution flags, summary."""

import json
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from hampjax.metrics.roc import (
    ResolutionWarning,
    attacker_advantage,
    auc,
    balanced_accuracy,
    below_resolution_key,
    format_rate,
    min_resolvable_fnr,
    min_resolvable_fpr,
    roc_curve,
    summarize,
    tnr_at_fnr,
    tnr_at_fnr_key,
    tpr_at_fpr,
    tpr_at_fpr_key,
)


def _random_case(seed, n=500, tied=False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    labels[:2] = [0, 1]
    if tied:
        scores = rng.integers(0, 6, size=n).astype(np.float64) + labels * rng.integers(0, 2, size=n)
    else:
        scores = rng.normal(size=n) + 0.7 * labels
    return scores, labels


def _slow_roc(scores, labels):
    """One point per threshold in {+inf} U distinct scores, rule: member iff score >= t."""
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    pos, neg = labels == 1, labels == 0
    tpr = np.array([np.mean(scores[pos] >= t) for t in thresholds])
    fpr = np.array([np.mean(scores[neg] >= t) for t in thresholds])
    return fpr, tpr, thresholds


CASES = [(seed, tied) for seed in range(4) for tied in (False, True)]


# ------------------------------------------------------------------------------------------
# roc_curve and auc against sklearn and a slow loop.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed,tied", CASES)
def test_roc_curve_matches_sklearn_and_slow_loop(seed, tied):
    scores, labels = _random_case(seed, tied=tied)
    roc = roc_curve(scores, labels)
    fpr, tpr, thr = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_array_equal(roc.fpr, fpr)
    np.testing.assert_array_equal(roc.tpr, tpr)
    np.testing.assert_array_equal(roc.thresholds, thr)
    slow = _slow_roc(scores, labels)
    np.testing.assert_allclose(roc.fpr, slow[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(roc.tpr, slow[1], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(roc.thresholds, slow[2])
    assert roc.fpr.dtype == roc.tpr.dtype == roc.thresholds.dtype == np.float64
    if tied:
        assert roc.thresholds.size == np.unique(scores).size + 1 < scores.size


@pytest.mark.parametrize("seed,tied", CASES)
def test_auc_matches_sklearn(seed, tied):
    scores, labels = _random_case(seed, tied=tied)
    np.testing.assert_allclose(auc(scores, labels), skm.roc_auc_score(labels, scores), rtol=1e-13)


def test_auc_is_pairwise_probability_with_half_ties():
    scores = np.array([3.0, 2.0, 2.0, 1.0, 2.0])
    labels = np.array([1, 1, 0, 0, 0])
    # Pairs (member, non-member): (3, {2, 1, 2}) -> 3 wins; (2, {2, 1, 2}) -> 0.5 + 1 + 0.5.
    assert auc(scores, labels) == pytest.approx(5.0 / 6.0)


def test_roc_curve_hand_case_with_ties():
    # Sorted: 3 (m), 2 (m), 2 (n), 1 (n). The tie at 2 switches together: one point.
    roc = roc_curve([2.0, 1.0, 3.0, 2.0], [0, 0, 1, 1])
    np.testing.assert_array_equal(roc.fpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(roc.tpr, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(roc.thresholds, [np.inf, 3.0, 2.0, 1.0])


def test_accepts_jax_bool_and_float_inputs():
    scores, labels = _random_case(7)
    want = roc_curve(scores.astype(np.float32), labels)
    for s, y in [
        (jnp.asarray(scores, jnp.float32), jnp.asarray(labels)),
        (scores.astype(np.float32), labels.astype(bool)),
        (list(scores.astype(np.float32)), labels.astype(np.float32)),
    ]:
        got = roc_curve(s, y)
        np.testing.assert_array_equal(got.fpr, want.fpr)
        np.testing.assert_array_equal(got.tpr, want.tpr)
    int_scores = np.array([3, 1, 2, 2])
    np.testing.assert_array_equal(roc_curve(int_scores, [1, 0, 1, 0]).thresholds, [np.inf, 3, 2, 1])


def test_monotone_transform_leaves_every_reading_unchanged():
    scores, labels = _random_case(3)
    a = summarize(scores, labels, fprs=(0.0, 0.01, 0.1), fnrs=(0.01, 0.1))
    b = summarize(np.exp(scores) * 3.0 + 1.0, labels, fprs=(0.0, 0.01, 0.1), fnrs=(0.01, 0.1))
    assert a == b


# ------------------------------------------------------------------------------------------
# TPR@FPR and TNR@FNR.
# ------------------------------------------------------------------------------------------

# Scores 6..1 with labels m n m m n n: P = N = 3. ROC points (FPR, TPR):
#   inf (0, 0); 6 (0, 1/3); 5 (1/3, 1/3); 4 (1/3, 2/3); 3 (1/3, 1); 2 (2/3, 1); 1 (1, 1).
HAND_S = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
HAND_Y = np.array([1, 0, 1, 1, 0, 0])


def test_tpr_at_fpr_hand_case_strict_vs_nonstrict():
    # FPR < 1/3: points (0, 0), (0, 1/3) -> 1/3.  FPR <= 1/3: also (1/3, 1) -> 1.
    assert tpr_at_fpr(HAND_S, HAND_Y, 1 / 3) == pytest.approx(1 / 3)
    assert tpr_at_fpr(HAND_S, HAND_Y, 1 / 3, strict=False) == 1.0
    # Between points both readings agree: FPR < 0.5 and <= 0.5 both reach (1/3, 1).
    assert tpr_at_fpr(HAND_S, HAND_Y, 0.5) == tpr_at_fpr(HAND_S, HAND_Y, 0.5, strict=False) == 1.0
    # 0% FPR: strict has no qualifying point -> 0.0; non-strict reads (0, 1/3).
    assert tpr_at_fpr(HAND_S, HAND_Y, 0.0) == 0.0
    assert tpr_at_fpr(HAND_S, HAND_Y, 0.0, strict=False) == pytest.approx(1 / 3)
    assert tpr_at_fpr(HAND_S, HAND_Y, 1.0) == 1.0
    assert tpr_at_fpr(HAND_S, HAND_Y, 1.0, strict=False) == 1.0


def test_tnr_at_fnr_hand_case_strict_vs_nonstrict():
    # (FPR, FNR) points: (0,1) (0,2/3) (1/3,2/3) (1/3,1/3) (1/3,0) (2/3,0) (1,0).
    # FNR < 2/3: best is FPR 1/3 -> TNR 2/3.  FNR <= 2/3: (0, 2/3) -> TNR 1.
    assert tnr_at_fnr(HAND_S, HAND_Y, 2 / 3) == pytest.approx(2 / 3)
    assert tnr_at_fnr(HAND_S, HAND_Y, 2 / 3, strict=False) == 1.0
    # FNR < 1/3 and <= 1/3 both give FPR 1/3 -> TNR 2/3.
    assert tnr_at_fnr(HAND_S, HAND_Y, 1 / 3) == pytest.approx(2 / 3)
    assert tnr_at_fnr(HAND_S, HAND_Y, 1 / 3, strict=False) == pytest.approx(2 / 3)
    assert tnr_at_fnr(HAND_S, HAND_Y, 0.0) == 0.0
    assert tnr_at_fnr(HAND_S, HAND_Y, 0.0, strict=False) == pytest.approx(2 / 3)
    assert tnr_at_fnr(HAND_S, HAND_Y, 1.0) == 1.0


def test_ties_at_the_threshold_switch_together():
    # Scores 3 (m), 2 (m), 2 (n), 2 (n), 1 (n), 1 (n): P = 2, N = 4. ROC points:
    #   inf (0, 0); 3 (0, 1/2); 2 (1/2, 1); 1 (1, 1).
    # A per-example walk that put the tied member first would claim TPR 1 at FPR 1/4; the
    # exact ROC cannot split the tie, so at FPR <= 1/4 the answer is 1/2.
    s = np.array([3.0, 2.0, 2.0, 2.0, 1.0, 1.0])
    y = np.array([1, 1, 0, 0, 0, 0])
    assert tpr_at_fpr(s, y, 0.25, strict=False) == 0.5
    assert tpr_at_fpr(s, y, 0.5) == 0.5  # FPR < 1/2 excludes the tie point
    assert tpr_at_fpr(s, y, 0.5, strict=False) == 1.0  # FPR <= 1/2 includes it
    # FNR < 1/2 needs the tie point (FPR 1/2) -> TNR 1/2; FNR <= 1/2 allows (0, 1/2) -> 1.
    assert tnr_at_fnr(s, y, 0.5) == 0.5
    assert tnr_at_fnr(s, y, 0.5, strict=False) == 1.0


@pytest.mark.parametrize("seed,tied", CASES)
@pytest.mark.parametrize("strict", [True, False])
def test_readings_match_sklearn_roc(seed, tied, strict):
    scores, labels = _random_case(seed, tied=tied)
    fpr, tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    fnr, tnr = 1.0 - tpr, 1.0 - fpr
    for t in [0.0, 0.0123, 0.05, 0.1, 0.37, 1.0]:
        ok = fpr < t if strict else fpr <= t
        want = tpr[ok].max() if ok.any() else 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResolutionWarning)
            assert tpr_at_fpr(scores, labels, t, strict=strict) == pytest.approx(want, abs=1e-15)
            ok = fnr < t if strict else fnr <= t
            want = tnr[ok].max() if ok.any() else 0.0
            assert tnr_at_fnr(scores, labels, t, strict=strict) == pytest.approx(want, abs=1e-15)


# ------------------------------------------------------------------------------------------
# Resolution.
# ------------------------------------------------------------------------------------------


def test_resolution_warning_raised_below_one_over_n():
    s = np.array([3.0, 2.0, 2.0, 2.0, 1.0, 1.0])
    y = np.array([1, 1, 0, 0, 0, 0])  # P = 2, N = 4
    with pytest.warns(ResolutionWarning, match=r"fpr=0\.2 .*1/4 = 0\.25 .*2 members, 4 non-members"):
        tpr_at_fpr(s, y, 0.2)
    with pytest.warns(ResolutionWarning, match=r"fnr=0\.4 .*1/2 = 0\.5 .*2 members"):
        tnr_at_fnr(s, y, 0.4)
    assert issubclass(ResolutionWarning, UserWarning)


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_resolution_warning_not_raised_at_or_above_resolution(rate):
    s = np.array([3.0, 2.0, 2.0, 2.0, 1.0, 1.0])
    y = np.array([1, 1, 0, 0, 0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tpr_at_fpr(s, y, rate)
        tpr_at_fpr(s, y, rate, strict=False)
        if rate == 0.0 or rate >= 0.5:
            tnr_at_fnr(s, y, rate)


def test_min_resolvable_rates():
    y = np.array([1, 0, 0, 0, 1, 0])
    assert min_resolvable_fpr(y) == 0.25
    assert min_resolvable_fnr(y) == 0.5
    assert min_resolvable_fpr(jnp.asarray(y, bool)) == 0.25


# ------------------------------------------------------------------------------------------
# Balanced accuracy and advantage against brute force.
# ------------------------------------------------------------------------------------------


def _brute_rates(scores, labels):
    out = []
    for t in np.concatenate([[np.inf, -np.inf], np.unique(scores)]):
        pred = scores >= t
        tpr = np.mean(pred[labels == 1])
        fpr = np.mean(pred[labels == 0])
        out.append((tpr, fpr))
    return np.array(out)


@pytest.mark.parametrize("seed,tied", CASES)
def test_balanced_accuracy_and_advantage_vs_brute_force(seed, tied):
    scores, labels = _random_case(seed, n=200, tied=tied)
    rates = _brute_rates(scores, labels)
    tpr, fpr = rates[:, 0], rates[:, 1]
    want_ba = np.max(1.0 - (fpr + (1.0 - tpr)) / 2.0)
    want_adv = np.max(tpr - fpr)
    assert balanced_accuracy(scores, labels) == pytest.approx(want_ba, abs=1e-14)
    assert attacker_advantage(scores, labels) == pytest.approx(want_adv, abs=1e-14)
    # Two-sided advantage max |TPR - FPR| is the larger of the two score directions.
    two_sided = max(attacker_advantage(scores, labels), attacker_advantage(-scores, labels))
    assert two_sided == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-14)


def test_reversed_attack_has_zero_advantage_and_half_balanced_accuracy():
    s = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1, 1, 0, 0])  # members score lower: pointing the wrong way
    assert attacker_advantage(s, y) == 0.0
    assert balanced_accuracy(s, y) == 0.5
    assert attacker_advantage(-s, y) == 1.0
    assert balanced_accuracy(-s, y) == 1.0


# ------------------------------------------------------------------------------------------
# Summary schema.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rate,text",
    [(0.0, "0%"), (1e-5, "0.001%"), (1e-4, "0.01%"), (1e-3, "0.1%"), (1e-2, "1%"),
     (0.05, "5%"), (0.5, "50%"), (1.0, "100%"), (0.001234, "0.1234%"), (1e-7, "0.00001%")],
)
def test_format_rate(rate, text):
    assert format_rate(rate) == text


def test_keys():
    assert tpr_at_fpr_key(1e-3) == "tpr@0.1%fpr"
    assert tnr_at_fnr_key(1e-3) == "tnr@0.1%fnr"
    assert tpr_at_fpr_key(0) == "tpr@0%fpr"
    assert below_resolution_key("tpr@0.1%fpr") == "tpr@0.1%fpr/below_resolution"


@pytest.mark.parametrize("strict", [True, False])
def test_summarize_matches_individual_functions(strict):
    scores, labels = _random_case(5, n=800, tied=True)
    num_neg = int(np.sum(labels == 0))
    num_pos = int(np.sum(labels == 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # summarize flags, it does not warn
        out = summarize(scores, labels, strict=strict)
    json.dumps(out)
    expected_keys = {
        "auc", "balanced_accuracy", "attacker_advantage", "num_members", "num_nonmembers",
        "min_resolvable_fpr", "min_resolvable_fnr", "reading",
        "tpr@0%fpr", "tpr@0.001%fpr", "tpr@0.01%fpr", "tpr@0.1%fpr", "tpr@1%fpr", "tnr@0.1%fnr",
    }
    expected_keys |= {k + "/below_resolution" for k in expected_keys if "@" in k}
    assert set(out) == expected_keys
    assert out["auc"] == auc(scores, labels)
    assert out["balanced_accuracy"] == balanced_accuracy(scores, labels)
    assert out["attacker_advantage"] == attacker_advantage(scores, labels)
    assert out["num_members"] == num_pos and out["num_nonmembers"] == num_neg
    assert out["min_resolvable_fpr"] == 1.0 / num_neg
    assert out["min_resolvable_fnr"] == 1.0 / num_pos
    assert out["reading"] == ("strict" if strict else "non-strict")
    # A target of 0 is always read non-strictly.
    assert out["tpr@0%fpr"] == tpr_at_fpr(scores, labels, 0.0, strict=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolutionWarning)
        for t in (1e-5, 1e-4, 1e-3, 1e-2):
            assert out[tpr_at_fpr_key(t)] == tpr_at_fpr(scores, labels, t, strict=strict)
        assert out["tnr@0.1%fnr"] == tnr_at_fnr(scores, labels, 1e-3, strict=strict)
    # ~400 non-members: 1e-5, 1e-4, 1e-3 are below 1/400; 1e-2 and 0 are not.
    assert out["tpr@0.001%fpr/below_resolution"] is True
    assert out["tpr@0.1%fpr/below_resolution"] is True
    assert out["tpr@1%fpr/below_resolution"] is False
    assert out["tpr@0%fpr/below_resolution"] is False
    assert out["tnr@0.1%fnr/below_resolution"] is True


def test_summarize_hand_case():
    out = summarize(HAND_S, HAND_Y, fprs=(0.0, 1 / 3), fnrs=(2 / 3,))
    assert out["tpr@0%fpr"] == pytest.approx(1 / 3)
    assert out["tpr@33.3333333333%fpr"] == pytest.approx(1 / 3)  # strict: FPR < 1/3
    assert out["tnr@66.6666666667%fnr"] == pytest.approx(2 / 3)
    assert out["auc"] == pytest.approx(7 / 9)  # pairs won: 3 + 2 + 2 of 9


def test_one_million_scores_run():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=1_000_000)
    scores = rng.normal(size=labels.size) + 0.1 * labels
    out = summarize(scores, labels)
    assert out["num_members"] + out["num_nonmembers"] == 1_000_000
    assert 0.5 < out["auc"] < 0.6


# ------------------------------------------------------------------------------------------
# Validation.
# ------------------------------------------------------------------------------------------

READERS = [
    roc_curve,
    auc,
    balanced_accuracy,
    attacker_advantage,
    lambda s, y: tpr_at_fpr(s, y, 0.1),
    lambda s, y: tnr_at_fnr(s, y, 0.1),
    summarize,
]


@pytest.mark.parametrize("fn", READERS)
@pytest.mark.parametrize(
    "scores,labels,match",
    [
        ([0.1, 0.2, 0.3], [0, 1], "same shape"),
        ([0.1, 0.2], [0, 2], "only 0"),
        ([0.1, 0.2], [0.5, 1.0], "only 0"),
        ([0.1, 0.2], [1, 1], "both members"),
        ([0.1, 0.2], [0, 0], "both members"),
        ([], [], "both members"),
        ([0.1, np.nan], [0, 1], "scores must be finite"),
        ([0.1, np.inf], [0, 1], "scores must be finite"),
        ([[0.1, 0.2]], [0, 1], "scores must be 1-D"),
        ([0.1, 0.2], [[0, 1]], "labels must be 1-D"),
    ],
)
def test_invalid_scores_and_labels(fn, scores, labels, match):
    with pytest.raises(ValueError, match=match):
        fn(np.asarray(scores, dtype=np.float64), labels)


@pytest.mark.parametrize("bad", [-0.1, 1.1, np.nan, np.inf])
def test_invalid_rates(bad):
    s, y = HAND_S, HAND_Y
    with pytest.raises(ValueError, match=r"fpr must be in \[0, 1\]"):
        tpr_at_fpr(s, y, bad)
    with pytest.raises(ValueError, match=r"fnr must be in \[0, 1\]"):
        tnr_at_fnr(s, y, bad)
    with pytest.raises(ValueError, match=r"fprs must be in \[0, 1\]"):
        summarize(s, y, fprs=(0.1, bad))
    with pytest.raises(ValueError, match=r"fnrs must be in \[0, 1\]"):
        summarize(s, y, fnrs=(bad,))
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\]"):
        format_rate(bad)


def test_rate_must_be_scalar():
    with pytest.raises(ValueError, match="fpr must be a scalar"):
        tpr_at_fpr(HAND_S, HAND_Y, [0.1, 0.2])


@pytest.mark.parametrize("fn", [min_resolvable_fpr, min_resolvable_fnr])
@pytest.mark.parametrize("labels,match", [([1, 1], "both members"), ([], "both members"),
                                          ([0, 3], "only 0"), ([[0, 1]], "1-D")])
def test_min_resolvable_invalid(fn, labels, match):
    with pytest.raises(ValueError, match=match):
        fn(np.asarray(labels))
