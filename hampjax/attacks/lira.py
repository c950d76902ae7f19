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

Leave-one-model-out evaluation (every model in turn the target, all others its shadows; exact
per target, all targets at once) is :mod:`hampjax.attacks.leave_one_out`; its public names are
re-exported here.

Computation is JAX (float32 unless x64 is enabled and the inputs are float64), jitted once
per configuration; :func:`lira` works under ``jit`` and ``vmap`` (value checks that need
concrete arrays, e.g. "every example has an OUT model", are skipped under tracing).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation
from hampjax.attacks.leave_one_out import (
    DEFAULT_LOO_CHUNK_SIZE,
    DEFAULT_LOO_TARGET_CHUNK_SIZE,
    LeaveOneOutMetrics,
    LeaveOneOutResult,
    _loo_chunk,  # noqa: F401  (private programs reachable from here, as before the split)
    leave_one_out,
    leave_one_out_metrics,
)
from hampjax.attacks.lira_core import (
    DEFAULT_MIN_MODELS_PER_SIDE,
    DEFAULT_MIN_STD,
    LIRA_CENTERS,
    LIRA_OFFLINE_TESTS,
    LIRA_POOLED_STDS,
    LIRA_VARIANT_NAMES,
    Center,
    OfflineTest,
    PooledStd,
    _check_config,
    _check_scores,
    _check_sides,
    _compute_dtype,
    _lira_core,
    _score_jit,  # noqa: F401
    _validate_lira,
    _warn_few_models,
)

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
