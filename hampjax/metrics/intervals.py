"""Uncertainty for attack metrics: percentile bootstrap and Clopper-Pearson intervals.

Host-side NumPy. The bootstrap takes an integer ``seed`` (required, no default) and draws from
``np.random.default_rng(seed)``, so an interval is reproducible from the seed saved with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from hampjax import validation
from hampjax.metrics.roc import (
    _advantage,
    _auc,
    _check_rate,
    _Counts,
    _tnr_at_fnr,
    _tpr_at_fpr,
    _validated,
    summarize,
    tnr_at_fnr_key,
    tpr_at_fpr_key,
)

__all__ = [
    "Interval",
    "bootstrap_interval",
    "bootstrap_summary",
    "clopper_pearson",
    "summary_metric_keys",
]


class Interval(NamedTuple):
    """A point estimate with a two-sided interval (Python floats)."""

    estimate: float
    low: float
    high: float


def _check_confidence(confidence: Any) -> float:
    validation.check_in_range(
        "confidence", confidence, 0.0, 1.0, low_inclusive=False, high_inclusive=False
    )
    return float(confidence)


def _resample_indices(
    rng: np.random.Generator,
    member: np.ndarray,
    member_idx: np.ndarray,
    nonmember_idx: np.ndarray,
    stratified: bool,
) -> np.ndarray:
    if stratified:
        return np.concatenate(
            [
                rng.choice(member_idx, size=member_idx.size, replace=True),
                rng.choice(nonmember_idx, size=nonmember_idx.size, replace=True),
            ]
        )
    n = member.size
    while True:  # Terminates with probability 1: both classes are present in the data.
        idx = rng.integers(0, n, size=n)
        num_members = int(np.count_nonzero(member[idx]))
        if 0 < num_members < n:
            return idx


def bootstrap_interval(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    scores: Any,
    labels: Any,
    *,
    seed: int,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    stratified: bool = True,
) -> Interval:
    """Percentile bootstrap interval of ``metric_fn(scores, labels)``.

    Each resample draws examples with replacement. ``stratified=True`` (default) draws
    ``N_pos`` members from the members and ``N_neg`` non-members from the non-members, so
    class counts (and thus the FPR resolution ``1 / N_neg``) stay fixed and low-FPR readings
    stay defined. ``stratified=False`` draws ``N`` examples from all of them; a resample
    that lacks a class is redrawn (the bootstrap is conditioned on both classes being
    present, which matters only for tiny samples).

    The interval is ``[q_{(1 - c) / 2}, q_{(1 + c) / 2}]`` of the ``num_resamples`` resampled
    values (``np.quantile``, linear interpolation); the estimate is ``metric_fn`` on the
    original data. The percentile interval need not contain the estimate for very skewed
    metrics.

    Args:
      metric_fn: ``f(scores [M] float64, labels [M] int64) -> float``, e.g.
        ``functools.partial(tpr_at_fpr, fpr=1e-3)`` or :func:`~hampjax.metrics.roc.auc`.
      scores: ``[N]`` finite scores, higher = more likely member.
      labels: ``[N]`` 0/1 membership labels; both classes present.
      seed: integer seed ``>= 0`` for ``np.random.default_rng``. Required.
      num_resamples: number of bootstrap resamples, ``>= 1``.
      confidence: two-sided confidence level in ``(0, 1)``.
      stratified: resample members and non-members separately.

    Returns:
      :class:`Interval` ``(estimate, low, high)``.

    Raises:
      ValueError: on invalid scores/labels, a seed that is not a non-negative integer,
        ``num_resamples < 1`` or ``confidence`` outside ``(0, 1)``.

    Example:
      >>> from hampjax.metrics.roc import auc
      >>> rng = np.random.default_rng(0)
      >>> y = np.repeat([1, 0], 200)
      >>> s = rng.normal(size=400) + y
      >>> est, low, high = bootstrap_interval(auc, s, y, seed=0, num_resamples=200)
      >>> bool(low < est < high)
      True
    """
    seed = validation.check_positive_int("seed", seed, minimum=0)
    num_resamples = validation.check_positive_int("num_resamples", num_resamples)
    confidence = _check_confidence(confidence)
    s, member = _validated(scores, labels)
    y = member.astype(np.int64)
    rng = np.random.default_rng(seed)
    member_idx = np.flatnonzero(member)
    nonmember_idx = np.flatnonzero(~member)

    estimate = float(metric_fn(s, y))
    values = np.empty(num_resamples, dtype=np.float64)
    for r in range(num_resamples):
        idx = _resample_indices(rng, member, member_idx, nonmember_idx, bool(stratified))
        values[r] = metric_fn(s[idx], y[idx])
    alpha = 1.0 - confidence
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(estimate=estimate, low=float(low), high=float(high))


def summary_metric_keys(fprs: Sequence[float], fnrs: Sequence[float]) -> list[str]:
    """The metric keys of :func:`bootstrap_summary`, in order.

    ``"auc"``, ``"balanced_accuracy"``, ``"attacker_advantage"``, then the TPR reading of
    every target in ``fprs`` and the TNR reading of every target in ``fnrs``.

    Example:
      >>> summary_metric_keys((1e-3,), (1e-3,))
      ['auc', 'balanced_accuracy', 'attacker_advantage', 'tpr@0.1%fpr', 'tnr@0.1%fnr']
    """
    return (["auc", "balanced_accuracy", "attacker_advantage"]
            + [tpr_at_fpr_key(_check_rate("fprs", t)) for t in fprs]
            + [tnr_at_fnr_key(_check_rate("fnrs", t)) for t in fnrs])


def bootstrap_summary(
    scores: Any,
    labels: Any,
    *,
    fprs: Sequence[float],
    fnrs: Sequence[float],
    seed: int,
    num_resamples: int,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """Stratified percentile bootstrap of every :func:`~hampjax.metrics.summarize` metric at once.

    Draws exactly as :func:`bootstrap_interval` with ``stratified=True`` and the same seed,
    so each interval equals the one that function gives for that metric alone (with the
    strict reading for positive targets, the non-strict one at 0, as :func:`summarize`).
    Instead of re-sorting every resample, the scores are sorted once and a resample is the
    vector of draw counts per example: its ROC in integer counts is a weighted cumulative
    sum along that one order. Examples not drawn only add repeated ROC points, which change
    no reading, so the values equal ``summarize`` on the resample exactly. Cost: one pass
    over ``N`` scores per resample.

    Args:
      scores: ``[N]`` finite scores, higher = more likely member.
      labels: ``[N]`` 0/1 membership labels; both classes present.
      fprs: target FPRs of the TPR readings; fnrs: target FNRs of the TNR readings.
      seed: integer seed ``>= 0`` for ``np.random.default_rng``. Required.
      num_resamples: number of resamples, ``>= 1``.
      confidence: two-sided confidence level in ``(0, 1)``.

    Returns:
      ``{metric key: Interval}`` in the order of :func:`summary_metric_keys`.

    Raises:
      ValueError: on invalid scores/labels, targets, seed, resamples or confidence.

    Example:
      >>> from hampjax.metrics.roc import auc
      >>> rng = np.random.default_rng(0)
      >>> y = np.repeat([1, 0], 100)
      >>> s = rng.normal(size=200) + y
      >>> out = bootstrap_summary(s, y, fprs=(1e-2,), fnrs=(), seed=0, num_resamples=50)
      >>> out["auc"] == bootstrap_interval(auc, s, y, seed=0, num_resamples=50)
      True
    """
    seed = validation.check_positive_int("seed", seed, minimum=0)
    num_resamples = validation.check_positive_int("num_resamples", num_resamples)
    confidence = _check_confidence(confidence)
    keys = summary_metric_keys(fprs, fnrs)
    s, member = _validated(scores, labels)
    estimate = summarize(s, member, fprs=fprs, fnrs=fnrs)
    order = np.argsort(s, kind="stable")[::-1]
    s_sorted, member_sorted = s[order], member[order]
    ends = np.append(np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s.size - 1)
    member_idx, nonmember_idx = np.flatnonzero(member), np.flatnonzero(~member)
    num_pos, num_neg = member_idx.size, nonmember_idx.size
    zero = np.zeros(1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    values = np.empty((num_resamples, len(keys)), dtype=np.float64)
    for r in range(num_resamples):
        idx = _resample_indices(rng, member, member_idx, nonmember_idx, True)
        weights = np.bincount(idx, minlength=s.size)[order]
        tps = np.cumsum(np.where(member_sorted, weights, 0), dtype=np.int64)[ends]
        fps = np.cumsum(weights, dtype=np.int64)[ends] - tps
        counts = _Counts(
            fps=np.concatenate([zero, fps]),
            tps=np.concatenate([zero, tps]),
            thresholds=np.empty(0),  # unused by the readings
            num_pos=num_pos,
            num_neg=num_neg,
        )
        advantage = _advantage(counts)
        resampled = [_auc(counts), 0.5 * (1.0 + advantage), advantage]
        resampled += [_tpr_at_fpr(counts, float(t), float(t) > 0.0) for t in fprs]
        resampled += [_tnr_at_fnr(counts, float(t), float(t) > 0.0) for t in fnrs]
        values[r] = resampled
    alpha = 1.0 - confidence
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return {
        k: Interval(estimate=float(estimate[k]), low=float(low[i]), high=float(high[i]))
        for i, k in enumerate(keys)
    }


def clopper_pearson(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided binomial interval for ``successes / trials``.

    ``low = Beta.ppf(a / 2; k, n - k + 1)`` (0 when ``k = 0``) and
    ``high = Beta.ppf(1 - a / 2; k + 1, n - k)`` (1 when ``k = n``), ``a = 1 - confidence``.
    Use it for a count-based reading, e.g. ``clopper_pearson(tp, num_members)`` for a TPR
    at a fixed threshold.

    Args:
      successes: integer ``k`` in ``[0, trials]``.
      trials: integer ``n >= 1``.
      confidence: two-sided confidence level in ``(0, 1)``.

    Returns:
      ``(low, high)`` Python floats with ``0 <= low <= k / n <= high <= 1``.

    Raises:
      ValueError: if ``trials < 1``, ``successes`` is not an integer in ``[0, trials]``, or
        ``confidence`` is outside ``(0, 1)``.

    Example:
      >>> low, high = clopper_pearson(0, 10)
      >>> low, round(high, 4)
      (0.0, 0.3085)
    """
    trials = validation.check_positive_int("trials", trials)
    successes = validation.check_positive_int("successes", successes, minimum=0)
    if successes > trials:
        raise ValueError(f"successes must be in [0, trials={trials}], got {successes}")
    confidence = _check_confidence(confidence)
    from scipy import stats  # noqa: PLC0415 (scipy.stats is slow to import; needed only here)

    alpha = 1.0 - confidence
    k, n = successes, trials
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2.0, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1.0 - alpha / 2.0, k + 1, n - k))
    return low, high
