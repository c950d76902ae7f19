"""Exact ROC readings for membership-inference attacks: TPR@FPR, TNR@FNR, AUC, advantage.

Convention everywhere: a higher score means "more likely a member"; label 1 is a member
(positive) and label 0 a non-member (negative). The ROC point for threshold ``t`` is the
classifier "predict member iff ``score >= t``".

The ROC is exact: all scores are sorted once (``O(N log N)``), examples with equal scores are
merged into one point (they switch together), and the curve runs from ``(0, 0)`` at threshold
``+inf`` to ``(1, 1)``. There is never a grid of thresholds. Every reading below is taken from
that one sorted pass, in integer counts, so ``fp / N_neg`` is compared with the target rate
exactly as ``sklearn.metrics.roc_curve`` output would be.

Two readings of "TPR at FPR = t" exist and both are offered:

* ``strict=True`` (default): the largest TPR over ROC points with ``FPR < t``. This is what
  the LiRA and HAMP authors compute (``tpr[np.where(fpr < t)[0][-1]]``).
* ``strict=False``: the largest TPR over ROC points with ``FPR <= t``.

With ``N_neg`` non-members the smallest non-zero FPR is ``1 / N_neg``; a target
``0 < t < 1 / N_neg`` cannot be resolved by the data and the readers emit a
:class:`ResolutionWarning` (``summarize`` returns a flag instead).

These are host-side metrics in NumPy float64: inputs may be NumPy or (concrete) JAX arrays;
they are not meant to run under ``jit``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from hampjax import validation

__all__ = [
    "ResolutionWarning",
    "RocCurve",
    "roc_curve",
    "tpr_at_fpr",
    "tnr_at_fnr",
    "auc",
    "balanced_accuracy",
    "attacker_advantage",
    "min_resolvable_fpr",
    "min_resolvable_fnr",
    "format_rate",
    "tpr_at_fpr_key",
    "tnr_at_fnr_key",
    "below_resolution_key",
    "summarize",
]


class ResolutionWarning(UserWarning):
    """A target FPR (FNR) is positive but below ``1 / N_neg`` (``1 / N_pos``).

    Such a reading equals the reading at any other target in ``(0, 1 / N)`` with the same
    data, so it says nothing specific about the requested rate.
    """


class RocCurve(NamedTuple):
    """Exact ROC curve, one point per distinct score plus the ``(0, 0)`` start.

    Attributes:
      fpr: ``[K + 1]`` float64, non-decreasing, ``fpr[0] == 0`` and ``fpr[-1] == 1``.
      tpr: ``[K + 1]`` float64, non-decreasing, ``tpr[0] == 0`` and ``tpr[-1] == 1``.
      thresholds: ``[K + 1]`` float64, strictly decreasing; ``thresholds[0] == +inf`` and the
        others are the ``K`` distinct scores. Point ``i`` is "member iff
        ``score >= thresholds[i]``".
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


class _Counts(NamedTuple):
    """ROC in integer counts (internal): ``fps``/``tps`` per point, class sizes."""

    fps: np.ndarray  # [K + 1] int64
    tps: np.ndarray  # [K + 1] int64
    thresholds: np.ndarray  # [K + 1] float64
    num_pos: int
    num_neg: int


# --------------------------------------------------------------------------------------------
# Validation and the one sorted pass.
# --------------------------------------------------------------------------------------------


def _validated(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert ``scores`` (1-D finite) and ``labels`` (1-D binary, both classes).

    Returns ``(scores float64 [N], is_member bool [N])``.
    """
    labels_np = np.asarray(labels)
    validation.check_binary_labels(labels_np, name="labels")
    scores_np = np.asarray(scores)
    validation.check_ndim("scores", scores_np, 1)
    validation.check_same_shape(("scores", "labels"), scores_np, labels_np)
    scores_np = scores_np.astype(np.float64)
    validation.check_finite("scores", scores_np)
    return scores_np, labels_np == 1


def _roc_counts(scores: Any, labels: Any) -> _Counts:
    """Validate, sort once and return the exact ROC in integer counts."""
    s, member = _validated(scores, labels)
    order = np.argsort(s, kind="stable")[::-1]  # descending; order within ties is irrelevant
    s_sorted = s[order]
    member_sorted = member[order]
    # Last index of each run of equal scores: all examples of a tie switch together.
    ends = np.append(np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s_sorted.size - 1)
    tps = np.cumsum(member_sorted, dtype=np.int64)[ends]
    fps = (ends + 1).astype(np.int64) - tps
    zero = np.zeros(1, dtype=np.int64)
    return _Counts(
        fps=np.concatenate([zero, fps]),
        tps=np.concatenate([zero, tps]),
        thresholds=np.concatenate([[np.inf], s_sorted[ends]]),
        num_pos=int(tps[-1]),
        num_neg=int(fps[-1]),
    )


def _check_rate(name: str, rate: Any) -> float:
    if np.ndim(rate) != 0:
        raise ValueError(f"{name} must be a scalar in [0, 1], got shape {np.shape(rate)}")
    validation.check_in_range(name, rate, 0.0, 1.0, low_inclusive=True, high_inclusive=True)
    return float(rate)


def _below_resolution(rate: float, count: int) -> bool:
    return 0.0 < rate < 1.0 / count


def _resolution_message(what: str, rate: float, counts: _Counts) -> str:
    if what == "fpr":
        n, cls = counts.num_neg, "non-members"
    else:
        n, cls = counts.num_pos, "members"
    return (
        f"{what}={rate:g} is below the resolution 1/{n} = {1.0 / n:.3g} of {n} {cls} "
        f"({counts.num_pos} members, {counts.num_neg} non-members); the reading equals the one "
        f"at {what} -> 0+ and is not specific to the requested rate"
    )


# --------------------------------------------------------------------------------------------
# Readings on counts (no validation, no warnings).
# --------------------------------------------------------------------------------------------


def _tpr_at_fpr(c: _Counts, fpr: float, strict: bool) -> float:
    fpr_curve = c.fps / c.num_neg  # same float expression as sklearn's roc_curve
    # fpr_curve is non-decreasing: qualifying points form a prefix; TPR is largest at its end.
    num_ok = int(np.searchsorted(fpr_curve, fpr, side="left" if strict else "right"))
    if num_ok == 0:
        return 0.0
    return float(c.tps[num_ok - 1] / c.num_pos)


def _tnr_at_fnr(c: _Counts, fnr: float, strict: bool) -> float:
    fnr_curve = (c.num_pos - c.tps) / c.num_pos  # non-increasing
    ok = fnr_curve < fnr if strict else fnr_curve <= fnr
    # Qualifying points form a suffix; TNR = 1 - FPR is largest at its start.
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return 0.0
    return float((c.num_neg - c.fps[idx[0]]) / c.num_neg)


def _auc(c: _Counts) -> float:
    # Trapezoid rule in counts: sum dFP * (TP_left + TP_right) / 2, normalised by P * N.
    area2 = np.sum(np.diff(c.fps) * (c.tps[1:] + c.tps[:-1]), dtype=np.float64)
    return float(area2 / (2.0 * c.num_pos * c.num_neg))


def _advantage(c: _Counts) -> float:
    return float(np.max(c.tps / c.num_pos - c.fps / c.num_neg))


# --------------------------------------------------------------------------------------------
# Public API.
# --------------------------------------------------------------------------------------------


def roc_curve(scores: Any, labels: Any) -> RocCurve:
    """Exact ROC curve of a membership score, ties merged.

    Equals ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``.

    Args:
      scores: ``[N]`` finite real scores, higher = more likely member (NumPy or JAX array).
      labels: ``[N]`` 0/1 (or bool) membership labels, 1 = member; both classes present.

    Returns:
      :class:`RocCurve` with float64 ``fpr``, ``tpr``, ``thresholds`` of length ``K + 1``,
      ``K`` the number of distinct scores.

    Raises:
      ValueError: if ``scores`` is not 1-D, lengths differ, labels are not binary or lack a
        class, or a score is NaN or infinite.

    Example:
      >>> roc = roc_curve([0.9, 0.8, 0.8, 0.1], [1, 1, 0, 0])
      >>> roc.fpr.tolist(), roc.tpr.tolist()
      ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    c = _roc_counts(scores, labels)
    return RocCurve(fpr=c.fps / c.num_neg, tpr=c.tps / c.num_pos, thresholds=c.thresholds)


def min_resolvable_fpr(labels: Any) -> float:
    """Smallest non-zero FPR the data can show: ``1 / N_neg``.

    A target FPR ``t`` with ``0 < t < min_resolvable_fpr(labels)`` is "below resolution".

    Args:
      labels: ``[N]`` 0/1 membership labels with both classes present.

    Returns:
      ``1 / (number of non-members)`` as a Python float.

    Raises:
      ValueError: if ``labels`` is not 1-D binary with both classes.

    Example:
      >>> min_resolvable_fpr([1, 0, 0, 0])
      0.3333333333333333
    """
    labels_np = np.asarray(labels)
    validation.check_binary_labels(labels_np, name="labels")
    return 1.0 / int(np.sum(labels_np != 1))


def min_resolvable_fnr(labels: Any) -> float:
    """Smallest non-zero FNR the data can show: ``1 / N_pos``.

    Args:
      labels: ``[N]`` 0/1 membership labels with both classes present.

    Returns:
      ``1 / (number of members)`` as a Python float.

    Raises:
      ValueError: if ``labels`` is not 1-D binary with both classes.

    Example:
      >>> min_resolvable_fnr([1, 1, 0, 0])
      0.5
    """
    labels_np = np.asarray(labels)
    validation.check_binary_labels(labels_np, name="labels")
    return 1.0 / int(np.sum(labels_np == 1))


def tpr_at_fpr(scores: Any, labels: Any, fpr: float, *, strict: bool = True) -> float:
    """Largest TPR over exact ROC points with ``FPR < fpr`` (``strict``) or ``FPR <= fpr``.

    ``strict=True`` is the LiRA/HAMP authors' reading. With ``strict=True`` and ``fpr=0`` no
    ROC point qualifies (even ``(0, 0)`` has ``FPR = 0``, not ``< 0``) and the result is 0.0.
    The "TPR at 0% FPR" that papers report (the fraction of members scored above every
    non-member) is the non-strict reading: ``tpr_at_fpr(s, y, 0.0, strict=False)``.

    Args:
      scores: ``[N]`` finite scores, higher = more likely member.
      labels: ``[N]`` 0/1 membership labels, 1 = member; both classes present.
      fpr: target false-positive rate in ``[0, 1]``.
      strict: compare ``FPR < fpr`` (True) or ``FPR <= fpr`` (False).

    Returns:
      The TPR as a Python float in ``[0, 1]``.

    Raises:
      ValueError: on invalid scores/labels (see :func:`roc_curve`) or ``fpr`` outside
        ``[0, 1]``.

    Warns:
      ResolutionWarning: if ``0 < fpr < 1 / N_neg``.

    Example:
      >>> s, y = [4.0, 3.0, 2.0, 1.0], [1, 0, 1, 0]
      >>> tpr_at_fpr(s, y, 0.5), tpr_at_fpr(s, y, 0.5, strict=False)
      (0.5, 1.0)
    """
    fpr = _check_rate("fpr", fpr)
    c = _roc_counts(scores, labels)
    if _below_resolution(fpr, c.num_neg):
        warnings.warn(_resolution_message("fpr", fpr, c), ResolutionWarning, stacklevel=2)
    return _tpr_at_fpr(c, fpr, bool(strict))


def tnr_at_fnr(scores: Any, labels: Any, fnr: float, *, strict: bool = True) -> float:
    """Largest TNR (``1 - FPR``) over ROC points with ``FNR < fnr`` (``strict``) or ``<=``.

    ``FNR = 1 - TPR``. HAMP reports this at ``fnr = 1e-3`` (strict) as the protection of
    non-members. As for :func:`tpr_at_fpr`, ``strict=True`` with ``fnr=0`` returns 0.0; use
    ``strict=False`` for "TNR at 0% FNR".

    Args:
      scores: ``[N]`` finite scores, higher = more likely member.
      labels: ``[N]`` 0/1 membership labels, 1 = member; both classes present.
      fnr: target false-negative rate in ``[0, 1]``.
      strict: compare ``FNR < fnr`` (True) or ``FNR <= fnr`` (False).

    Returns:
      The TNR as a Python float in ``[0, 1]``.

    Raises:
      ValueError: on invalid scores/labels or ``fnr`` outside ``[0, 1]``.

    Warns:
      ResolutionWarning: if ``0 < fnr < 1 / N_pos``.

    Example:
      >>> s, y = [4.0, 3.0, 2.0, 1.0], [1, 0, 1, 0]
      >>> tnr_at_fnr(s, y, 0.5), tnr_at_fnr(s, y, 0.5, strict=False)
      (0.5, 1.0)
    """
    fnr = _check_rate("fnr", fnr)
    c = _roc_counts(scores, labels)
    if _below_resolution(fnr, c.num_pos):
        warnings.warn(_resolution_message("fnr", fnr, c), ResolutionWarning, stacklevel=2)
    return _tnr_at_fnr(c, fnr, bool(strict))


def auc(scores: Any, labels: Any) -> float:
    """Area under the exact ROC (trapezoid rule; ties count one half).

    Equals ``sklearn.metrics.roc_auc_score(labels, scores)``, i.e. the probability that a
    random member outscores a random non-member, ties counting 1/2.

    Args:
      scores: ``[N]`` finite scores, higher = more likely member.
      labels: ``[N]`` 0/1 membership labels; both classes present.

    Returns:
      AUC as a Python float in ``[0, 1]``.

    Raises:
      ValueError: on invalid scores/labels.

    Example:
      >>> auc([0.9, 0.8, 0.8, 0.1], [1, 1, 0, 0])
      0.875
    """
    return _auc(_roc_counts(scores, labels))


def attacker_advantage(scores: Any, labels: Any) -> float:
    """Membership advantage ``max_t (TPR(t) - FPR(t))`` over the exact ROC (Yeom et al.).

    Sign convention: signed, for the rule "member iff ``score >= t``". The end points
    ``(0, 0)`` and ``(1, 1)`` are included, so the result is in ``[0, 1]``; an attack whose
    scores point the wrong way gets about 0, not a large value. The two-sided
    ``max_t |TPR - FPR|`` equals
    ``max(attacker_advantage(s, y), attacker_advantage(-s, y))``.

    Args:
      scores: ``[N]`` finite scores, higher = more likely member.
      labels: ``[N]`` 0/1 membership labels; both classes present.

    Returns:
      The advantage as a Python float in ``[0, 1]``.

    Raises:
      ValueError: on invalid scores/labels.

    Example:
      >>> attacker_advantage([4.0, 3.0, 2.0, 1.0], [1, 0, 1, 0])
      0.5
    """
    return _advantage(_roc_counts(scores, labels))


def balanced_accuracy(scores: Any, labels: Any) -> float:
    """Best balanced accuracy ``max_t 1 - (FPR(t) + FNR(t)) / 2`` over the exact ROC.

    Equals ``(1 + attacker_advantage(scores, labels)) / 2``; at least 0.5 (the trivial
    thresholds are included).

    Args:
      scores: ``[N]`` finite scores, higher = more likely member.
      labels: ``[N]`` 0/1 membership labels; both classes present.

    Returns:
      Balanced accuracy as a Python float in ``[0.5, 1]``.

    Raises:
      ValueError: on invalid scores/labels.

    Example:
      >>> balanced_accuracy([4.0, 3.0, 2.0, 1.0], [1, 1, 0, 0])
      1.0
    """
    # 1 - (FPR + 1 - TPR) / 2 = (1 + TPR - FPR) / 2, maximised where the advantage is.
    return 0.5 * (1.0 + _advantage(_roc_counts(scores, labels)))


# --------------------------------------------------------------------------------------------
# Report schema.
# --------------------------------------------------------------------------------------------


def format_rate(rate: float) -> str:
    """Format a rate as a percentage without trailing zeros: ``1e-3 -> "0.1%"``.

    Examples: ``0 -> "0%"``, ``1e-5 -> "0.001%"``, ``1e-4 -> "0.01%"``, ``1e-2 -> "1%"``,
    ``0.5 -> "50%"``.

    Args:
      rate: a rate in ``[0, 1]``.

    Returns:
      The percentage string.

    Raises:
      ValueError: if ``rate`` is outside ``[0, 1]``.

    Example:
      >>> format_rate(1e-3)
      '0.1%'
    """
    rate = _check_rate("rate", rate)
    percent = float(f"{100.0 * rate:.12g}")  # drop float noise such as 0.0010000000000000002
    return np.format_float_positional(percent, trim="-") + "%"


def tpr_at_fpr_key(fpr: float) -> str:
    """Summary key of a TPR reading, e.g. ``tpr_at_fpr_key(1e-3) == "tpr@0.1%fpr"``."""
    return f"tpr@{format_rate(fpr)}fpr"


def tnr_at_fnr_key(fnr: float) -> str:
    """Summary key of a TNR reading, e.g. ``tnr_at_fnr_key(1e-3) == "tnr@0.1%fnr"``."""
    return f"tnr@{format_rate(fnr)}fnr"


def below_resolution_key(reading_key: str) -> str:
    """Key of the below-resolution flag of a reading: ``"tpr@0.1%fpr/below_resolution"``."""
    return f"{reading_key}/below_resolution"


def summarize(
    scores: Any,
    labels: Any,
    *,
    fprs: Sequence[float] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2),
    fnrs: Sequence[float] = (1e-3,),
    strict: bool = True,
) -> dict[str, Any]:
    """All headline attack metrics from one sorted pass, as a flat JSON-ready dict.

    Keys (stable; reports rely on them):

    * ``"auc"``, ``"balanced_accuracy"``, ``"attacker_advantage"``: floats.
    * ``tpr_at_fpr_key(t)`` (e.g. ``"tpr@0.1%fpr"``) for each ``t`` in ``fprs`` and
      ``tnr_at_fnr_key(t)`` (e.g. ``"tnr@0.1%fnr"``) for each ``t`` in ``fnrs``: floats.
    * ``below_resolution_key(k)`` for each of those keys ``k``: bool, True iff
      ``0 < t < 1 / N_neg`` (TPR readings) or ``0 < t < 1 / N_pos`` (TNR readings).
    * ``"num_members"``, ``"num_nonmembers"``: ints.
    * ``"min_resolvable_fpr"`` (``1 / N_neg``), ``"min_resolvable_fnr"`` (``1 / N_pos``).
    * ``"reading"``: ``"strict"`` (``FPR < t``) or ``"non-strict"`` (``FPR <= t``).

    A target of exactly 0 is always read non-strictly (``FPR <= 0``: members scored above
    every non-member), because the strict reading at 0 is identically 0 and carries no
    information. Below-resolution targets are flagged, not warned about.

    Args:
      scores: ``[N]`` finite scores, higher = more likely member.
      labels: ``[N]`` 0/1 membership labels; both classes present.
      fprs: target FPRs in ``[0, 1]`` for the TPR readings.
      fnrs: target FNRs in ``[0, 1]`` for the TNR readings.
      strict: reading used for positive targets (see :func:`tpr_at_fpr`).

    Returns:
      The dict described above.

    Raises:
      ValueError: on invalid scores/labels or a target outside ``[0, 1]``.

    Example:
      >>> out = summarize([4.0, 3.0, 2.0, 1.0], [1, 0, 1, 0], fprs=(0.0, 0.5), fnrs=(0.5,))
      >>> out["tpr@0%fpr"], out["tpr@50%fpr"], out["tnr@50%fnr"], out["auc"]
      (0.5, 0.5, 0.5, 0.75)
    """
    fprs = [_check_rate("fprs", t) for t in fprs]
    fnrs = [_check_rate("fnrs", t) for t in fnrs]
    c = _roc_counts(scores, labels)
    adv = _advantage(c)
    out: dict[str, Any] = {
        "auc": _auc(c),
        "balanced_accuracy": 0.5 * (1.0 + adv),
        "attacker_advantage": adv,
    }
    for t in fprs:
        key = tpr_at_fpr_key(t)
        out[key] = _tpr_at_fpr(c, t, bool(strict) and t > 0.0)
        out[below_resolution_key(key)] = _below_resolution(t, c.num_neg)
    for t in fnrs:
        key = tnr_at_fnr_key(t)
        out[key] = _tnr_at_fnr(c, t, bool(strict) and t > 0.0)
        out[below_resolution_key(key)] = _below_resolution(t, c.num_pos)
    out["num_members"] = c.num_pos
    out["num_nonmembers"] = c.num_neg
    out["min_resolvable_fpr"] = 1.0 / c.num_neg
    out["min_resolvable_fnr"] = 1.0 / c.num_pos
    out["reading"] = "strict" if strict else "non-strict"
    return out
