"""Leave-one-model-out LiRA: every trained model in turn is the target, all others its shadows.

Membership varies by masks, so every example may have its own number of IN and OUT models.
Evaluation by leave-one-model-out (:func:`leave_one_out`): each trained model in turn is the
target and all others are its shadows; metrics are averaged over targets and pooled
(:func:`leave_one_out_metrics`). Its result is exactly (``assert_array_equal``) that of
:func:`hampjax.attacks.lira`'s core run per target with the target masked out, but computed
for all targets at once: one host sort per example serves every target's median (removing one
score moves an order statistic by at most one slot), and each target's tree sums reuse the
all-model tree, recomputing only the ``log2 M`` nodes above the removed leaf. 128 models x
20,000 examples x 2 queries, all 128 targets: 105.6 s -> ~2.5 s on 2 CPU cores
(``experiments/bench_attacks.py``).

The options (online / offline, fixed / per-example variance, centre, pooling, ``min_std``) and
the arithmetic are those of :mod:`hampjax.attacks.lira`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation
from hampjax.attacks.lira_core import (
    DEFAULT_MIN_MODELS_PER_SIDE,
    DEFAULT_MIN_STD,
    Center,
    OfflineTest,
    PooledStd,
    _check_config,
    _check_scores,
    _check_sides,
    _compute_dtype,
    _count,
    _deviations,
    _first,
    _next_pow2,
    _params_from_moments,
    _score_jit,
    _tree_sum,
    _warn_few_models,
)
from hampjax.metrics import summarize

__all__ = [
    "leave_one_out",
    "leave_one_out_metrics",
    "LeaveOneOutResult",
    "LeaveOneOutMetrics",
    "DEFAULT_LOO_CHUNK_SIZE",
    "DEFAULT_LOO_TARGET_CHUNK_SIZE",
]

# Examples per leave-one-out chunk (a performance setting; results do not depend on it).
DEFAULT_LOO_CHUNK_SIZE = 8192
DEFAULT_LOO_TARGET_CHUNK_SIZE = 32


# --------------------------------------------------------------------------------------------
# Leave-one-model-out, all targets at once (exactly :func:`_lira_core` per target).


def _tree_sums_without(v, models):
    """``[T, ...]``: for each ``t`` in ``models [T]``, :func:`_tree_sum` of ``v [M, ...]`` with
    leaf ``t`` set to ``+0`` - exactly, by recomputing only the path from that leaf (the other
    nodes of the tree are unchanged): ``O(T log M)`` instead of ``O(T M)``."""
    level = jnp.concatenate([v, jnp.zeros((_next_pow2(v.shape[0]) - v.shape[0], *v.shape[1:]), v.dtype)])
    val = jnp.zeros((models.shape[0], *v.shape[1:]), v.dtype)
    idx = models
    while level.shape[0] > 1:
        val = val + level[idx ^ 1]  # the sibling subtree (IEEE addition commutes exactly)
        level = level[0::2] + level[1::2]
        idx = idx >> 1
    return val


def _pack_sorted(x, keep):
    """Host sort of one chunk: ``packed [M, n, Q]`` holds each example's IN scores ascending,
    then its OUT scores ascending; ``pos [M, n, Q]`` (int16 up to 32767 models) is each
    model's slot in it."""
    num_models = x.shape[0]
    by_value = np.argsort(x, axis=0, kind="stable")
    side = np.take_along_axis(np.broadcast_to(~keep[..., None], x.shape), by_value, axis=0)
    perm = np.take_along_axis(by_value, np.argsort(side, axis=0, kind="stable"), axis=0)
    packed = np.take_along_axis(x, perm, axis=0)
    dtype = np.int16 if num_models <= np.iinfo(np.int16).max else np.int32
    pos = np.empty(x.shape, dtype)
    slots = np.broadcast_to(np.arange(num_models, dtype=dtype)[:, None, None], x.shape)
    np.put_along_axis(pos, perm, slots, axis=0)
    return packed, pos


def _median_without(packed, pos, base, count, targets, member):
    """Median ``[T, n, Q]`` of a side (``packed[base : base + count]``, sorted) without each
    target's own score. Removing the copy at sorted slot ``r`` maps order statistic ``i`` to
    ``i + (i >= r)``, so every target's median is one of a few fixed slots per example: the
    values are the same selections as a sort of the reduced set."""
    num_models = packed.shape[0]

    def at(i):  # [n] relative slot -> [n, Q] value
        i = jnp.clip(base + i, 0, num_models - 1)
        return jnp.take_along_axis(packed, i[None, :, None], axis=0)[0]

    r = pos[targets].astype(jnp.int32) - base[None, :, None]  # [T, n, Q]; members only
    lo, hi = jnp.maximum((count - 2) // 2, 0), jnp.maximum((count - 1) // 2, 0)  # k = count - 1
    pick = lambda i, v0, v1: jnp.where(i[None, :, None] >= r, v1[None], v0[None])  # noqa: E731
    with_target = 0.5 * (pick(lo, at(lo), at(lo + 1)) + pick(hi, at(hi), at(hi + 1)))
    without_target = 0.5 * (at((count - 1) // 2) + at(count // 2))  # k = count
    return jnp.where(member[..., None], with_target, without_target[None])


def _loo_moments(x, keep, targets, packed, pos, side_is_in):
    """One side's ``(k, D1, D2, shift, median)`` for every target, ``[T, n(, Q)]``: what
    :func:`_lira_stats` computes for target ``t`` with ``t`` masked out, value for value."""
    w = keep if side_is_in else ~keep
    models = jnp.arange(x.shape[0])[:, None]
    member = w[targets]  # [T, n]: the target is on this side
    first = _first(w)
    not_first = w & (models != first[None])
    shift = jnp.take_along_axis(x, first[None, :, None], axis=0)[0]
    v1, v2 = _deviations(x, w, shift)
    d1, d2 = _tree_sums_without(v1, targets), _tree_sums_without(v2, targets)
    # Without its first model, a side's shift is its second model: one full tree for the
    # one target per example that is that first model.
    shift_b = jnp.take_along_axis(x, _first(not_first)[None, :, None], axis=0)[0]
    u1, u2 = _deviations(x, not_first, shift_b)
    use_b = ((targets[:, None] == first[None, :]) & member)[..., None]
    d1 = jnp.where(use_b, _tree_sum(u1)[None], d1)
    d2 = jnp.where(use_b, _tree_sum(u2)[None], d2)
    shift = jnp.where(use_b, shift_b[None], shift[None])
    count = _count(w)
    k = count[None] - member.astype(jnp.int32)
    median = None
    if packed is not None:
        base = jnp.zeros_like(count) if side_is_in else _count(keep)
        median = _median_without(packed, pos, base, count, targets, member)
    return k, d1, d2, shift, median


@functools.partial(jax.jit, static_argnames=("online",))
def _loo_chunk(x, keep, targets, packed, pos, *, online):
    """Per-target moments of both sides on one chunk of examples."""
    out = {"out": _loo_moments(x, keep, targets, packed, pos, False)}
    if online:
        out["in"] = _loo_moments(x, keep, targets, packed, pos, True)
    return out


@functools.partial(jax.jit, static_argnames=("fix_variance", "center", "pooled_std", "min_std"))
def _loo_params(moments, *, fix_variance, center, pooled_std, min_std):
    return {
        name: _params_from_moments(
            *m, fix_variance=fix_variance, center=center, pooled_std=pooled_std, min_std=min_std
        )
        for name, m in moments.items()
    }


def _leave_one_out_scores(
    scores, keep, targets, *, online, fix_variance, center, offline_test, pooled_std, min_std,
    chunk_size, target_chunk_size,
):
    """``[T, N]`` leave-one-out scores: targets in groups, examples in chunks (host loops)."""
    num_examples = scores.shape[1]
    chunks = []
    for j0 in range(0, num_examples, chunk_size):
        xc, kc = scores[:, j0 : j0 + chunk_size], keep[:, j0 : j0 + chunk_size]
        # Host sort, once per chunk for all target groups (NumPy sorts this layout several
        # times faster than XLA:CPU); sorted values are selections, the same for any sort.
        packed, pos = _pack_sorted(xc, kc) if center == "median" else (None, None)
        chunks.append((jnp.asarray(xc), jnp.asarray(kc), packed, pos))
    rows = []
    for g0 in range(0, len(targets), target_chunk_size):
        group = jnp.asarray(targets[g0 : g0 + target_chunk_size], jnp.int32)
        parts = [_loo_chunk(xc, kc, group, packed, pos, online=online) for xc, kc, packed, pos in chunks]
        moments = jax.tree.map(lambda *a: jnp.concatenate(a, axis=1), *parts)  # None stays None
        params = _loo_params(moments, fix_variance=fix_variance, center=center,
                             pooled_std=pooled_std, min_std=min_std)
        mu_in, sd_in = params.get("in", (None, None))
        mu_out, sd_out = params["out"]
        for i, t in enumerate(np.asarray(group)):
            # The test runs per target, on the same shapes (hence the same program) as lira().
            pick = (lambda a: None) if mu_in is None else (lambda a: a[i])
            rows.append(np.asarray(_score_jit(
                jnp.asarray(scores[t]), pick(mu_in), pick(sd_in), mu_out[i], sd_out[i],
                online=online, offline_test=offline_test,
            )))
    return np.stack(rows)


class LeaveOneOutResult(NamedTuple):
    """Membership scores of several target models, each attacked with all others as shadows.

    Attributes:
      targets: ``[T]`` int64, the target model indices.
      scores: ``[T, N]`` float membership scores (NumPy; higher = more likely member).
      labels: ``[T, N]`` bool, ``keep[targets]`` (True = member of that target).
    """

    targets: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


class LeaveOneOutMetrics(NamedTuple):
    """Attack metrics of a :class:`LeaveOneOutResult`.

    Attributes:
      per_target: one :func:`hampjax.metrics.summarize` dict per target, in order.
      mean: the per-target dicts averaged: numeric entries as the mean over targets (float),
        boolean flags as "any target flagged", strings (``"reading"``) as is.
      pooled: :func:`hampjax.metrics.summarize` of all targets' scores and labels concatenated.
    """

    per_target: list[dict[str, Any]]
    mean: dict[str, Any]
    pooled: dict[str, Any]


def _check_targets(targets: Any, num_models: int) -> np.ndarray:
    if targets is None:
        return np.arange(num_models, dtype=np.int64)
    if isinstance(targets, (int, np.integer)) or not isinstance(targets, (Sequence, np.ndarray)):
        raise ValueError(
            f"targets must be None or a sequence of model indices in [0, {num_models - 1}], "
            f"got {targets!r}"
        )
    out = [
        validation.check_int_in_range(f"targets[{i}]", t, 0, num_models - 1)
        for i, t in enumerate(targets)
    ]
    if not out:
        raise ValueError("targets must name at least 1 model, got an empty sequence")
    if len(set(out)) != len(out):
        raise ValueError(f"targets must not repeat a model, got {out}")
    return np.asarray(out, dtype=np.int64)


def leave_one_out(
    all_scores: jax.Array,
    keep: jax.Array,
    *,
    targets: Sequence[int] | None = None,
    online: bool = True,
    fix_variance: bool = False,
    center: Center = "median",
    offline_test: OfflineTest = "two_sided",
    pooled_std: PooledStd = "within",
    min_std: float = DEFAULT_MIN_STD,
    min_models_per_side: int = DEFAULT_MIN_MODELS_PER_SIDE,
    chunk_size: int = DEFAULT_LOO_CHUNK_SIZE,
    target_chunk_size: int = DEFAULT_LOO_TARGET_CHUNK_SIZE,
) -> LeaveOneOutResult:
    """Leave-one-model-out LiRA: each target in turn, all other models as its shadows.

    The shadows of target ``t`` are selected by masks (IN = ``keep & (m != t)``); the scores
    are exactly those of the per-target computation (see the module docstring), computed for
    ``target_chunk_size`` targets and ``chunk_size`` examples at a time. Memory besides
    ``all_scores``: its chunks on the device, for ``center="median"`` the sorted scores and
    their int16 slots (together ~2.5 copies of ``all_scores``), and ``~10 * target_chunk_size
    * N * Q`` floats of per-target statistics.

    Args:
      all_scores: ``[M, N, Q]`` float logit-scaled scores of ``M >= 2`` trained models.
      keep: ``[M, N]`` bool membership matrix of those models.
      targets: indices of the target models (distinct, in ``[0, M)``); default all ``M``.
      online, fix_variance, center, offline_test, pooled_std, min_std, min_models_per_side:
        as in :func:`lira`.
      chunk_size: examples per step (performance only: the scores do not depend on it).
      target_chunk_size: targets per step (performance only).

    Returns:
      :class:`LeaveOneOutResult` with ``scores [T, N]`` and ``labels = keep[targets]``.
      Compute metrics with :func:`leave_one_out_metrics`.

    Raises:
      ValueError: as :func:`lira`; if ``M < 2``; on bad ``targets``; if, for some target,
        an example lacks OUT (or, online, IN) models among the other models, or the target's
        ``keep`` row does not contain both members and non-members.

    Warns:
      UserWarning: once, as :func:`lira`, counting the models left after removing a target.

    Example:
      >>> rng = np.random.default_rng(0)
      >>> keep = np.argsort(rng.uniform(size=(8, 10)), axis=0) < 4
      >>> scores = rng.normal(size=(8, 10, 2)) + 2.0 * keep[..., None]
      >>> res = leave_one_out(scores, keep, targets=[0, 3], fix_variance=True)
      >>> res.scores.shape, bool((res.labels == keep[[0, 3]]).all())
      ((2, 10), True)
    """
    _check_scores("all_scores", all_scores, 3)
    num_models, num_examples = validation.shape_of(all_scores)[:2]
    if num_models < 2:
        raise ValueError(
            "all_scores must hold at least 2 models (axis 0), got shape "
            f"{validation.shape_of(all_scores)}"
        )
    validation.check_mask("keep", keep, (num_models, num_examples))
    _check_config(online, fix_variance, center, offline_test, pooled_std, min_std, min_models_per_side)
    chunk_size = validation.check_positive_int("chunk_size", chunk_size)
    target_chunk_size = validation.check_positive_int("target_chunk_size", target_chunk_size)
    target_idx = _check_targets(targets, num_models)
    keep_np = np.asarray(keep)
    labels = keep_np[target_idx]
    for t, row in zip(target_idx, labels):
        validation.check_binary_labels(row, name=f"keep[{int(t)}]")
    in_counts = keep_np.sum(axis=0)[None, :] - labels  # [T, N], target removed
    out_counts = (num_models - 1) - in_counts
    for t, ic, oc in zip(target_idx, in_counts, out_counts):
        _check_sides(ic, oc, online, f" for target model {int(t)}")
    _warn_few_models(in_counts, out_counts, online, fix_variance, min_models_per_side)

    host = np.asarray(all_scores)
    dtype = np.dtype(_compute_dtype(jnp.zeros((), jax.dtypes.canonicalize_dtype(host.dtype))))
    scores = _leave_one_out_scores(
        host.astype(dtype, copy=False),
        keep_np,
        target_idx,
        online=bool(online),
        fix_variance=bool(fix_variance),
        center=center,
        offline_test=offline_test,
        pooled_std=pooled_std,
        min_std=float(min_std),
        chunk_size=chunk_size,
        target_chunk_size=target_chunk_size,
    )
    return LeaveOneOutResult(targets=target_idx, scores=scores, labels=labels)


def _average(dicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in dicts[0]:
        values = [d[key] for d in dicts]
        if isinstance(values[0], (bool, np.bool_)):
            out[key] = bool(any(values))
        elif isinstance(values[0], (int, float, np.integer, np.floating)):
            out[key] = float(np.mean(values))
        else:
            out[key] = values[0]
    return out


def leave_one_out_metrics(
    result: LeaveOneOutResult,
    *,
    fprs: Sequence[float] = (0.0, 1e-5, 1e-4, 1e-3, 1e-2),
    fnrs: Sequence[float] = (1e-3,),
    strict: bool = True,
) -> LeaveOneOutMetrics:
    """Metrics of a leave-one-model-out run: per target, averaged over targets, and pooled.

    Args:
      result: output of :func:`leave_one_out`.
      fprs, fnrs, strict: passed to :func:`hampjax.metrics.summarize`.

    Returns:
      :class:`LeaveOneOutMetrics` (``per_target``, ``mean``, ``pooled``), every dict with the
      keys of :func:`hampjax.metrics.summarize`.

    Raises:
      ValueError: if ``result`` is not a :class:`LeaveOneOutResult`, or as
        :func:`hampjax.metrics.summarize`.

    Example:
      >>> res = LeaveOneOutResult(np.array([0, 1]), np.array([[2.0, 1.0], [1.0, 2.0]]),
      ...                         np.array([[True, False], [False, True]]))
      >>> m = leave_one_out_metrics(res, fprs=(0.0,))
      >>> m.mean["auc"], m.pooled["auc"], len(m.per_target)
      (1.0, 1.0, 2)
    """
    if not isinstance(result, LeaveOneOutResult):
        raise ValueError(f"result must be a LeaveOneOutResult, got {type(result).__name__}")
    kwargs = dict(fprs=fprs, fnrs=fnrs, strict=strict)
    per_target = [summarize(s, l.astype(np.int8), **kwargs) for s, l in zip(result.scores, result.labels)]
    pooled = summarize(result.scores.ravel(), result.labels.ravel().astype(np.int8), **kwargs)
    return LeaveOneOutMetrics(per_target=per_target, mean=_average(per_target), pooled=pooled)
