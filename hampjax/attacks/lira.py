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

Membership varies by masks, so every example may have its own number of IN and OUT models.
Evaluation by leave-one-model-out (:func:`leave_one_out`): each trained model in turn is the
target and all others are its shadows; metrics are averaged over targets and pooled.

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


def _compute_dtype(*arrays) -> jnp.dtype:
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def _side_stats(x, w, center: str, fix_variance: bool, pooled_std: str, min_std: float):
    """Centre and std ``[N, Q]`` of the scores ``x [M, N, Q]`` selected by ``w [M, N]``.

    Examples with no selected model get NaN (only reachable under tracing).
    """
    num_models = x.shape[0]
    wq = w[:, :, None]
    k = jnp.sum(w, axis=0)  # [N]
    k_safe = jnp.maximum(k, 1).astype(x.dtype)[:, None]  # [N, 1]
    mean = jnp.sum(jnp.where(wq, x, 0.0), axis=0) / k_safe
    if center == "mean":
        centre = mean
    else:
        ordered = jnp.sort(jnp.where(wq, x, jnp.inf), axis=0)
        shape = (1, *x.shape[1:])
        lo = jnp.broadcast_to(jnp.clip((k - 1) // 2, 0, num_models - 1)[None, :, None], shape)
        hi = jnp.broadcast_to(jnp.clip(k // 2, 0, num_models - 1)[None, :, None], shape)
        centre = 0.5 * (
            jnp.take_along_axis(ordered, lo, axis=0)[0] + jnp.take_along_axis(ordered, hi, axis=0)[0]
        )
    sq_dev = jnp.where(wq, jnp.square(x - mean[None]), 0.0)
    if not fix_variance:
        var = jnp.sum(sq_dev, axis=0) / k_safe
    else:
        total = jnp.maximum(jnp.sum(k), 1).astype(x.dtype)
        if pooled_std == "within":
            var_q = jnp.sum(sq_dev, axis=(0, 1)) / total  # [Q]
        else:  # "global": raw scores about their grand mean.
            grand = jnp.sum(jnp.where(wq, x, 0.0), axis=(0, 1)) / total
            var_q = jnp.sum(jnp.where(wq, jnp.square(x - grand), 0.0), axis=(0, 1)) / total
        var = jnp.broadcast_to(var_q[None, :], mean.shape)
    std = jnp.maximum(jnp.sqrt(var), jnp.asarray(min_std, x.dtype))
    empty = (k == 0)[:, None]
    nan = jnp.asarray(jnp.nan, x.dtype)
    return jnp.where(empty, nan, centre), jnp.where(empty, nan, std)


def _normal_logpdf(s, mu, sd):
    z = (s - mu) / sd
    return -0.5 * jnp.square(z) - jnp.log(sd) - _HALF_LOG_2PI


@functools.partial(
    jax.jit,
    static_argnames=("online", "fix_variance", "center", "offline_test", "pooled_std", "min_std"),
)
def _lira_core(
    target, shadows, in_mask, out_mask, *, online, fix_variance, center, offline_test, pooled_std, min_std
):
    dtype = _compute_dtype(target, shadows)
    target = target.astype(dtype)
    shadows = shadows.astype(dtype)
    stats = functools.partial(
        _side_stats, center=center, fix_variance=fix_variance, pooled_std=pooled_std, min_std=min_std
    )
    mu_out, sd_out = stats(shadows, out_mask)
    if online:
        mu_in, sd_in = stats(shadows, in_mask)
        per_query = _normal_logpdf(target, mu_in, sd_in) - _normal_logpdf(target, mu_out, sd_out)
    elif offline_test == "two_sided":
        per_query = -_normal_logpdf(target, mu_out, sd_out)
    else:  # "one_sided": -log P(S >= s), S ~ N(mu_out, sd_out).
        per_query = -jax.scipy.special.log_ndtr((mu_out - target) / sd_out)
    return jnp.mean(per_query, axis=-1)


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
) -> LeaveOneOutResult:
    """Leave-one-model-out LiRA: each target in turn, all other models as its shadows.

    The shadows of target ``t`` are selected by masks (IN = ``keep & (m != t)``), so every
    target reuses one compiled program and memory stays at one ``[M, N, Q]`` array.

    Args:
      all_scores: ``[M, N, Q]`` float logit-scaled scores of ``M >= 2`` trained models.
      keep: ``[M, N]`` bool membership matrix of those models.
      targets: indices of the target models (distinct, in ``[0, M)``); default all ``M``.
      online, fix_variance, center, offline_test, pooled_std, min_std, min_models_per_side:
        as in :func:`lira`.

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

    scores_all = jnp.asarray(all_scores)
    keep_dev = jnp.asarray(keep_np)
    static = dict(
        online=bool(online),
        fix_variance=bool(fix_variance),
        center=center,
        offline_test=offline_test,
        pooled_std=pooled_std,
        min_std=float(min_std),
    )
    out = []
    for t in target_idx:
        others = (jnp.arange(num_models) != t)[:, None]
        out.append(
            np.asarray(_lira_core(scores_all[t], scores_all, keep_dev & others, ~keep_dev & others, **static))
        )
    return LeaveOneOutResult(targets=target_idx, scores=np.stack(out), labels=labels)


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
