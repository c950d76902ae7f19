"""Metric-based membership inference attacks (Song & Mittal, 2021; Yeom et al., 2018).

A metric attack turns one number per example into a membership decision. Five scores are
offered, each oriented so that a HIGHER score means "more likely a member":

* :func:`correctness`: 1 if ``argmax logits == label`` else 0 (the gap attack).
* :func:`confidence`: the true-class probability ``p_y``, returned as ``log p_y``.
* :func:`negative_entropy`: ``-H(softmax(logits))``.
* :func:`negative_modified_entropy`: ``-Mentr`` (Song & Mittal's modified entropy).
* :func:`negative_loss`: ``-CE = log p_y``.

``confidence`` is computed in log space, as ``log_sigmoid`` of the LiRA margin
``z_y - logsumexp_{j != y} z_j``, because float32 ``softmax`` (and even ``log_softmax``)
saturates at exactly ``p_y = 1`` for confident members, which would merge them into one ROC
point. ``log`` is increasing, so the ranking (and with it every ROC reading) is that of
``p_y``; only the ranking matters for an attack. With this choice ``confidence`` and
``negative_loss`` return the same values; both names are kept because papers report both
attacks.

Two threshold conventions are supported (Song & Mittal 2021; Yeom et al. 2018):

1. ROC sweep (what the HAMP paper reports, "best possible threshold"):
   :func:`metric_attack_scores` returns every score for the evaluation set; feed each into
   :func:`hampjax.metrics.summarize` with the membership labels.
2. Calibrated thresholds (the attacker's view): :func:`fit_thresholds` picks, on shadow or
   known data, the threshold maximizing balanced accuracy (one global threshold, or one per
   class), and :func:`apply_thresholds` applies it to the target's evaluation set. Yeom's loss
   attack uses :func:`yeom_threshold` (the mean loss of known members) and :func:`yeom_predict`.
   :func:`youden_threshold` is the Youden's J (``argmax TPR - FPR``) threshold used by the
   "To Trust or Not To Trust" paper for its max-score attack.

The score functions are pure JAX (``logits [..., C], labels [...] -> [...]``) and work under
``jit`` and ``vmap``. Threshold fitting and application are host-side NumPy (float64), like
:mod:`hampjax.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import scores as _scores
from hampjax import validation
from hampjax.metrics.roc import roc_curve

__all__ = [
    "correctness",
    "confidence",
    "negative_entropy",
    "negative_modified_entropy",
    "negative_loss",
    "METRIC_SCORES",
    "metric_attack_scores",
    "Thresholds",
    "fit_thresholds",
    "apply_thresholds",
    "youden_threshold",
    "yeom_threshold",
    "yeom_predict",
]


# --------------------------------------------------------------------------------------------
# Score functions (JAX, jit/vmap compatible).
# --------------------------------------------------------------------------------------------


def _check_logits_labels(logits: Any, labels: Any) -> None:
    validation.check_floating("logits", logits)
    validation.check_logits_labels(logits, labels)
    validation.check_finite("logits", logits)


def _log_p_true(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``log p_y`` as ``log_sigmoid(z_y - logsumexp_{j != y} z_j)``.

    ``log_softmax`` computes ``z_y - logsumexp(z)``, and the float32 rounding of
    ``logsumexp(z)`` makes it exactly 0 once the margin exceeds about 15; this form keeps
    ``log p_y = -softplus(-margin)`` distinct down to ``-1e-45`` (margins up to about 100).
    """
    return jax.nn.log_sigmoid(_scores.logit_scaled_score(logits, labels))


def correctness(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Correctness score: 1.0 if the top-1 prediction equals the label, else 0.0.

    Ties in the logits resolve to the first maximal class (``jnp.argmax``).

    Args:
      logits: ``[..., C]`` finite float logits, ``C >= 2``.
      labels: ``[...]`` integer labels in ``[0, C)``.

    Returns:
      ``[...]`` scores of the dtype of ``logits``, each 0.0 or 1.0.

    Raises:
      ValueError: if ``logits`` is not floating, has fewer than 2 classes or non-finite
        values, or ``labels`` has the wrong shape, dtype or range.

    Example:
      >>> import jax.numpy as jnp
      >>> correctness(jnp.array([[2.0, 1.0], [2.0, 1.0]]), jnp.array([0, 1])).tolist()
      [1.0, 0.0]
    """
    _check_logits_labels(logits, labels)
    return (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)


def confidence(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Confidence score ``p_y``, returned as ``log p_y`` (same ranking, no saturation).

    ``log p_y = log_sigmoid(z_y - logsumexp_{j != y} z_j)`` is computed from the logits, so
    examples whose float32 ``p_y`` (or ``log_softmax``) would round to exactly 1.0 (0.0) keep
    distinct scores, up to margins of about 100. Identical to :func:`negative_loss`.

    Args:
      logits: ``[..., C]`` finite float logits, ``C >= 2``.
      labels: ``[...]`` integer labels in ``[0, C)``.

    Returns:
      ``[...]`` float ``log p_y <= 0``; ``exp`` of it is ``p_y``.

    Raises:
      ValueError: on invalid ``logits`` / ``labels`` (see :func:`correctness`).

    Example:
      >>> import jax.numpy as jnp
      >>> s = confidence(jnp.array([[0.0, 0.0], [30.0, 0.0], [40.0, 0.0]]), jnp.array([0, 0, 0]))
      >>> bool(s[0] < s[1] < s[2])  # float32 p_y is 1.0 for both of the last two
      True
    """
    _check_logits_labels(logits, labels)
    return _log_p_true(logits, labels)


def negative_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Negated Shannon entropy (nats) of ``softmax(logits)``; ``labels`` are only validated.

    Args:
      logits: ``[..., C]`` finite float logits, ``C >= 2``.
      labels: ``[...]`` integer labels in ``[0, C)`` (unused by the score; kept so every
        metric score has one signature).

    Returns:
      ``[...]`` float in ``[-log C, 0]``.

    Raises:
      ValueError: on invalid ``logits`` / ``labels`` (see :func:`correctness`).

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(negative_entropy(jnp.zeros((1, 4)), jnp.array([0]))[0]), 4)  # -ln 4
      -1.3863
    """
    _check_logits_labels(logits, labels)
    return -_scores.entropy(logits)


def negative_modified_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Negated modified entropy ``-Mentr`` (Song & Mittal), logs clamped at ``-30``.

    ``Mentr = -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)``, computed by
    :func:`hampjax.scores.modified_entropy` in log space.

    Args:
      logits: ``[..., C]`` finite float logits, ``C >= 2``.
      labels: ``[...]`` integer labels in ``[0, C)``.

    Returns:
      ``[...]`` float ``<= 0``; close to 0 for a confident, correct prediction.

    Raises:
      ValueError: on invalid ``logits`` / ``labels`` (see :func:`correctness`).

    Example:
      >>> import jax.numpy as jnp
      >>> s = negative_modified_entropy(jnp.array([[5.0, 0.0], [0.0, 5.0]]), jnp.array([0, 0]))
      >>> bool(s[0] > s[1])  # correct and confident scores higher than confidently wrong
      True
    """
    _check_logits_labels(logits, labels)
    return -_scores.modified_entropy(logits, labels)


def negative_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Negated cross-entropy loss ``-(-log p_y) = log p_y``, computed as in :func:`confidence`.

    Args:
      logits: ``[..., C]`` finite float logits, ``C >= 2``.
      labels: ``[...]`` integer labels in ``[0, C)``.

    Returns:
      ``[...]`` float ``<= 0``.

    Raises:
      ValueError: on invalid ``logits`` / ``labels`` (see :func:`correctness`).

    Example:
      >>> import jax.numpy as jnp
      >>> round(float(negative_loss(jnp.zeros((1, 2)), jnp.array([1]))[0]), 4)  # -ln 2
      -0.6931
    """
    _check_logits_labels(logits, labels)
    return _log_p_true(logits, labels)


METRIC_SCORES: Mapping[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "correctness": correctness,
    "confidence": confidence,
    "entropy": negative_entropy,
    "modified_entropy": negative_modified_entropy,
    "loss": negative_loss,
}
"""Attack name -> score function ``(logits [N, C], labels [N]) -> [N]``, higher = member."""


def metric_attack_scores(logits: Any, labels: Any) -> dict[str, jax.Array]:
    """Every metric attack's scores for one evaluation set (the ROC-sweep convention).

    Feed each entry into :func:`hampjax.metrics.summarize` (or ``roc_curve``, ``auc``, ...)
    together with the 0/1 membership labels of the same examples.

    Args:
      logits: ``[N, C]`` finite float logits of the target model, ``N >= 1``, ``C >= 2``.
      labels: ``[N]`` integer class labels in ``[0, C)``.

    Returns:
      A dict with the keys of :data:`METRIC_SCORES` (``"correctness"``, ``"confidence"``,
      ``"entropy"``, ``"modified_entropy"``, ``"loss"``), each a ``[N]`` JAX array of the dtype
      of ``logits``, higher = more likely member.

    Raises:
      ValueError: if ``logits`` is not 2-D floating and finite with ``C >= 2`` and ``N >= 1``,
        or ``labels`` is not ``[N]`` integers in ``[0, C)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from hampjax.metrics import auc
      >>> out = metric_attack_scores(jnp.array([[4.0, 0.0], [1.0, 0.0]]), jnp.array([0, 0]))
      >>> sorted(out)
      ['confidence', 'correctness', 'entropy', 'loss', 'modified_entropy']
      >>> auc(out["loss"], [1, 0])
      1.0
    """
    validation.check_ndim("logits", logits, 2)
    validation.check_nonempty("logits", logits)
    _check_logits_labels(logits, labels)
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    return {name: fn(logits, labels) for name, fn in METRIC_SCORES.items()}


# --------------------------------------------------------------------------------------------
# Calibrated thresholds (host-side NumPy).
# --------------------------------------------------------------------------------------------


class Thresholds(NamedTuple):
    """Fitted decision thresholds; the rule is "member iff ``score >= threshold``".

    Attributes:
      global_threshold: float, fitted on all examples (``+inf`` means "predict no member").
      class_thresholds: ``[C]`` float64, one threshold per class, for per-class fits; shape
        ``[0]`` for a global fit. A class that had no member or no non-member in the fit data
        holds ``global_threshold``.
      class_fitted: ``[C]`` bool, True where the class threshold was fitted on that class's own
        examples and False where it fell back to ``global_threshold``; shape ``[0]`` for a
        global fit.
    """

    global_threshold: float
    class_thresholds: np.ndarray
    class_fitted: np.ndarray

    @property
    def per_class(self) -> bool:
        """True for a per-class fit (``class_thresholds`` non-empty)."""
        return self.class_thresholds.size > 0


def _check_scores_1d(name: str, scores: Any) -> np.ndarray:
    arr = np.asarray(scores)
    validation.check_ndim(name, arr, 1)
    validation.check_nonempty(name, arr)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) or (
        arr.dtype == np.bool_
    ):
        raise ValueError(f"{name} must be real numbers (float or int), got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    validation.check_finite(name, arr)
    return arr


def _check_class_labels(labels: Any, n: int, num_classes: int | None) -> tuple[np.ndarray, int]:
    """Validate ``labels [n]`` integer >= 0 (and < num_classes when given); return (labels, C)."""
    arr = np.asarray(labels)
    validation.check_shape("labels", arr, (n,), what="scores.shape")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices >= 0, got dtype {arr.dtype}")
    if num_classes is None:
        if arr.min() < 0:
            raise ValueError(f"labels must be integer class indices >= 0, got {int(arr.min())}")
        return arr, int(arr.max()) + 1
    validation.check_labels(arr, num_classes)
    return arr, num_classes


def _best_threshold(scores: np.ndarray, member: np.ndarray) -> float:
    """Threshold maximizing balanced accuracy (= Youden's J) on scores with both classes.

    The candidates are the exact ROC thresholds (``+inf`` and every distinct score). The
    criterion ``TPR - FPR`` is compared in integer counts (``TP * N_neg - FP * N_pos``) so
    ties are exact; among ties the highest threshold (fewest predicted members) wins.
    """
    roc = roc_curve(scores, member.astype(np.int8))
    num_pos = int(member.sum())
    num_neg = member.size - num_pos
    tps = np.rint(roc.tpr * num_pos).astype(np.int64)
    fps = np.rint(roc.fpr * num_neg).astype(np.int64)
    gain = tps * num_neg - fps * num_pos
    return float(roc.thresholds[int(np.argmax(gain))])


def fit_thresholds(
    scores: Any,
    is_member: Any,
    labels: Any = None,
    *,
    per_class: bool = False,
    num_classes: int | None = None,
) -> Thresholds:
    """Fit thresholds that maximize balanced accuracy on known (or shadow) data.

    Balanced accuracy ``(TPR + TNR) / 2`` is maximized over the exact ROC thresholds of the fit
    data (``+inf`` and each distinct score); the chosen threshold is the smallest score predicted
    member, so the rule "member iff ``score >= t``" reproduces the best ROC point exactly. Ties
    go to the highest threshold.

    With ``per_class=True`` one threshold is fitted per class on that class's examples (Song &
    Mittal's class-dependent thresholds). A class with no examples in the fit data, or with only
    members or only non-members, has no balanced accuracy; it falls back to the global threshold
    (fitted on all examples), and ``class_fitted`` records which classes did. Pass
    ``num_classes`` so that classes absent from the fit data still get a (fallback) threshold;
    otherwise ``C = max(labels) + 1``.

    Args:
      scores: ``[N]`` finite real attack scores on the fit data, higher = member.
      is_member: ``[N]`` 0/1 (or bool) membership of the fit data; both classes present.
      labels: ``[N]`` integer class labels, required when ``per_class``; with a global fit they
        are only validated.
      per_class: fit one threshold per class.
      num_classes: number of classes ``C >= 2`` for a per-class fit; labels must lie in
        ``[0, C)``. Default: ``max(labels) + 1``.

    Returns:
      A :class:`Thresholds`; ``class_thresholds`` / ``class_fitted`` have shape ``[C]`` for a
      per-class fit and ``[0]`` for a global fit.

    Raises:
      ValueError: if ``scores`` is not 1-D, non-empty, real and finite; ``is_member`` is not
        binary with both classes or has another shape; ``per_class`` is set without ``labels``;
        ``labels`` has the wrong shape, dtype or range; ``num_classes`` is given without
        ``per_class`` or is not an integer >= 2.

    Example:
      >>> t = fit_thresholds([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
      >>> t.global_threshold, t.per_class
      (0.8, False)
      >>> t = fit_thresholds([0.9, 0.1, 0.5, 0.4], [1, 0, 1, 0], [0, 0, 1, 1], per_class=True,
      ...                    num_classes=3)
      >>> t.class_thresholds.tolist(), t.class_fitted.tolist()
      ([0.9, 0.5, 0.5], [True, True, False])
    """
    s = _check_scores_1d("scores", scores)
    member_arr = np.asarray(is_member)
    validation.check_binary_labels(member_arr, name="is_member")
    validation.check_same_shape(("scores", "is_member"), s, member_arr)
    member = member_arr.astype(np.int64) == 1
    per_class = validation.check_bool("per_class", per_class)
    if num_classes is not None:
        if not per_class:
            raise ValueError("num_classes must be None unless per_class=True")
        num_classes = validation.check_num_classes(num_classes)
    if per_class and labels is None:
        raise ValueError("labels must be given (integer class labels [N]) when per_class=True")
    if labels is not None:
        labels_arr, num_classes = _check_class_labels(labels, s.size, num_classes)

    global_t = _best_threshold(s, member)
    if not per_class:
        empty = np.zeros((0,), dtype=np.float64)
        return Thresholds(global_t, empty, np.zeros((0,), dtype=bool))

    class_t = np.full((num_classes,), global_t, dtype=np.float64)
    fitted = np.zeros((num_classes,), dtype=bool)
    for c in range(num_classes):
        sel = labels_arr == c
        m = member[sel]
        if m.any() and not m.all():
            class_t[c] = _best_threshold(s[sel], m)
            fitted[c] = True
    return Thresholds(global_t, class_t, fitted)


def apply_thresholds(thresholds: Thresholds, scores: Any, labels: Any = None) -> np.ndarray:
    """Predict membership with fitted thresholds: member iff ``score >= threshold``.

    Args:
      thresholds: from :func:`fit_thresholds`.
      scores: ``[N]`` finite real scores of the evaluation set (same score as the fit).
      labels: ``[N]`` integer class labels in ``[0, C)``; required for per-class thresholds
        (each example uses its class's threshold), only validated for a global fit.

    Returns:
      ``[N]`` NumPy bool, True = predicted member.

    Raises:
      ValueError: if ``thresholds`` is not a :class:`Thresholds`, ``scores`` is not 1-D,
        non-empty, real and finite, or ``labels`` is missing (per-class) or has the wrong shape,
        dtype or range.

    Example:
      >>> t = fit_thresholds([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
      >>> apply_thresholds(t, [0.85, 0.2]).tolist()
      [True, False]
    """
    if not isinstance(thresholds, Thresholds):
        raise ValueError(
            f"thresholds must be a Thresholds from fit_thresholds, got {type(thresholds)}"
        )
    s = _check_scores_1d("scores", scores)
    if thresholds.per_class:
        if labels is None:
            raise ValueError(
                "labels must be given (integer class labels [N]) for per-class thresholds"
            )
        num_classes = thresholds.class_thresholds.size
        labels_arr, _ = _check_class_labels(labels, s.size, num_classes)
        return s >= thresholds.class_thresholds[labels_arr]
    if labels is not None:
        _check_class_labels(labels, s.size, None)
    return s >= thresholds.global_threshold


def youden_threshold(scores: Any, is_member: Any) -> float:
    """Youden's J threshold: the ROC threshold maximizing ``TPR - FPR``.

    Used by "To Trust or Not To Trust" for the max-score attack. Maximizing ``TPR - FPR`` is
    maximizing balanced accuracy, so this equals ``fit_thresholds(scores,
    is_member).global_threshold``. The threshold is a score value from the exact ROC, read with
    the rule "member iff ``score >= t``" (the paper writes ``score > t`` but takes ``t`` from
    ``sklearn.metrics.roc_curve``, whose thresholds use ``>=``).

    Args:
      scores: ``[N]`` finite real scores, higher = member.
      is_member: ``[N]`` 0/1 (or bool) membership; both classes present.

    Returns:
      The threshold as a Python float (``+inf`` if no threshold beats predicting no member).

    Raises:
      ValueError: on invalid ``scores`` / ``is_member`` (see :func:`fit_thresholds`).

    Example:
      >>> youden_threshold([0.9, 0.8, 0.7, 0.6, 0.2], [1, 0, 1, 1, 0])
      0.6
    """
    return fit_thresholds(scores, is_member).global_threshold


def yeom_threshold(member_losses: Any) -> float:
    """Yeom et al.'s loss threshold: the mean loss of known members.

    The attack predicts "member iff ``loss <= threshold``" (see :func:`yeom_predict`).

    Args:
      member_losses: ``[M]`` finite per-example losses (e.g. cross-entropy) of known members,
        ``M >= 1``.

    Returns:
      The mean loss as a Python float.

    Raises:
      ValueError: if ``member_losses`` is not 1-D, non-empty, real and finite.

    Example:
      >>> yeom_threshold([0.5, 1.5, 1.0])
      1.0
    """
    losses = _check_scores_1d("member_losses", member_losses)
    return float(np.mean(losses))


def yeom_predict(threshold: float, losses: Any) -> np.ndarray:
    """Yeom's loss attack: member iff ``loss <= threshold``.

    Args:
      threshold: finite threshold, usually :func:`yeom_threshold` of known members.
      losses: ``[N]`` finite per-example losses of the evaluation set.

    Returns:
      ``[N]`` NumPy bool, True = predicted member.

    Raises:
      ValueError: if ``threshold`` is not a finite real scalar, or ``losses`` is not 1-D,
        non-empty, real and finite.

    Example:
      >>> yeom_predict(0.2, [0.1, 0.2, 0.5]).tolist()
      [True, True, False]
    """
    arr = np.asarray(threshold)
    real = np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    if arr.ndim != 0 or not real:
        raise ValueError(f"threshold must be a finite real scalar, got {threshold!r}")
    if not np.isfinite(float(arr)):
        raise ValueError(f"threshold must be a finite real scalar, got {threshold!r}")
    losses = _check_scores_1d("losses", losses)
    return losses <= float(threshold)
