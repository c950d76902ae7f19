"""Calibration and score-distribution metrics (Hintersdorf et al. 2022, Sec. 4).

Host-side NumPy float64. The calibration metrics take **probabilities** ``probs [N, C]``
(e.g. ``jax.nn.softmax(logits)``, or a Laplace predictive averaged over samples), not logits:
every entry must be in ``[0, 1]``. Rows are not required to sum to 1 (only the row maximum
and its position are used). ``labels [N]`` are integer class indices in ``[0, C)``.

Binning (as in the paper): ``num_bins`` equal-width bins on ``[0, 1]`` with edges
``l_b = b / num_bins``; an example with confidence ``conf = max_c probs[c]`` falls in bin
``b`` iff ``l_b < conf <= l_{b+1}``. The first bin also takes ``conf == 0`` (it is
``[0, 1 / num_bins]``); a maximum probability can only be 0 for an all-zero row, which is not
a distribution, so this only keeps such input from being dropped. A prediction is correct
iff ``argmax probs == label`` (first maximum on ties, as ``np.argmax``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from hampjax import validation

__all__ = [
    "ReliabilityDiagram",
    "reliability_diagram_data",
    "expected_calibration_error",
    "overconfidence_error",
    "mean_max_prediction_score",
    "wasserstein_distance",
]


class ReliabilityDiagram(NamedTuple):
    """Per-bin statistics of a reliability diagram.

    Attributes:
      bin_edges: ``[B + 1]`` float64, ``linspace(0, 1, B + 1)``; bin ``b`` is
        ``(bin_edges[b], bin_edges[b + 1]]`` (bin 0 also includes 0).
      counts: ``[B]`` int64 number of examples per bin.
      confidence: ``[B]`` float64 mean max-probability per bin; NaN for an empty bin.
      accuracy: ``[B]`` float64 fraction correct per bin; NaN for an empty bin.
    """

    bin_edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray


def _confidence_and_correct(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``probs [N, C]`` and ``labels [N]``; return ``(conf [N] f64, correct [N] bool)``."""
    p = np.asarray(probs)
    validation.check_ndim("probs", p, 2)
    validation.check_nonempty("probs", p)
    if p.shape[1] == 0:
        raise ValueError(f"probs must have at least 1 class, got shape {p.shape}")
    p = p.astype(np.float64)
    validation.check_probabilities("probs", p)
    y = np.asarray(labels)
    validation.check_ndim("labels", y, 1)
    if y.shape[0] != p.shape[0]:
        raise ValueError(
            f"labels must have one entry per row of probs, got labels {y.shape} and probs {p.shape}"
        )
    validation.check_labels(y, p.shape[1], name="labels")
    conf = np.max(p, axis=1)
    correct = np.argmax(p, axis=1) == y
    return conf, correct


def _bin_sums(
    conf: np.ndarray, correct: np.ndarray, num_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin ``(edges, counts, sum of conf, sum of correct)`` with (l, u] membership."""
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    # searchsorted(side="left") - 1 gives b with edges[b] < conf <= edges[b + 1].
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, num_bins - 1)
    counts = np.bincount(bins, minlength=num_bins).astype(np.int64)
    conf_sum = np.bincount(bins, weights=conf, minlength=num_bins)
    acc_sum = np.bincount(bins, weights=correct.astype(np.float64), minlength=num_bins)
    return edges, counts, conf_sum, acc_sum


def reliability_diagram_data(probs: Any, labels: Any, *, num_bins: int = 15) -> ReliabilityDiagram:
    """Per-bin counts, mean confidence and accuracy for a reliability diagram.

    Args:
      probs: ``[N, C]`` probabilities in ``[0, 1]``, each row summing to 1 (within
        :data:`hampjax.validation.PROBABILITY_ATOL`).
      labels: ``[N]`` integer class labels in ``[0, C)``.
      num_bins: number of equal-width confidence bins, ``>= 1``.

    Returns:
      :class:`ReliabilityDiagram`.

    Raises:
      ValueError: if ``probs`` is not a non-empty 2-D array in ``[0, 1]``, ``labels`` is not
        a matching 1-D integer array in ``[0, C)``, or ``num_bins < 1``.

    Example:
      >>> d = reliability_diagram_data([[0.9, 0.1], [0.2, 0.8]], [0, 0], num_bins=2)
      >>> d.counts.tolist(), d.accuracy.tolist()
      ([0, 2], [nan, 0.5])
    """
    num_bins = validation.check_positive_int("num_bins", num_bins)
    conf, correct = _confidence_and_correct(probs, labels)
    edges, counts, conf_sum, acc_sum = _bin_sums(conf, correct, num_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / counts, np.nan)
        mean_acc = np.where(counts > 0, acc_sum / counts, np.nan)
    return ReliabilityDiagram(bin_edges=edges, counts=counts, confidence=mean_conf, accuracy=mean_acc)


def expected_calibration_error(probs: Any, labels: Any, *, num_bins: int = 15) -> float:
    """Expected calibration error ``sum_b (|B_b| / n) |conf_b - acc_b|``.

    ``conf_b`` and ``acc_b`` are the mean max-probability and accuracy of bin ``b``
    (equal-width bins, ``(l, u]`` membership; see the module docstring). Empty bins add 0.

    Args:
      probs: ``[N, C]`` probabilities in ``[0, 1]``, each row summing to 1 (within
        :data:`hampjax.validation.PROBABILITY_ATOL`).
      labels: ``[N]`` integer class labels in ``[0, C)``.
      num_bins: number of equal-width confidence bins, ``>= 1`` (paper: 15).

    Returns:
      ECE as a Python float in ``[0, 1]``.

    Raises:
      ValueError: as :func:`reliability_diagram_data`.

    Example:
      >>> expected_calibration_error([[1.0, 0.0], [1.0, 0.0]], [0, 1])
      0.5
    """
    num_bins = validation.check_positive_int("num_bins", num_bins)
    conf, correct = _confidence_and_correct(probs, labels)
    _, _, conf_sum, acc_sum = _bin_sums(conf, correct, num_bins)
    # (|B_b| / n) |conf_b - acc_b| = |sum_{i in b} conf_i - sum_{i in b} correct_i| / n.
    return float(np.sum(np.abs(conf_sum - acc_sum)) / conf.size)


def overconfidence_error(probs: Any, labels: Any, *, num_bins: int = 15) -> float:
    """Overconfidence error ``sum_b (|B_b| / n) conf_b max(conf_b - acc_b, 0)``.

    Same bins as :func:`expected_calibration_error`; only over-confident bins count, each
    weighted by its confidence. Empty bins add 0.

    Args:
      probs: ``[N, C]`` probabilities in ``[0, 1]``, each row summing to 1 (within
        :data:`hampjax.validation.PROBABILITY_ATOL`).
      labels: ``[N]`` integer class labels in ``[0, C)``.
      num_bins: number of equal-width confidence bins, ``>= 1`` (paper: 15).

    Returns:
      OE as a Python float in ``[0, 1]``.

    Raises:
      ValueError: as :func:`reliability_diagram_data`.

    Example:
      >>> overconfidence_error([[1.0, 0.0], [1.0, 0.0]], [0, 1])
      0.5
    """
    num_bins = validation.check_positive_int("num_bins", num_bins)
    conf, correct = _confidence_and_correct(probs, labels)
    _, counts, conf_sum, acc_sum = _bin_sums(conf, correct, num_bins)
    nonempty = counts > 0
    conf_b = conf_sum[nonempty] / counts[nonempty]
    acc_b = acc_sum[nonempty] / counts[nonempty]
    weights = counts[nonempty] / conf.size
    return float(np.sum(weights * conf_b * np.maximum(conf_b - acc_b, 0.0)))


def mean_max_prediction_score(probs: Any) -> float:
    """Mean max prediction score (MMPS): the mean over examples of ``max_c probs[c]``.

    For MMPS per confusion cell (TP, FP, FN, TN) pass the rows of that cell.

    Args:
      probs: ``[N, C]`` probabilities in ``[0, 1]``, ``N >= 1``, each row summing to 1
        (within :data:`hampjax.validation.PROBABILITY_ATOL`).

    Returns:
      MMPS as a Python float in ``[0, 1]``.

    Raises:
      ValueError: if ``probs`` is not a non-empty 2-D array of finite entries in ``[0, 1]``
        whose rows sum to 1.

    Example:
      >>> mean_max_prediction_score([[0.9, 0.1], [0.3, 0.7]])
      0.8
    """
    p = np.asarray(probs)
    validation.check_ndim("probs", p, 2)
    validation.check_nonempty("probs", p)
    if p.shape[1] == 0:
        raise ValueError(f"probs must have at least 1 class, got shape {p.shape}")
    p = p.astype(np.float64)
    validation.check_probabilities("probs", p)
    return float(np.mean(np.max(p, axis=1)))


def _sample(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    validation.check_ndim(name, arr, 1)
    validation.check_nonempty(name, arr)
    arr = arr.astype(np.float64)
    validation.check_finite(name, arr)
    return np.sort(arr)


def wasserstein_distance(a: Any, b: Any) -> float:
    """1-D earth mover's (Wasserstein-1) distance between two empirical samples.

    ``W = integral |F_a(x) - F_b(x)| dx`` with ``F`` the empirical CDFs; the samples may have
    different sizes. For equal sizes it is the mean absolute difference of the sorted
    samples. Equals ``scipy.stats.wasserstein_distance(a, b)`` (unweighted).

    Args:
      a: ``[N]`` finite values, ``N >= 1``.
      b: ``[M]`` finite values, ``M >= 1``.

    Returns:
      The distance as a non-negative Python float (same units as the samples).

    Raises:
      ValueError: if a sample is not 1-D, is empty, or has NaN/inf values.

    Example:
      >>> wasserstein_distance([0.0, 1.0], [0.5, 1.5])
      0.5
    """
    a_sorted = _sample("a", a)
    b_sorted = _sample("b", b)
    grid = np.sort(np.concatenate([a_sorted, b_sorted]))
    widths = np.diff(grid)
    # Both CDFs are constant on [grid[i], grid[i + 1]); evaluate them at the left end.
    cdf_a = np.searchsorted(a_sorted, grid[:-1], side="right") / a_sorted.size
    cdf_b = np.searchsorted(b_sorted, grid[:-1], side="right") / b_sorted.size
    return float(np.sum(np.abs(cdf_a - cdf_b) * widths))
