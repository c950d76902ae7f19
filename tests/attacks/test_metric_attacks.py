"""Tests for hampjax.attacks.metric: score functions, calibrated thresholds, Yeom, Youden."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.attacks.metric import (
    METRIC_SCORES,
    Thresholds,
    apply_thresholds,
    confidence,
    correctness,
    fit_thresholds,
    metric_attack_scores,
    negative_entropy,
    negative_loss,
    negative_modified_entropy,
    yeom_predict,
    yeom_threshold,
    youden_threshold,
)
from hampjax.metrics import auc, balanced_accuracy, summarize

SCORE_FNS = [correctness, confidence, negative_entropy, negative_modified_entropy, negative_loss]


# ------------------------------------------------------------------------------------------
# NumPy references (float64, obviously correct).
# ------------------------------------------------------------------------------------------


def _np_softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_scores(logits, labels):
    p = _np_softmax(logits)
    n = len(labels)
    py = p[np.arange(n), labels]
    ent = -np.sum(p * np.log(p), axis=-1)
    mentr = np.empty(n)
    for i in range(n):
        total = -(1 - py[i]) * max(np.log(py[i]), -30.0)
        for j in range(p.shape[1]):
            if j != labels[i]:
                total -= p[i, j] * max(np.log(1 - p[i, j]), -30.0)
        mentr[i] = total
    return {
        "correctness": (np.argmax(logits, -1) == labels).astype(np.float64),
        "confidence": np.log(py),
        "entropy": -ent,
        "modified_entropy": -mentr,
        "loss": np.log(py),
    }


def _random_logits(seed, n=64, c=5, scale=3.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.normal(size=(n, c))).astype(np.float32), rng.integers(0, c, size=n)


def _brute_balanced_accuracy(scores, member):
    """max over every threshold (each score and +inf) of the balanced accuracy of s >= t."""
    best = 0.0
    for t in list(np.unique(scores)) + [np.inf]:
        pred = scores >= t
        tpr = np.mean(pred[member == 1])
        tnr = np.mean(~pred[member == 0])
        best = max(best, 0.5 * (tpr + tnr))
    return best


def _bacc(pred, member):
    return 0.5 * (np.mean(pred[member == 1]) + np.mean(~pred[member == 0]))


# ------------------------------------------------------------------------------------------
# Score functions.
# ------------------------------------------------------------------------------------------


def test_scores_match_numpy_reference():
    logits, labels = _random_logits(0)
    ref = _np_scores(logits, labels)
    out = metric_attack_scores(logits, labels)
    assert set(out) == set(METRIC_SCORES) == set(ref)
    for name, fn in METRIC_SCORES.items():
        got = np.asarray(out[name], np.float64)
        assert got.shape == (64,)
        np.testing.assert_allclose(got, ref[name], rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(np.asarray(fn(jnp.asarray(logits), jnp.asarray(labels))),
                                      np.asarray(out[name]))


def test_scores_orientation_member_higher():
    # A confident correct prediction (member-like) outranks a flat one (non-member-like).
    logits = jnp.array([[6.0, 0.0, 0.0], [0.3, 0.2, 0.1]])
    labels = jnp.array([0, 0])
    for name, fn in METRIC_SCORES.items():
        s = fn(logits, labels)
        assert s[0] >= s[1], name
        if name != "correctness":
            assert s[0] > s[1], name


def test_confidence_does_not_saturate_in_float32():
    margins = jnp.array([10.0, 20.0, 30.0, 40.0, 60.0], dtype=jnp.float32)
    logits = jnp.stack([margins, jnp.zeros_like(margins), jnp.zeros_like(margins)], axis=1)
    labels = jnp.zeros(5, dtype=jnp.int32)
    # float32 softmax is exactly 1 for most of these; our scores keep the order.
    assert int(jnp.sum(jax.nn.softmax(logits)[:, 0] == 1.0)) >= 3
    for fn in (confidence, negative_loss):
        s = np.asarray(fn(logits, labels))
        assert np.all(np.diff(s) > 0)
        assert np.all(s <= 0)
        # log p_y = -log(1 + 2 e^-m) ~ -2 e^-m for large margins.
        np.testing.assert_allclose(s[2:], -2 * np.exp(-np.asarray(margins[2:], np.float64)),
                                   rtol=1e-4)


def test_correctness_ties_use_first_max():
    out = correctness(jnp.array([[1.0, 1.0], [1.0, 1.0]]), jnp.array([0, 1]))
    assert out.tolist() == [1.0, 0.0]


@pytest.mark.parametrize("fn", SCORE_FNS, ids=lambda f: f.__name__)
def test_scores_jit_and_vmap(fn):
    logits, labels = _random_logits(1, n=8, c=4)
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    eager = fn(logits, labels)
    np.testing.assert_allclose(jax.jit(fn)(logits, labels), eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(fn)(logits, labels), eager, rtol=1e-6, atol=1e-6)
    # Batched leading axes ([M, N, C]) are accepted too.
    stacked = fn(jnp.stack([logits, logits]), jnp.stack([labels, labels]))
    np.testing.assert_allclose(stacked[1], eager, rtol=1e-6, atol=1e-6)


def test_metric_attack_scores_feed_summarize():
    rng = np.random.default_rng(3)
    n = 200
    labels = rng.integers(0, 4, size=n)
    logits = rng.normal(size=(n, 4)).astype(np.float32)
    member = np.r_[np.ones(n // 2, int), np.zeros(n // 2, int)]
    logits[np.arange(n // 2), labels[: n // 2]] += 3.0
    out = metric_attack_scores(logits, labels)
    for name, s in out.items():
        summary = summarize(s, member)
        assert summary["auc"] > 0.7, name
    assert auc(out["loss"], member) == pytest.approx(auc(out["confidence"], member))


@pytest.mark.parametrize(
    "logits, labels, match",
    [
        (np.zeros((3, 1), np.float32), np.zeros(3, int), r"logits.shape\[-1\]"),
        (np.zeros((3, 2), np.int32), np.zeros(3, int), "logits must have a float"),
        (np.zeros((3, 2), np.float32), np.zeros(2, int), "labels must have shape"),
        (np.zeros((3, 2), np.float32), np.array([0, 2, 0]), r"labels must be in \[0, 2\)"),
        (np.zeros((3, 2), np.float32), np.zeros(3, np.float32), "labels must be integer"),
        (np.array([[0.0, np.nan]] * 3, np.float32), np.zeros(3, int), "logits must be finite"),
    ],
)
def test_score_validation(logits, labels, match):
    for fn in SCORE_FNS:
        with pytest.raises(ValueError, match=match):
            fn(logits, labels)
    with pytest.raises(ValueError, match=match):
        metric_attack_scores(logits, labels)


def test_metric_attack_scores_validation():
    with pytest.raises(ValueError, match="logits must be 2-D"):
        metric_attack_scores(np.zeros(3, np.float32), np.zeros((), int))
    with pytest.raises(ValueError, match="logits must contain at least 1 example"):
        metric_attack_scores(np.zeros((0, 3), np.float32), np.zeros(0, int))


# ------------------------------------------------------------------------------------------
# Calibrated thresholds.
# ------------------------------------------------------------------------------------------


def test_fit_global_threshold_hand_case():
    # Sorted: 0.9 m, 0.8 m, 0.6 n, 0.5 m, 0.2 n.  Best: t = 0.8 (TPR 2/3, FPR 0 -> 0.8333).
    scores = np.array([0.5, 0.9, 0.2, 0.8, 0.6])
    member = np.array([1, 1, 0, 1, 0])
    t = fit_thresholds(scores, member)
    assert isinstance(t, Thresholds)
    assert t.global_threshold == 0.8
    assert not t.per_class
    assert t.class_thresholds.shape == (0,) and t.class_fitted.shape == (0,)
    assert apply_thresholds(t, scores).tolist() == [False, True, False, True, False]
    assert apply_thresholds(t, [0.8, 0.79]).tolist() == [True, False]


def test_fit_threshold_ties_choose_highest_and_inf_when_useless():
    # Points t=0.9 and t=0.6 both give TPR - FPR = 0.5: the higher threshold wins.
    assert fit_thresholds([0.9, 0.7, 0.6, 0.2], [1, 0, 1, 0]).global_threshold == 0.9
    # Reversed scores: nothing beats "no member" (balanced accuracy 0.5).
    t = fit_thresholds([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert t.global_threshold == np.inf
    assert not apply_thresholds(t, [1e30]).any()


@pytest.mark.parametrize("seed", range(4))
def test_fitted_threshold_balanced_accuracy_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 60
    member = rng.integers(0, 2, size=n)
    member[:2] = [0, 1]
    # Integer-valued scores create many ties.
    scores = rng.integers(0, 8, size=n) + member * rng.integers(0, 3, size=n)
    scores = scores.astype(np.float64) if seed % 2 else scores
    t = fit_thresholds(scores, member)
    got = _bacc(apply_thresholds(t, scores), member)
    assert got == pytest.approx(_brute_balanced_accuracy(np.asarray(scores, float), member))
    assert got == pytest.approx(balanced_accuracy(scores, member))
    assert youden_threshold(scores, member) == t.global_threshold


def test_per_class_thresholds_hand_case_and_fallback():
    # class 0: members 0.9, 0.7; non-members 0.8, 0.1 -> best t = 0.9 (TPR .5, FPR 0) tied with
    #          t = 0.7 (TPR 1, FPR .5); highest wins -> 0.9.
    # class 1: members 0.3; non-members 0.2 -> t = 0.3.
    # class 2: members only -> fallback to global.
    # class 3: absent -> fallback to global (num_classes=4).
    scores = np.array([0.9, 0.7, 0.8, 0.1, 0.3, 0.2, 0.5])
    member = np.array([1, 1, 0, 0, 1, 0, 1])
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    t = fit_thresholds(scores, member, labels, per_class=True, num_classes=4)
    g = fit_thresholds(scores, member).global_threshold
    assert t.global_threshold == g
    assert t.per_class
    np.testing.assert_array_equal(t.class_thresholds, [0.9, 0.3, g, g])
    np.testing.assert_array_equal(t.class_fitted, [True, True, False, False])
    pred = apply_thresholds(t, [0.85, 0.85, 0.35, g, g - 0.01], [0, 0, 1, 3, 2])
    assert pred.tolist() == [False, False, True, True, False]
    pred = apply_thresholds(t, [0.95], [0])
    assert pred.tolist() == [True]
    # Without num_classes, C = max(label) + 1 = 3.
    t3 = fit_thresholds(scores, member, labels, per_class=True)
    assert t3.class_thresholds.shape == (3,)


def test_per_class_balanced_accuracy_equals_brute_force():
    rng = np.random.default_rng(7)
    n = 120
    labels = rng.integers(0, 3, size=n)
    member = rng.integers(0, 2, size=n)
    member[:2] = [0, 1]
    scores = rng.normal(size=n) + member * (labels + 0.5)
    t = fit_thresholds(scores, member, labels, per_class=True)
    pred = apply_thresholds(t, scores, labels)
    for c in range(3):
        sel = labels == c
        assert t.class_fitted[c]
        assert _bacc(pred[sel], member[sel]) == pytest.approx(
            _brute_balanced_accuracy(scores[sel], member[sel])
        )


def test_global_fit_accepts_and_validates_labels():
    t = fit_thresholds([0.9, 0.1], [1, 0], [0, 1])
    assert t.global_threshold == 0.9
    assert apply_thresholds(t, [0.95, 0.5], [0, 1]).tolist() == [True, False]
    with pytest.raises(ValueError, match="labels must have shape"):
        apply_thresholds(t, [0.95, 0.5], [0])


def test_fit_thresholds_validation():
    s, m = [0.1, 0.9], [0, 1]
    with pytest.raises(ValueError, match="scores must be 1-D"):
        fit_thresholds([[0.1, 0.9]], m)
    with pytest.raises(ValueError, match="scores must contain at least 1 example"):
        fit_thresholds([], m)
    with pytest.raises(ValueError, match="scores must be real numbers"):
        fit_thresholds(np.array([True, False]), m)
    with pytest.raises(ValueError, match="scores must be finite"):
        fit_thresholds([0.1, np.nan], m)
    with pytest.raises(ValueError, match="is_member must contain both"):
        fit_thresholds(s, [1, 1])
    with pytest.raises(ValueError, match="is_member must contain only 0"):
        fit_thresholds(s, [0, 2])
    with pytest.raises(ValueError, match="scores and is_member must have the same shape"):
        fit_thresholds(s, [0, 1, 0])
    with pytest.raises(ValueError, match="labels must be given"):
        fit_thresholds(s, m, per_class=True)
    with pytest.raises(ValueError, match=r"per_class must be a Python bool \(True or False\)"):
        fit_thresholds(s, m, [0, 1], per_class="yes")
    with pytest.raises(ValueError, match="num_classes must be None unless per_class"):
        fit_thresholds(s, m, num_classes=3)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        fit_thresholds(s, m, [0, 0], per_class=True, num_classes=1)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        fit_thresholds(s, m, [0, 2], per_class=True, num_classes=2)
    with pytest.raises(ValueError, match="labels must be integer class indices >= 0, got -1"):
        fit_thresholds(s, m, [0, -1], per_class=True)
    with pytest.raises(ValueError, match="labels must be integer class indices >= 0, got dtype"):
        fit_thresholds(s, m, [0.0, 1.0], per_class=True)
    with pytest.raises(ValueError, match="labels must have shape"):
        fit_thresholds(s, m, [0, 1, 1], per_class=True)


def test_apply_thresholds_validation():
    t = fit_thresholds([0.1, 0.9, 0.5], [0, 1, 1], [0, 1, 1], per_class=True)
    with pytest.raises(ValueError, match="thresholds must be a Thresholds"):
        apply_thresholds(0.5, [0.1])
    with pytest.raises(ValueError, match="labels must be given"):
        apply_thresholds(t, [0.1])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        apply_thresholds(t, [0.1], [2])
    with pytest.raises(ValueError, match="scores must be finite"):
        apply_thresholds(t, [np.inf], [0])
    with pytest.raises(ValueError, match="scores must be 1-D"):
        apply_thresholds(t, 0.5, [0])


# ------------------------------------------------------------------------------------------
# Youden and Yeom.
# ------------------------------------------------------------------------------------------


def test_youden_hand_case_and_argmax_j():
    assert youden_threshold([0.9, 0.8, 0.7, 0.6, 0.2], [1, 0, 1, 1, 0]) == 0.6
    rng = np.random.default_rng(11)
    member = rng.integers(0, 2, size=300)
    member[:2] = [0, 1]
    scores = rng.normal(size=300) + member
    t = youden_threshold(scores, member)
    pred = scores >= t
    j = np.mean(pred[member == 1]) - np.mean(pred[member == 0])
    brute = max(
        np.mean(scores[member == 1] >= u) - np.mean(scores[member == 0] >= u) for u in scores
    )
    assert j == pytest.approx(brute)


def test_yeom_threshold_and_predict():
    losses = np.array([0.1, 0.4, 0.3, 0.2])
    t = yeom_threshold(losses)
    assert t == pytest.approx(0.25)
    assert yeom_predict(t, [0.1, 0.25, 0.3]).tolist() == [True, True, False]
    # Same decisions as a calibrated threshold on negative_loss at -t.
    neg = Thresholds(-t, np.zeros(0), np.zeros(0, bool))
    assert apply_thresholds(neg, -np.array([0.1, 0.25, 0.3])).tolist() == [True, True, False]


def test_yeom_validation():
    with pytest.raises(ValueError, match="member_losses must contain at least 1 example"):
        yeom_threshold([])
    with pytest.raises(ValueError, match="member_losses must be finite"):
        yeom_threshold([0.1, np.inf])
    with pytest.raises(ValueError, match="member_losses must be 1-D"):
        yeom_threshold(0.1)
    with pytest.raises(ValueError, match="threshold must be a finite real scalar"):
        yeom_predict(np.nan, [0.1])
    with pytest.raises(ValueError, match="threshold must be a finite real scalar"):
        yeom_predict([0.1], [0.1])
    with pytest.raises(ValueError, match="threshold must be a finite real scalar"):
        yeom_predict("a", [0.1])
    with pytest.raises(ValueError, match="losses must be finite"):
        yeom_predict(0.1, [np.nan])
