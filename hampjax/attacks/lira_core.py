"""Arithmetic shared by :mod:`hampjax.attacks.lira` and :mod:`hampjax.attacks.leave_one_out`.

The formulas, the options and the exact arithmetic are documented in :mod:`hampjax.attacks.lira`
(the public entry point); this module holds the validation, the tree sums, the moments and the
jitted statistics / test programs both attacks run, so that leave-one-model-out returns, bit for
bit, what :func:`_lira_core` returns for each target with that target masked out.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation

__all__ = [
    "LIRA_VARIANT_NAMES",
    "LIRA_CENTERS",
    "LIRA_OFFLINE_TESTS",
    "LIRA_POOLED_STDS",
    "DEFAULT_MIN_STD",
    "DEFAULT_MIN_MODELS_PER_SIDE",
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
