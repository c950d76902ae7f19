"""Uncertainty for attack metrics: percentile bootstrap and Clopper-Pearson intervals.

Host-side NumPy. The bootstrap takes an integer ``seed`` (required, no default) and draws from
``np.random.default_rng(seed)``, so an interval is reproducible from the seed saved with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from hampjax import validation
from hampjax.metrics.roc import _validated

__all__ = [
    "Interval",
    "bootstrap_interval",
    "clopper_pearson",
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
