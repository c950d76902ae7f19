"""RMIA: the robust membership inference attack (Zarifzadeh, Liu, Shokri, ICML 2024).

RMIA compares a candidate ``x`` against a population of known non-members ``z`` through the
pairwise likelihood ratio

    LR(x, z) = [Pr(x|theta) / Pr(x)] / [Pr(z|theta) / Pr(z)] = Ratio_x / Ratio_z,

where ``Pr(.|theta)`` is the target model's probability of the true class and ``Pr(.)`` the
average of the same quantity over reference (shadow) models. The score of ``x`` is the fraction
of population samples it dominates, ``Score(x) = mean_z [LR(x, z) >= gamma]``. Higher means
"more likely member".

Reference average ``Pr(x)`` (mean, or trimmed mean with ``aggregate="trimmed_mean"``):

* online: over all ``R`` references (those trained on ``x`` and those not);
* offline: over the references *not* trained on ``x`` (OUT), then corrected to approximate the
  IN/OUT mixture, ``Pr(x) = 0.5 * ((1 + a) * Pr_OUT(x) + (1 - a))``.

Population side ``Pr(z)``: ``z`` was never trained on, so every reference is OUT on ``z``.
Online, ``Pr(z)`` is the plain average over all references. Offline, it is the same average
followed by the same ``a`` correction as for ``x``: the paper applies one approximation of
``Pr(.) = 0.5 * (Pr_IN + Pr_OUT)`` from OUT models to every point, and applying it to ``x`` only
would give ``Ratio_x`` and ``Ratio_z`` different scales (with ``a < 1`` the correction raises
``Pr``, which lowers every ``Ratio_x`` relative to the uncorrected ``Ratio_z``).

Several queries (augmentations) ``Q``: every quantity above is computed per query, and the score
is the average over queries of the per-query fractions (equivalently the fraction of all
``(z, query)`` pairs with ``LR >= gamma``). The paper also describes a majority vote over
queries per pair ``(x, z)``; that needs the dense ``N x Z`` comparison for every query and is not
offered here. Averaging lets each query be counted by sorting.

Two ways to count, giving identical integer counts (and so identical scores) including ties:

* ``method="sort"`` (``"auto"``): per query, sort the thresholds ``t_z = gamma * Ratio_z`` once
  and count ``#{z : t_z <= Ratio_x}`` with ``np.searchsorted(..., side="right")``:
  ``O((N + Z) log Z)`` per query.
* ``method="dense"``: the reference formulation, the ``N x Z`` comparison
  ``Ratio_x >= t_z`` built ``chunk_size`` rows of ``x`` at a time.

Both paths compare ``Ratio_x`` against the *same* float64 array ``t_z`` (no division by
``gamma``), so ``LR(x, z) >= gamma`` is decided by one IEEE comparison in either path.

Zero probabilities (e.g. float32 underflow): ``Ratio = p / Pr`` with ``p / 0 = +inf`` for
``p > 0`` and ``0 / 0 = 1`` (target and references agree: no evidence either way). Ratios are
therefore in ``[0, +inf]`` and never NaN; ``Ratio_z = 0`` makes ``LR(x, z) = +inf`` for every
``x`` (the comparison ``Ratio_x >= gamma * 0`` always holds). In offline mode with ``a < 1`` the
corrected ``Pr`` is at least ``(1 - a) / 2 > 0``.

The attack itself is host-side NumPy (float64): it sorts and selects per-example subsets of
references, which does not suit ``jit``. :func:`true_class_probs`, which turns logits into its
inputs, is JAX and works under ``jit`` and ``vmap``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation as V
from hampjax.metrics.roc import auc
from hampjax.scores import true_class_log_prob

__all__ = [
    "true_class_probs",
    "rmia",
    "tune_offline_a",
]

_AGGREGATES = ("mean", "trimmed_mean")
_METHODS = ("auto", "sort", "dense")
_DEFAULT_A_GRID = tuple(i / 10 for i in range(11))


def true_class_probs(
    logits: jax.Array, labels: jax.Array, *, temperature: float = 1.0
) -> jax.Array:
    """True-class probability of ``softmax(logits / temperature)``, computed in log space.

    ``exp(log_softmax(logits / T)[label])``: finite for logits of any magnitude (no overflow,
    no NaN). Float32 saturation: a float32 probability rounds to exactly ``1.0`` once the
    loss ``-log p`` is at most ``2**-25`` (about ``3e-8``), and to exactly ``0.0`` once
    ``log p`` is below about ``-87.3`` (the smallest normal float32; XLA flushes subnormals to
    zero). Confident members of an overfit model then all tie at ``p = 1`` and RMIA can no
    longer rank them. Use a temperature ``> 1`` or float64
    logits (``jax.config.update("jax_enable_x64", True)``) to keep them apart.

    Args:
      logits: ``[..., C]`` float logits, e.g. ``predict_many``'s ``[M, N, Q, C]``.
      labels: ``[...]`` integer labels in ``[0, C)``, shape ``logits.shape[:-1]`` (broadcast a
        ``[N]`` label vector with ``np.broadcast_to(labels[None, :, None], (M, N, Q))``).
      temperature: softmax temperature ``> 0`` (``1`` is the plain softmax).

    Returns:
      ``[...]`` probabilities in ``[0, 1]``, dtype of ``logits``.

    Raises:
      ValueError: if ``logits``/``labels`` have mismatched shapes, labels outside ``[0, C)``, or
        ``temperature`` is not a finite number ``> 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> logits = jnp.array([[0.0, 0.0], [2.0, 0.0]])
      >>> true_class_probs(logits, jnp.array([1, 0])).tolist()
      [0.5, 0.8807...]
      >>> float(true_class_probs(jnp.array([30.0, 0.0]), jnp.array(0)))  # float32 saturates
      1.0
      >>> float(true_class_probs(jnp.array([30.0, 0.0]), jnp.array(0), temperature=10.0))
      0.95257...
    """
    V.check_logits_labels(logits, labels)
    V.check_scalar("temperature", temperature, allowed="(0, inf)")
    V.check_positive("temperature", temperature)
    return jnp.exp(true_class_log_prob(logits / temperature, labels))


# --------------------------------------------------------------------------------------------
# Validation


def _check_probs(name: str, x: Any) -> np.ndarray:
    V.check_in_range(name, x, 0.0, 1.0, low_inclusive=True, high_inclusive=True)
    return np.asarray(x, dtype=np.float64)


def _check_settings(
    a: Any, gamma: Any, aggregate: Any, trim: Any, method: Any, chunk_size: Any
) -> int:
    V.check_scalar("a", a, allowed="[0, 1]")
    V.check_in_range("a", a, 0.0, 1.0, high_inclusive=True)
    V.check_scalar("gamma", gamma, allowed="(0, inf)")
    V.check_positive("gamma", gamma)
    V.check_choice("aggregate", aggregate, _AGGREGATES)
    V.check_scalar("trim", trim, allowed="[0, 0.5)")
    V.check_in_range("trim", trim, 0.0, 0.5)
    V.check_choice("method", method, _METHODS)
    return V.check_positive_int("chunk_size", chunk_size)


def _check_inputs(target_probs_x, ref_probs_x, ref_keep, target_probs_z, ref_probs_z):
    V.check_ndim("target_probs_x", target_probs_x, 2)
    n, q = V.shape_of(target_probs_x)
    if n == 0 or q == 0:
        raise ValueError(f"target_probs_x must have shape [N, Q] with N >= 1 and Q >= 1, got {(n, q)}")
    V.check_ndim("ref_probs_x", ref_probs_x, 3)
    r = V.shape_of(ref_probs_x)[0]
    if r == 0:
        raise ValueError("ref_probs_x must hold R >= 1 reference models, got shape "
                         f"{V.shape_of(ref_probs_x)}")
    V.check_shape("ref_probs_x", ref_probs_x, (r, n, q), what="[R, N, Q]")
    V.check_mask("ref_keep", ref_keep, (r, n))
    V.check_ndim("target_probs_z", target_probs_z, 2)
    nz = V.shape_of(target_probs_z)[0]
    if nz == 0:
        raise ValueError(f"target_probs_z must hold Z >= 1 population samples, got shape "
                         f"{V.shape_of(target_probs_z)}")
    V.check_shape("target_probs_z", target_probs_z, (nz, q), what="[Z, Q]")
    V.check_shape("ref_probs_z", ref_probs_z, (r, nz, q), what="[R, Z, Q]")
    return (
        _check_probs("target_probs_x", target_probs_x),
        _check_probs("ref_probs_x", ref_probs_x),
        np.asarray(ref_keep),
        _check_probs("target_probs_z", target_probs_z),
        _check_probs("ref_probs_z", ref_probs_z),
    )


def _check_has_out(ref_keep: np.ndarray) -> None:
    no_out = ~np.any(~ref_keep, axis=0)
    if np.any(no_out):
        first = int(np.flatnonzero(no_out)[0])
        raise ValueError(
            "offline RMIA needs at least one OUT reference (ref_keep False) for every example; "
            f"ref_keep is True for all references on {int(no_out.sum())} example(s), e.g. index "
            f"{first}. Use online=True or add references"
        )


# --------------------------------------------------------------------------------------------
# Computation


def _reference_average(
    probs: np.ndarray, use: np.ndarray | None, aggregate: str, trim: float
) -> np.ndarray:
    """(Trimmed) mean over axis 0 of ``probs [R, N, Q]`` restricted to ``use [R, N]``.

    The trimmed mean drops ``int(trim * k)`` values from each end of the ``k`` selected values
    (``scipy.stats.trim_mean``'s rule). Returns ``[N, Q]``.
    """
    r = probs.shape[0]
    if use is None:
        use = np.ones(probs.shape[:2], dtype=bool)
    use3 = np.broadcast_to(use[:, :, None], probs.shape)
    k = use.sum(axis=0)[:, None]  # [N, 1] selected references per example
    if aggregate == "mean":
        return np.where(use3, probs, 0.0).sum(axis=0) / k
    ordered = np.sort(np.where(use3, probs, np.inf), axis=0)  # unused references sort last
    cut = np.floor(trim * k).astype(np.int64)
    rank = np.arange(r)[:, None, None]
    keep = (rank >= cut[None]) & (rank < (k - cut)[None])
    return np.where(keep, ordered, 0.0).sum(axis=0) / (k - 2 * cut)


def _correct(pr_out: np.ndarray, a: float) -> np.ndarray:
    """Offline correction ``Pr = 0.5 * ((1 + a) * Pr_OUT + (1 - a))``."""
    return 0.5 * ((1.0 + a) * pr_out + (1.0 - a))


def _ratio(p: np.ndarray, pr: np.ndarray) -> np.ndarray:
    """``p / pr`` with ``p / 0 = inf`` (``p > 0``) and ``0 / 0 = 1``."""
    safe = np.where(pr > 0, pr, 1.0)
    return np.where(pr > 0, p / safe, np.where(p > 0, np.inf, 1.0))


def _count_sort(ratio_x: np.ndarray, thresh_z: np.ndarray) -> np.ndarray:
    """``counts[n, q] = #{z : thresh_z[z, q] <= ratio_x[n, q]}`` by sorting and binary search."""
    ordered = np.sort(thresh_z, axis=0)
    counts = np.empty(ratio_x.shape, dtype=np.int64)
    for j in range(ratio_x.shape[1]):
        counts[:, j] = np.searchsorted(ordered[:, j], ratio_x[:, j], side="right")
    return counts


def _count_dense(ratio_x: np.ndarray, thresh_z: np.ndarray, chunk_size: int) -> np.ndarray:
    """Same counts from the dense comparison, ``chunk_size`` rows of x at a time."""
    counts = np.empty(ratio_x.shape, dtype=np.int64)
    for start in range(0, ratio_x.shape[0], chunk_size):
        block = ratio_x[start : start + chunk_size]  # [B, Q]
        counts[start : start + chunk_size] = np.sum(block[:, None, :] >= thresh_z[None, :, :], axis=1)
    return counts


def _scores(ratio_x, ratio_z, gamma, method, chunk_size) -> np.ndarray:
    thresh_z = gamma * ratio_z  # one array for both paths: exact agreement on ties
    if method == "dense":
        counts = _count_dense(ratio_x, thresh_z, chunk_size)
    else:
        counts = _count_sort(ratio_x, thresh_z)
    num_z, num_q = ratio_z.shape
    return counts.sum(axis=1) / float(num_z * num_q)


def rmia(
    target_probs_x: Any,
    ref_probs_x: Any,
    ref_keep: Any,
    target_probs_z: Any,
    ref_probs_z: Any,
    *,
    online: bool = True,
    a: float = 0.3,
    gamma: float = 1.0,
    aggregate: str = "mean",
    trim: float = 0.2,
    method: str = "auto",
    chunk_size: int = 1024,
) -> np.ndarray:
    """RMIA membership scores: the fraction of population samples each candidate dominates.

    See the module docstring for the formulas, the offline correction applied to both sides,
    the averaging over queries and the zero-probability conventions.

    Args:
      target_probs_x: ``[N, Q]`` target model's true-class probability of each candidate for
        each query (e.g. from :func:`true_class_probs`), in ``[0, 1]``.
      ref_probs_x: ``[R, N, Q]`` the same from ``R >= 1`` reference models.
      ref_keep: ``[R, N]`` bool; ``ref_keep[r, n]`` is True iff reference ``r`` trained on
        candidate ``n``.
      target_probs_z: ``[Z, Q]`` target's true-class probability of the population samples
        (held-out non-members, never trained on by any model).
      ref_probs_z: ``[R, Z, Q]`` the same from the references (all OUT on ``z``).
      online: True: ``Pr(x)`` averages all references. False: OUT references only, then the
        ``a`` correction (on both ``Pr(x)`` and ``Pr(z)``).
      a: offline correction in ``[0, 1]`` (the paper's default 0.3; ``a = 1`` is no
        correction); ignored when ``online``. See :func:`tune_offline_a`.
      gamma: threshold ``> 0`` on ``LR(x, z)`` (the paper uses 1 or 2).
      aggregate: ``"mean"`` or ``"trimmed_mean"`` over references.
      trim: fraction in ``[0, 0.5)`` cut from each end for ``"trimmed_mean"``
        (``scipy.stats.trim_mean``'s rule); ignored for ``"mean"``.
      method: ``"auto"`` (= ``"sort"``), ``"sort"`` or ``"dense"``; all give identical
        scores. Performance setting only.
      chunk_size: rows of ``x`` per block of the dense path (memory ``chunk_size * Z * Q``
        bytes); ignored by the sort path. Performance setting only.

    Returns:
      float64 ``[N]`` scores in ``[0, 1]``: the fraction of ``(z, query)`` pairs with
      ``LR(x, z) >= gamma``; a multiple of ``1 / (Z * Q)``.

    Raises:
      ValueError: on wrong shapes or ranks, ``N``, ``Q``, ``R`` or ``Z`` of 0, probabilities
        outside ``[0, 1]`` or NaN, ``ref_keep`` not a bool mask, ``online`` not a bool,
        ``a`` outside ``[0, 1]``, ``gamma <= 0`` or not finite, ``trim`` outside ``[0, 0.5)``,
        unknown ``aggregate`` / ``method``, ``chunk_size < 1``, or (offline) a candidate that
        every reference trained on (``ref_keep`` all True in its column).

    Example:
      >>> import numpy as np
      >>> target_x = np.array([[0.9], [0.15]])                 # N=2 candidates, Q=1
      >>> ref_x = np.array([[[0.5], [0.4]], [[0.6], [0.2]]])  # R=2 references
      >>> keep = np.array([[True, False], [False, True]])
      >>> target_z = np.array([[0.5], [0.4], [0.05]])         # Z=3 population samples
      >>> ref_z = np.array([[[0.5], [0.5], [0.4]], [[0.5], [0.3], [0.1]]])
      >>> rmia(target_x, ref_x, keep, target_z, ref_z).tolist()
      [1.0, 0.333...]
      >>> rmia(target_x, ref_x, keep, target_z, ref_z, online=False).tolist()
      [1.0, 0.333...]
    """
    tx, rx, keep, tz, rz = _check_inputs(
        target_probs_x, ref_probs_x, ref_keep, target_probs_z, ref_probs_z
    )
    online = V.check_bool("online", online)
    chunk_size = _check_settings(a, gamma, aggregate, trim, method, chunk_size)
    a, gamma, trim = float(a), float(gamma), float(trim)
    if online:
        pr_x = _reference_average(rx, None, aggregate, trim)
        pr_z = _reference_average(rz, None, aggregate, trim)
    else:
        _check_has_out(keep)
        pr_x = _correct(_reference_average(rx, ~keep, aggregate, trim), a)
        pr_z = _correct(_reference_average(rz, None, aggregate, trim), a)
    return _scores(_ratio(tx, pr_x), _ratio(tz, pr_z), gamma, method, chunk_size)


def tune_offline_a(
    ref_probs_x: Any,
    ref_keep: Any,
    ref_probs_z: Any,
    *,
    target_index: int = 0,
    grid: Any = _DEFAULT_A_GRID,
    gamma: float = 1.0,
    aggregate: str = "mean",
    trim: float = 0.2,
    method: str = "auto",
    chunk_size: int = 1024,
) -> float:
    """Choose offline RMIA's ``a`` by attacking one reference model whose membership is known.

    Reference ``target_index`` plays the target and the other ``R - 1`` references play the
    references; offline RMIA is run for each ``a`` in ``grid`` and the ``a`` with the highest
    AUC (:func:`hampjax.metrics.auc`) against ``ref_keep[target_index]`` is returned (the first
    in ``grid`` order on ties). Candidates that every remaining reference trained on (no OUT
    reference left) are left out of the AUC. The OUT averages are computed once; each grid
    point costs one correction and one sort-and-count.

    Args:
      ref_probs_x: ``[R, N, Q]`` true-class probabilities of the candidates under ``R >= 2``
        reference models.
      ref_keep: ``[R, N]`` bool membership of the candidates in each reference.
      ref_probs_z: ``[R, Z, Q]`` the same for the population samples (OUT for all).
      target_index: which reference plays the target, in ``[0, R - 1]``.
      grid: 1-D non-empty sequence of candidate values in ``[0, 1]`` (default 0, 0.1, ..., 1).
      gamma, aggregate, trim, method, chunk_size: as in :func:`rmia`.

    Returns:
      The best ``a`` as a Python float.

    Raises:
      ValueError: on the checks of :func:`rmia`; ``R < 2``; ``target_index`` out of range; a
        bad ``grid``; or if the candidates that keep an OUT reference do not include both
        members and non-members of reference ``target_index``.

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> keep = rng.random((4, 200)) < 0.5
      >>> base = rng.random((1, 200, 1)) * 0.5
      >>> ref_x = np.clip(base + 0.3 * keep[:, :, None] + 0.05 * rng.random((4, 200, 1)), 0, 1)
      >>> ref_z = rng.random((4, 50, 1)) * 0.5
      >>> 0.0 <= tune_offline_a(ref_x, keep, ref_z) <= 1.0
      True
    """
    V.check_ndim("ref_probs_x", ref_probs_x, 3)
    r = V.shape_of(ref_probs_x)[0]
    if r < 2:
        raise ValueError(f"ref_probs_x must hold R >= 2 reference models to tune a, got R={r}")
    target_index = V.check_int_in_range("target_index", target_index, 0, r - 1)
    V.check_ndim("ref_probs_z", ref_probs_z, 3)
    grid_arr = np.atleast_1d(np.asarray(grid, dtype=np.float64))
    if grid_arr.ndim != 1 or grid_arr.size == 0:
        raise ValueError(
            f"grid must be a non-empty 1-D sequence of values in [0, 1], got shape {grid_arr.shape}"
        )
    V.check_in_range("grid", grid_arr, 0.0, 1.0, high_inclusive=True)
    others = np.arange(r) != target_index
    rx = np.asarray(ref_probs_x)
    rz = np.asarray(ref_probs_z)
    keep = np.asarray(ref_keep)
    V.check_mask("ref_keep", ref_keep, V.shape_of(ref_probs_x)[:2])
    tx, rx_o, keep_o, tz, rz_o = _check_inputs(
        rx[target_index], rx[others], keep[others], rz[target_index], rz[others]
    )
    chunk_size = _check_settings(float(grid_arr[0]), gamma, aggregate, trim, method, chunk_size)
    gamma, trim = float(gamma), float(trim)

    usable = np.any(~keep_o, axis=0)
    labels = keep[target_index][usable]
    if labels.size == 0 or labels.all() or not labels.any():
        raise ValueError(
            "ref_keep must give reference target_index both members and non-members among the "
            "candidates with an OUT reference left; got "
            f"{int(labels.sum())} member(s) and {int((~labels).sum())} non-member(s)"
        )
    pr_out_x = _reference_average(rx_o[:, usable], ~keep_o[:, usable], aggregate, trim)
    pr_out_z = _reference_average(rz_o, None, aggregate, trim)
    best_a, best_auc = float(grid_arr[0]), -math.inf
    for a in grid_arr:
        scores = _scores(
            _ratio(tx[usable], _correct(pr_out_x, float(a))),
            _ratio(tz, _correct(pr_out_z, float(a))),
            gamma,
            method,
            chunk_size,
        )
        value = auc(scores, labels.astype(np.int8))
        if value > best_auc:
            best_a, best_auc = float(a), value
    return best_a
