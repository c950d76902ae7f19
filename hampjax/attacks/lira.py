"""LiRA: the likelihood-ratio membership inference attack (Carlini et al., S&P 2022).

For every example ``j`` and query ``q`` (e.g. an image and its mirror), the logit-scaled
scores (:func:`hampjax.scores.logit_scaled_score`) of shadow models that trained on ``j``
("IN", ``keep[:, j]``) and of those that did not ("OUT") are each summarised by a Gaussian:
a centre (the median across models, as in the reference code, or the mean) and a standard
deviation. The target model's score ``s`` is then scored (higher = more likely member):

* online: ``mean_q [log N(s; mu_in, sd_in) - log N(s; mu_out, sd_out)]``;
* offline, ``offline_test="two_sided"`` (reference code, default):
  ``mean_q [-log N(s; mu_out, sd_out)]``. Examples whose score is unusually LOW for a
  non-member also look like members;
* offline, ``offline_test="one_sided"`` (the paper): ``mean_q [-log P(S >= s)]`` with
  ``S ~ N(mu_out, sd_out)``, computed as ``-log_ndtr((mu_out - s) / sd_out)``. It is a
  monotone transform of the paper's ``Pr[S < s]`` (same ranking with one query) that keeps
  its resolution in the far upper tail where the CDF rounds to 1.

Which offline test is "right" is disputed (tensorflow/privacy#598); both are offered.

Standard deviations. ``fix_variance=False``: per example and query, the population std
(``ddof=0``) of that side's scores about their mean (also when ``center="median"``, as in the
reference). ``fix_variance=True``: one std per query and side, pooled over all examples
(recommended with fewer than ~32 models per side; a ``UserWarning`` says so, nothing switches
silently). Two poolings (``pooled_std=``):

* ``"within"`` (default): ``sqrt(mean over all IN (resp. OUT) entries (m, j) of
  (s[m, j] - mean_j)^2)``, the pooled within-example spread, i.e. the count-weighted mean of
  the per-example variances;
* ``"global"``: the std of all raw IN (resp. OUT) scores of that query about their grand
  mean, as the reference code does (it includes the between-example spread of the centres,
  which makes the test much wider). Differences from the reference code: it also pools over
  queries (identical with one query, as in HAMP), uses the IN std for both sides in the
  online fixed-variance test, and truncates every example to the smallest IN/OUT count; we
  pool per query and side and use every shadow model.

Numerical floor: every std is ``max(std, min_std)`` with ``min_std = 1e-6`` by default
(scores are in logit units, whose spread across models is O(0.1 - 10)); it only matters when
all shadow scores of an example coincide (e.g. outputs saturated by a defense). The
reference adds 1e-30 to the std, which is no floor at all in float32. With the floor the
scores stay finite in float32 as long as ``|s - mu| / min_std < 1e19``, i.e. for any score
logits of magnitude up to ~1e12 can produce.

Arithmetic (what defines the values, bit for bit). Per example and query, each side's moments
are taken about the score of that side's first selected model, ``c``: ``D1 = sum w (x - c)``
and ``D2 = sum w (x - c)^2``, mean ``c + D1 / k``, variance ``max(D2 / k - (D1 / k)^2, 0)``
(equal scores give exactly 0, so ``min_std`` decides). Every sum over models or examples is a
pairwise tree sum of a fixed shape, every product is rounded before it is added (XLA:CPU would
otherwise fuse some multiply-adds and not others, depending on the program), and the test
runs as its own program. These are the population mean and std of the two-pass formulas up to
float rounding (relative differences ~1e-6 in float32 from the code before this change).

Membership varies by masks, so every example may have its own number of IN and OUT models.
Evaluation by leave-one-model-out (:func:`leave_one_out`): each trained model in turn is the
target and all others are its shadows; metrics are averaged over targets and pooled. Its result
is exactly (``assert_array_equal``) that of :func:`lira`'s core run per target with the
target masked out, but computed for all targets at once: one host sort per example serves
every target's median (removing one score moves an order statistic by at most one slot), and
each target's tree sums reuse the all-model tree, recomputing only the ``log2 M`` nodes above
the removed leaf. 128 models x 20,000 examples x 2 queries, all 128 targets: 105.6 s -> ~2.5 s
on 2 CPU cores (``experiments/bench_attacks.py``).

Computation is JAX (float32 unless x64 is enabled and the inputs are float64), jitted once
per configuration; :func:`lira` works under ``jit`` and ``vmap`` (value checks that need
concrete arrays, e.g. "every example has an OUT model", are skipped under tracing).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation
from hampjax.metrics import summarize

__all__ = [
    "lira",
    "global_threshold_score",
    "lira_variants",
    "leave_one_out",
    "leave_one_out_metrics",
    "LeaveOneOutResult",
    "LeaveOneOutMetrics",
    "LIRA_VARIANT_NAMES",
    "LIRA_CENTERS",
    "LIRA_OFFLINE_TESTS",
    "LIRA_POOLED_STDS",
    "DEFAULT_MIN_STD",
    "DEFAULT_MIN_MODELS_PER_SIDE",
    "DEFAULT_LOO_CHUNK_SIZE",
    "DEFAULT_LOO_TARGET_CHUNK_SIZE",
]

Center = Literal["median", "mean"]
OfflineTest = Literal["two_sided", "one_sided"]
PooledStd = Literal["within", "global"]

LIRA_CENTERS = ("median", "mean")
LIRA_OFFLINE_TESTS = ("two_sided", "one_sided")
LIRA_POOLED_STDS = ("within", "global")
# The five variants the HAMP authors print, in their order.
LIRA_VARIANT_NAMES = (
    "lira_online",
    "lira_online_fixed_variance",
    "lira_offline",
    "lira_offline_fixed_variance",
    "global_threshold",
)
DEFAULT_MIN_STD = 1e-6
# Rule of thumb: per-example variances only with >= 64 models, i.e. >= 32 per side.
DEFAULT_MIN_MODELS_PER_SIDE = 32
# Examples per leave-one-out chunk (a performance setting; results do not depend on it).
DEFAULT_LOO_CHUNK_SIZE = 8192
DEFAULT_LOO_TARGET_CHUNK_SIZE = 32

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------
# Validation.


def _check_no_empty_axes(name: str, x: Any) -> None:
    """Raise if any axis of ``x`` has length 0 (generic; candidate for validation.py)."""
    shape = validation.shape_of(x)
    if any(d == 0 for d in shape):
        raise ValueError(f"{name} must have every axis of length >= 1, got shape {shape}")


def _check_scores(name: str, x: Any, ndim: int) -> None:
    validation.check_ndim(name, x, ndim)
    _check_no_empty_axes(name, x)
    validation.check_floating(name, x)
    validation.check_finite(name, x)


def _check_config(online, fix_variance, center, offline_test, pooled_std, min_std, min_models_per_side):
    validation.check_choice("online", online, (True, False))
    validation.check_choice("fix_variance", fix_variance, (True, False))
    validation.check_choice("center", center, LIRA_CENTERS)
    validation.check_choice("offline_test", offline_test, LIRA_OFFLINE_TESTS)
    validation.check_choice("pooled_std", pooled_std, LIRA_POOLED_STDS)
    validation.check_scalar("min_std", min_std, allowed="(0, inf)")
    validation.check_positive("min_std", min_std)
    validation.check_positive_int("min_models_per_side", min_models_per_side, minimum=1)


def _check_sides(in_counts: np.ndarray, out_counts: np.ndarray, online: bool, what: str) -> None:
    """Raise unless every example has an OUT model (and an IN model when online).

    ``in_counts``/``out_counts`` are integer arrays ``[..., N]``; ``what`` describes the setting
    for the message (e.g. ``"for target model 3"``).
    """
    checks = [("OUT", out_counts)] + ([("IN", in_counts)] if online else [])
    for side, counts in checks:
        missing = np.argwhere(counts == 0)
        if missing.size:
            flavour = "online and offline" if side == "OUT" else "online"
            example = int(missing[0, -1])
            raise ValueError(
                f"keep must give every example at least 1 {side} shadow model ({flavour} LiRA "
                f"needs it){what}; {len(missing)} example(s) have none, e.g. example {example}"
            )


def _warn_few_models(in_counts, out_counts, online, fix_variance, min_models_per_side) -> None:
    if fix_variance:
        return
    fewest = int(np.min(out_counts))
    if online:
        fewest = min(fewest, int(np.min(in_counts)))
    if fewest < min_models_per_side:
        warnings.warn(
            f"LiRA with per-example variances and only {fewest} shadow model(s) on one side for "
            f"some example (fewer than min_models_per_side={min_models_per_side}); per-example "
            "standard deviations are unreliable with few models: consider fix_variance=True",
            UserWarning,
            stacklevel=3,
        )


def _validate_lira(target_scores, shadow_scores, keep) -> None:
    _check_scores("target_scores", target_scores, 2)
    _check_scores("shadow_scores", shadow_scores, 3)
    m = validation.shape_of(shadow_scores)[0]
    validation.check_shape(
        "shadow_scores",
        shadow_scores,
        (m, *validation.shape_of(target_scores)),
        what="(M, *target_scores.shape)",
    )
    validation.check_mask("keep", keep, validation.shape_of(shadow_scores)[:2])


# --------------------------------------------------------------------------------------------
# Core (jitted; one compilation per configuration and shape).
#
# Every sum over models or examples is a pairwise tree sum (:func:`_tree_sum`) of a fixed
# shape, and every per-example quantity is elementwise, so the same values come out whether a
# program handles one target or many, all examples or a chunk: this is what lets
# :func:`leave_one_out` reuse shared work and still return exactly (bit for bit) what
# :func:`_lira_core` returns for each target.


def _compute_dtype(*arrays) -> jnp.dtype:
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _tree_sum(v, axis: int = 0, size: int | None = None):
    """Pairwise sum over ``axis``: leaves zero-padded to ``size`` (default the next power of
    two), then ``level[0::2] + level[1::2]`` until one node is left. The order of additions
    is fixed by the shape alone."""
    v = jnp.moveaxis(v, axis, 0)
    size = _next_pow2(v.shape[0]) if size is None else size
    if size > v.shape[0]:
        v = jnp.concatenate([v, jnp.zeros((size - v.shape[0], *v.shape[1:]), v.dtype)])
    while v.shape[0] > 1:
        v = v[0::2] + v[1::2]
    return v[0]


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


def _count(w):
    return jnp.sum(w, axis=0, dtype=jnp.int32)


def _product(x):
    """Materialize a product before it is added to anything. XLA:CPU contracts ``a * b + c``
    into one fused multiply-add whenever both land in one fused loop, which depends on the
    surrounding program; the barrier makes every such sum round the product first, in every
    program."""
    return jax.lax.optimization_barrier(x)


def _kf(k, dtype):
    return jnp.maximum(k, 1).astype(dtype)[..., None]


def _first(w):
    return jnp.argmax(w, axis=0)  # the first selected model (0 if none)


def _side_shift(x, w):
    """``[N, Q]``: the score of the side's first selected model, the point the moments are
    taken about (a value of the side itself: equal scores give exactly zero variance)."""
    return jnp.take_along_axis(x, _first(w)[None, :, None], axis=0)[0]


def _deviations(x, w, shift):
    """Leaves ``where(w, d, 0)`` and ``where(w, d^2, 0)`` with ``d = x - shift``."""
    d = x - shift[None]
    wq = w[:, :, None]
    return jnp.where(wq, d, 0.0), jnp.where(wq, _product(d * d), 0.0)


def _masked_median(x, w, k):
    num_models = x.shape[0]
    ordered = jnp.sort(jnp.where(w[:, :, None], x, jnp.inf), axis=0)
    shape = (1, *x.shape[1:])
    lo = jnp.broadcast_to(jnp.clip((k - 1) // 2, 0, num_models - 1)[None, :, None], shape)
    hi = jnp.broadcast_to(jnp.clip(k // 2, 0, num_models - 1)[None, :, None], shape)
    return 0.5 * (jnp.take_along_axis(ordered, lo, axis=0)[0] + jnp.take_along_axis(ordered, hi, axis=0)[0])


def _within_terms(k, d1, d2):
    """Per example ``sum_m w (x - mean)^2 = D2 - D1^2 / k`` (pooled ``"within"`` std)."""
    return d2 - _product(d1 * (d1 / _kf(k, d1.dtype)))


def _grand_terms(k, d1, shift):
    """Per example ``sum_m w x = k * shift + D1`` (grand mean of the ``"global"`` std)."""
    return _product(k.astype(d1.dtype)[..., None] * shift) + d1


def _global_terms(k, d1, d2, shift, grand):
    """Per example ``sum_m w (x - grand)^2`` (``grand [..., Q]``)."""
    e = shift - grand[..., None, :]
    return d2 + _product(2.0 * e * d1) + _product(k.astype(d1.dtype)[..., None] * e * e)


def _side_params(k, d1, d2, shift, median, pooled_var, *, center, min_std):
    """Centre and std ``[..., N, Q]`` from the side's moments about ``shift``.

    ``k [..., N]`` counts; ``d1``/``d2`` the sums of ``x - shift`` and its square;
    ``median`` (or None with ``center="mean"``); ``pooled_var [..., Q]`` or None for
    per-example variances. Examples with no selected model get NaN (only under tracing).
    """
    dtype = d1.dtype
    m1 = d1 / _kf(k, dtype)
    centre = shift + m1 if center == "mean" else median
    if pooled_var is None:
        var = jnp.maximum(d2 / _kf(k, dtype) - _product(m1 * m1), 0.0)
    else:
        var = jnp.broadcast_to(pooled_var[..., None, :], d1.shape)
    std = jnp.maximum(jnp.sqrt(var), jnp.asarray(min_std, dtype))
    empty = (k == 0)[..., None]
    nan = jnp.asarray(jnp.nan, dtype)
    return jnp.where(empty, nan, centre), jnp.where(empty, nan, std)


def _pooled_total(k, dtype):
    return jnp.maximum(jnp.sum(k, axis=-1), 1).astype(dtype)[..., None]  # [..., 1]


def _params_from_moments(k, d1, d2, shift, median, *, fix_variance, center, pooled_std, min_std):
    """Centre and std ``[..., N, Q]`` of one side from its moments (pooling over all ``N``)."""
    pooled = None
    if fix_variance:
        total = _pooled_total(k, d1.dtype)
        if pooled_std == "within":
            pooled = _tree_sum(_within_terms(k, d1, d2), axis=-2) / total
        else:
            grand = _tree_sum(_grand_terms(k, d1, shift), axis=-2) / total
            pooled = _tree_sum(_global_terms(k, d1, d2, shift, grand), axis=-2) / total
    return _side_params(k, d1, d2, shift, median, pooled, center=center, min_std=min_std)


def _normal_logpdf(s, mu, sd):
    z = (s - mu) / sd
    return _product(-0.5 * jnp.square(z)) - jnp.log(sd) - _HALF_LOG_2PI


def _score(target, mu_in, sd_in, mu_out, sd_out, *, online, offline_test):
    """``[..., N]`` membership scores: the per-query test summed in query order, / Q."""
    if online:
        per_query = _normal_logpdf(target, mu_in, sd_in) - _normal_logpdf(target, mu_out, sd_out)
    elif offline_test == "two_sided":
        per_query = -_normal_logpdf(target, mu_out, sd_out)
    else:  # "one_sided": -log P(S >= s), S ~ N(mu_out, sd_out).
        per_query = -jax.scipy.special.log_ndtr((mu_out - target) / sd_out)
    total = per_query[..., 0]
    for q in range(1, per_query.shape[-1]):
        total = total + per_query[..., q]
    return total / per_query.shape[-1]


@functools.partial(jax.jit, static_argnames=("online", "offline_test"))
def _score_jit(target, mu_in, sd_in, mu_out, sd_out, *, online, offline_test):
    # A program of its own, shared by one target and by many: the values do not depend on
    # how XLA would fuse the test with the statistics in a larger program.
    return _score(target, mu_in, sd_in, mu_out, sd_out, online=online, offline_test=offline_test)


@functools.partial(
    jax.jit, static_argnames=("online", "fix_variance", "center", "pooled_std", "min_std")
)
def _lira_stats(shadows, in_mask, out_mask, *, online, fix_variance, center, pooled_std, min_std):
    """``(mu_in, sd_in, mu_out, sd_out)``, each ``[N, Q]`` (the IN pair None offline)."""

    def side(mask):
        shift = _side_shift(shadows, mask)
        k = _count(mask)
        v1, v2 = _deviations(shadows, mask, shift)
        median = _masked_median(shadows, mask, k) if center == "median" else None
        return _params_from_moments(
            k, _tree_sum(v1), _tree_sum(v2), shift, median, fix_variance=fix_variance, center=center,
            pooled_std=pooled_std, min_std=min_std,
        )

    mu_in, sd_in = side(in_mask) if online else (None, None)
    return (mu_in, sd_in, *side(out_mask))


def _lira_core(
    target,
    shadows,
    in_mask,
    out_mask,
    *,
    online,
    fix_variance,
    center,
    offline_test,
    pooled_std,
    min_std,
):
    """One target: ``target [N, Q]``, ``shadows [M, N, Q]``, masks ``[M, N]`` -> ``[N]``.

    Two jitted programs (statistics, then the test).
    """
    dtype = _compute_dtype(target, shadows)
    stats = _lira_stats(
        jnp.asarray(shadows).astype(dtype), in_mask, out_mask, online=online,
        fix_variance=fix_variance, center=center, pooled_std=pooled_std, min_std=min_std,
    )
    return _score_jit(jnp.asarray(target).astype(dtype), *stats, online=online, offline_test=offline_test)


# --------------------------------------------------------------------------------------------
# Leave-one-model-out, all targets at once (exactly :func:`_lira_core` per target).


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


# --------------------------------------------------------------------------------------------
# Public API.


def lira(
    target_scores: jax.Array,
    shadow_scores: jax.Array,
    keep: jax.Array,
    *,
    online: bool = True,
    fix_variance: bool = False,
    center: Center = "median",
    offline_test: OfflineTest = "two_sided",
    pooled_std: PooledStd = "within",
    min_std: float = DEFAULT_MIN_STD,
    min_models_per_side: int = DEFAULT_MIN_MODELS_PER_SIDE,
) -> jax.Array:
    """LiRA membership scores of one target model (higher = more likely member).

    See the module docstring for the exact formulas of every option.

    Args:
      target_scores: ``[N, Q]`` float, the target model's logit-scaled scores
        (:func:`hampjax.scores.logit_scaled_score`) of ``N`` examples under ``Q`` queries.
      shadow_scores: ``[M, N, Q]`` float, the same scores from ``M`` shadow models.
      keep: ``[M, N]`` bool, ``keep[m, j]`` iff shadow ``m`` trained on example ``j``. Counts
        may differ between examples.
      online: use the IN and OUT Gaussians (True) or only the OUT one (False, offline).
      fix_variance: one std per query and side pooled over examples (True) or one per
        example (False).
      center: ``"median"`` (reference) or ``"mean"`` across models.
      offline_test: ``"two_sided"`` (reference; ``-log N(s; mu_out, sd_out)``) or
        ``"one_sided"`` (paper; ``-log P(S >= s)``). Ignored when ``online``.
      pooled_std: ``"within"`` or ``"global"`` pooling when ``fix_variance`` (see module
        docstring). Ignored otherwise.
      min_std: floor on every std, ``> 0`` (default ``1e-6``).
      min_models_per_side: with ``fix_variance=False``, warn when some example has fewer
        IN (online) or OUT shadow models than this (default 32).

    Returns:
      ``[N]`` float32 (float64 under x64 with float64 inputs) membership scores.

    Raises:
      ValueError: on inconsistent shapes (``target_scores [N, Q]``, ``shadow_scores
        [M, N, Q]``, ``keep [M, N]``), a non-boolean ``keep``, empty axes, non-float or
        non-finite scores, an unknown option, or (concrete ``keep`` only) an example without
        OUT shadow models, or without IN shadow models when ``online``.

    Warns:
      UserWarning: per-example variances with fewer than ``min_models_per_side`` models on
        a side (concrete ``keep`` only).

    Example:
      >>> import numpy as np
      >>> shadows = np.array([[[2.0]], [[4.0]], [[-1.0]], [[1.0]]])  # M=4, N=1, Q=1
      >>> keep = np.array([[True], [True], [False], [False]])
      >>> target = np.array([[3.0]])  # the IN centre: mu_in=3, mu_out=0, sd=1 on both sides
      >>> round(float(lira(target, shadows, keep, min_models_per_side=1)[0]), 3)
      4.5
    """
    _validate_lira(target_scores, shadow_scores, keep)
    _check_config(online, fix_variance, center, offline_test, pooled_std, min_std, min_models_per_side)
    keep_arr = jnp.asarray(keep)
    if validation.is_concrete(keep):
        keep_np = np.asarray(keep)
        in_counts = keep_np.sum(axis=0)
        out_counts = keep_np.shape[0] - in_counts
        _check_sides(in_counts, out_counts, online, "")
        _warn_few_models(in_counts, out_counts, online, fix_variance, min_models_per_side)
    return _lira_core(
        jnp.asarray(target_scores),
        jnp.asarray(shadow_scores),
        keep_arr,
        ~keep_arr,
        online=bool(online),
        fix_variance=bool(fix_variance),
        center=center,
        offline_test=offline_test,
        pooled_std=pooled_std,
        min_std=float(min_std),
    )


def global_threshold_score(target_scores: jax.Array) -> jax.Array:
    """The global-threshold baseline: the raw score averaged over queries.

    Args:
      target_scores: ``[N, Q]`` float, the target model's logit-scaled scores.

    Returns:
      ``[N]`` float scores (higher = more likely member).

    Raises:
      ValueError: if ``target_scores`` is not a 2-D float array with non-empty axes and
        finite values.

    Example:
      >>> global_threshold_score(np.array([[1.0, 3.0], [0.0, -1.0]]))
      Array([ 2. , -0.5], dtype=float32)
    """
    _check_scores("target_scores", target_scores, 2)
    x = jnp.asarray(target_scores)
    return jnp.mean(x.astype(_compute_dtype(x)), axis=-1)


def lira_variants(
    target_scores: jax.Array,
    shadow_scores: jax.Array,
    keep: jax.Array,
    *,
    center: Center = "median",
    offline_test: OfflineTest = "two_sided",
    pooled_std: PooledStd = "within",
    min_std: float = DEFAULT_MIN_STD,
    min_models_per_side: int = DEFAULT_MIN_MODELS_PER_SIDE,
) -> dict[str, jax.Array]:
    """The five score sets the HAMP authors print for LiRA.

    Args:
      target_scores, shadow_scores, keep: as in :func:`lira`.
      center, offline_test, pooled_std, min_std, min_models_per_side: as in :func:`lira`,
        shared by the four LiRA variants.

    Returns:
      A dict with the keys of :data:`LIRA_VARIANT_NAMES`, in that order: ``"lira_online"``,
      ``"lira_online_fixed_variance"``, ``"lira_offline"``, ``"lira_offline_fixed_variance"``
      and ``"global_threshold"``, each ``[N]`` float scores.

    Raises:
      ValueError: as :func:`lira`.

    Warns:
      UserWarning: as :func:`lira`, for the per-example-variance variants.

    Example:
      >>> shadows = np.array([[[2.0]], [[4.0]], [[-1.0]], [[1.0]]])
      >>> keep = np.array([[True], [True], [False], [False]])
      >>> out = lira_variants(np.array([[3.0]]), shadows, keep, min_models_per_side=1)
      >>> list(out) == list(LIRA_VARIANT_NAMES)
      True
    """
    kwargs = dict(
        center=center,
        offline_test=offline_test,
        pooled_std=pooled_std,
        min_std=min_std,
        min_models_per_side=min_models_per_side,
    )
    out = {}
    for name, online, fixed in (
        ("lira_online", True, False),
        ("lira_online_fixed_variance", True, True),
        ("lira_offline", False, False),
        ("lira_offline_fixed_variance", False, True),
    ):
        out[name] = lira(target_scores, shadow_scores, keep, online=online, fix_variance=fixed, **kwargs)
    out["global_threshold"] = global_threshold_score(target_scores)
    return out


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
