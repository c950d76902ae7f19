"""Tests for hampjax.attacks.lira against a slow, loop-over-examples NumPy reference."""

import importlib
import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from hampjax.attacks.lira import (
    LIRA_VARIANT_NAMES,
    LeaveOneOutMetrics,
    LeaveOneOutResult,
    global_threshold_score,
    leave_one_out,
    leave_one_out_metrics,
    lira,
    lira_variants,
)
from hampjax.metrics import auc, tpr_at_fpr
from hampjax.scores import logit_scaled_score

# `hampjax.attacks.lira` as an attribute is the exported function; fetch the module itself.
lira_mod = importlib.import_module("hampjax.attacks.lira")

# --------------------------------------------------------------------------------------------
# Slow reference: one example at a time, float64, scipy.stats.


def reference_lira(
    target,
    shadows,
    keep,
    *,
    online=True,
    fix_variance=False,
    center="median",
    offline_test="two_sided",
    pooled_std="within",
    min_std=1e-6,
):
    target = np.asarray(target, np.float64)
    shadows = np.asarray(shadows, np.float64)
    keep = np.asarray(keep, bool)
    _, n, q = shadows.shape
    centre_fn = np.median if center == "median" else np.mean

    def side(mask_fn):
        centres = np.zeros((n, q))
        stds = np.zeros((n, q))
        residuals = [[] for _ in range(q)]
        raw = [[] for _ in range(q)]
        for j in range(n):
            sel = mask_fn(keep[:, j])
            for k in range(q):
                vals = shadows[sel, j, k]
                centres[j, k] = centre_fn(vals)
                stds[j, k] = np.std(vals)
                residuals[k].extend(vals - np.mean(vals))
                raw[k].extend(vals)
        if fix_variance:
            for k in range(q):
                if pooled_std == "within":
                    stds[:, k] = np.sqrt(np.mean(np.square(residuals[k])))
                else:
                    stds[:, k] = np.std(raw[k])
        return centres, np.maximum(stds, min_std)

    mu_out, sd_out = side(lambda col: ~col)
    out = np.zeros(n)
    if online:
        mu_in, sd_in = side(lambda col: col)
    for j in range(n):
        vals = []
        for k in range(q):
            s = target[j, k]
            if online:
                v = stats.norm.logpdf(s, mu_in[j, k], sd_in[j, k]) - stats.norm.logpdf(
                    s, mu_out[j, k], sd_out[j, k]
                )
            elif offline_test == "two_sided":
                v = -stats.norm.logpdf(s, mu_out[j, k], sd_out[j, k])
            else:
                v = -stats.norm.logsf(s, mu_out[j, k], sd_out[j, k])
            vals.append(v)
        out[j] = np.mean(vals)
    return out


def _unbalanced_setup(seed=0, m=9, n=12, q=2):
    """Random scores; each example has its own number of IN models (1 .. m-1)."""
    rng = np.random.default_rng(seed)
    keep = np.zeros((m, n), bool)
    for j in range(n):
        k_in = 1 + j % (m - 1)
        keep[rng.permutation(m)[:k_in], j] = True
    shadows = rng.normal(size=(m, n, q)) * rng.uniform(0.5, 2.0, size=(1, n, q)) + 1.5 * keep[..., None]
    target = rng.normal(size=(n, q)) + rng.uniform(-1, 2, size=(n, 1))
    return target.astype(np.float32), shadows.astype(np.float32), keep


CONFIGS = [
    dict(online=o, fix_variance=f, center=c, offline_test=t, pooled_std=p)
    for o, f, c, t, p in itertools.product(
        (True, False), (False, True), ("median", "mean"), ("two_sided", "one_sided"), ("within", "global")
    )
    # offline_test only matters offline, pooled_std only with fix_variance.
    if not (o and t == "one_sided") and not (not f and p == "global")
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_matches_reference(config):
    target, shadows, keep = _unbalanced_setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        got = np.asarray(lira(target, shadows, keep, **config))
    want = reference_lira(target, shadows, keep, **config)
    assert got.shape == (12,)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-4)


def test_even_and_odd_counts_median():
    # Hand check: IN scores {1, 2, 10} -> median 2; OUT {0, 4} -> median 2 (mean of middle two).
    shadows = np.array([1.0, 2.0, 10.0, 0.0, 4.0], np.float32)[:, None, None]
    keep = np.array([True, True, True, False, False])[:, None]
    target = np.array([[2.0]], np.float32)
    sd_in, sd_out = np.std([1.0, 2.0, 10.0]), 2.0
    want = -np.log(sd_in) + np.log(sd_out)  # s sits on both centres
    got = lira(target, shadows, keep, min_models_per_side=1)
    np.testing.assert_allclose(float(got[0]), want, rtol=1e-6)


def test_higher_means_member_and_one_sided_monotone():
    target, shadows, keep = _unbalanced_setup(seed=1)
    shift = np.zeros_like(target)
    shift[0] = 5.0  # example 0 much more confident than its OUT distribution
    kw = dict(online=False, offline_test="one_sided", fix_variance=True)
    base = np.asarray(lira(target, shadows, keep, **kw))
    up = np.asarray(lira(target + shift, shadows, keep, **kw))
    assert up[0] > base[0]
    np.testing.assert_array_equal(up[1:], base[1:])


def test_min_std_floor_and_degenerate_example():
    # All OUT shadows agree exactly: the std is 0 and the floor decides.
    shadows = np.array([[[3.0]], [[1.0]], [[0.0]], [[0.0]]], np.float32)
    keep = np.array([[True], [True], [False], [False]])
    target = np.array([[0.5]], np.float32)
    got = lira(target, shadows, keep, online=False, min_std=1e-3, min_models_per_side=1)
    want = -stats.norm.logpdf(0.5, 0.0, 1e-3)
    np.testing.assert_allclose(float(got[0]), want, rtol=1e-5)
    assert np.isfinite(float(got[0]))


def test_extreme_logits_stay_finite():
    rng = np.random.default_rng(0)
    m, n, c = 8, 16, 5
    logits = (1e4 * rng.standard_normal((m + 1, n, 2, c))).astype(np.float32)
    logits[:, 0] = logits[0, 0]  # example 0: every model gives the same output (std 0)
    labels = rng.integers(0, c, size=n)
    phi = np.asarray(logit_scaled_score(jnp.asarray(logits), jnp.asarray(labels)[None, :, None]))
    assert np.all(np.isfinite(phi)) and np.abs(phi).max() > 1e3
    keep = np.argsort(rng.uniform(size=(m, n)), axis=0) < m // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = lira_variants(phi[0], phi[1:], keep)
        out["one_sided"] = lira(phi[0], phi[1:], keep, online=False, offline_test="one_sided")
    for name, scores in out.items():
        assert np.all(np.isfinite(np.asarray(scores))), name


# --------------------------------------------------------------------------------------------
# Synthetic Gaussian world where the likelihood-ratio test is optimal.


def test_gaussian_world_online_near_oracle():
    rng = np.random.default_rng(0)
    m, n = 64, 4000
    mu_out = 2.0 * rng.normal(size=n)  # example difficulty varies: bad for one global threshold
    d = rng.uniform(0.0, 3.0, size=n)
    mu_in = mu_out + d
    keep = np.argsort(rng.uniform(size=(m, n)), axis=0) < m // 2
    shadows = np.where(keep, mu_in, mu_out) + rng.normal(size=(m, n))
    member = rng.uniform(size=n) < 0.5
    target = np.where(member, mu_in, mu_out) + rng.normal(size=n)
    labels = member.astype(np.int8)
    oracle = stats.norm.logpdf(target, mu_in, 1.0) - stats.norm.logpdf(target, mu_out, 1.0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 32 per side: no warning expected
        scores = lira_variants(
            target[:, None].astype(np.float32), shadows[..., None].astype(np.float32), keep
        )
    a_oracle = auc(oracle, labels)
    a_online = auc(np.asarray(scores["lira_online"]), labels)
    a_fixed = auc(np.asarray(scores["lira_online_fixed_variance"]), labels)
    a_base = auc(np.asarray(scores["global_threshold"]), labels)
    assert a_oracle - 0.02 < a_online <= a_oracle + 0.01
    assert a_oracle - 0.02 < a_fixed <= a_oracle + 0.01
    assert a_online > a_base + 0.1
    t_online = tpr_at_fpr(np.asarray(scores["lira_online"]), labels, 0.01)
    t_base = tpr_at_fpr(np.asarray(scores["global_threshold"]), labels, 0.01)
    assert t_online > t_base + 0.1
    # Offline (one-sided) also beats the global threshold here (members sit above OUT).
    a_off1 = auc(np.asarray(lira(target[:, None], shadows[..., None], keep, online=False,
                                 offline_test="one_sided")), labels)
    assert a_off1 > a_base + 0.05


# --------------------------------------------------------------------------------------------
# jit / vmap / recompiles.


def test_jit_and_vmap():
    target, shadows, keep = _unbalanced_setup(seed=2)
    kw = dict(fix_variance=True, center="median")
    eager = np.asarray(lira(target, shadows, keep, **kw))
    jitted = jax.jit(lambda t, s, k: lira(t, s, k, **kw))(target, shadows, keep)
    np.testing.assert_allclose(np.asarray(jitted), eager, rtol=1e-6, atol=1e-6)

    targets = np.stack([target, target + 1.0, target - 0.5])
    batched = jax.vmap(lambda t: lira(t, shadows, keep, **kw))(targets)
    looped = np.stack([np.asarray(lira(t, shadows, keep, **kw)) for t in targets])
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=1e-6, atol=1e-6)

    gt = jax.jit(global_threshold_score)(target)
    np.testing.assert_allclose(np.asarray(gt), target.mean(axis=1), rtol=1e-6)
    gt_batched = jax.vmap(global_threshold_score)(targets)
    np.testing.assert_allclose(np.asarray(gt_batched), targets.mean(-1), rtol=1e-6)


def test_leave_one_out_compiles_once():
    rng = np.random.default_rng(3)
    m, n = 6, 10
    keep = np.argsort(rng.uniform(size=(m, n)), axis=0) < m // 2
    scores = rng.normal(size=(m, n, 1)).astype(np.float32) + keep[..., None]
    lira_mod._loo_chunk.clear_cache()
    lira_mod._score_jit.clear_cache()
    leave_one_out(scores, keep, fix_variance=True, pooled_std="global")
    assert lira_mod._loo_chunk._cache_size() == 1  # one program for all 6 targets
    assert lira_mod._score_jit._cache_size() == 1


# --------------------------------------------------------------------------------------------
# Fast leave-one-out == the per-target computation, bit for bit.


def slow_leave_one_out(scores, keep, targets, **config):
    """The straightforward algorithm: for each target, lira's core with the target masked out."""
    x, k = jnp.asarray(scores), jnp.asarray(keep)
    static = dict(online=True, fix_variance=False, center="median", offline_test="two_sided",
                  pooled_std="within", min_std=1e-6)
    static.update(config)
    out = []
    for t in targets:
        others = (jnp.arange(x.shape[0]) != t)[:, None]
        out.append(np.asarray(lira_mod._lira_core(x[t], x, k & others, ~k & others, **static)))
    return np.stack(out)


def _exactness_setup():
    rng = np.random.default_rng(11)
    m, n, q = 9, 45, 3  # odd sizes: no shape is a multiple of a vector width
    keep = np.argsort(rng.uniform(size=(m, n)), axis=0) < 4
    scores = (rng.normal(size=(m, n, q)) * rng.uniform(0.3, 3, size=(1, n, q)) + keep[..., None])
    scores = scores.astype(np.float32)
    scores[:, :4] = np.round(scores[:, :4])  # ties, and examples whose OUT scores all agree
    scores[:5, 4] = scores[0, 4]
    return scores, keep


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_leave_one_out_exactly_equals_per_target(config):
    scores, keep = _exactness_setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = slow_leave_one_out(scores, keep, range(9), **config)
        # 3 chunks of examples x 3 groups of targets (one compiled shape of each).
        got = leave_one_out(scores, keep, chunk_size=15, target_chunk_size=3, **config)
    np.testing.assert_array_equal(got.scores, want)
    assert np.all(np.isfinite(want))


def test_leave_one_out_chunking_and_targets_do_not_change_scores():
    scores, keep = _exactness_setup()
    config = dict(fix_variance=True, pooled_std="global", min_models_per_side=1)
    want = leave_one_out(scores, keep, **config).scores  # one chunk, one group
    got = leave_one_out(scores, keep, chunk_size=9, target_chunk_size=3, **config)
    np.testing.assert_array_equal(got.scores, want)
    np.testing.assert_array_equal(leave_one_out(scores, keep, targets=[8, 2], **config).scores,
                                  want[[8, 2]])


def test_leave_one_out_float64_exact():
    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(12)
        keep = np.argsort(rng.uniform(size=(6, 20)), axis=0) < 3
        scores = rng.normal(size=(6, 20, 2)) + keep[..., None]
        for config in (dict(), dict(fix_variance=True, pooled_std="global", center="mean")):
            got = leave_one_out(scores, keep, min_models_per_side=1, **config).scores
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, slow_leave_one_out(scores, keep, range(6), **config))
    finally:
        jax.config.update("jax_enable_x64", False)


def test_equal_scores_hit_the_std_floor_exactly():
    # Every OUT shadow of example 0 scores 0.25: zero variance, so the floor (not rounding)
    # sets the std, for one target and for leave-one-out alike.
    rng = np.random.default_rng(13)
    keep = np.argsort(rng.uniform(size=(8, 6)), axis=0) < 4
    scores = rng.normal(size=(8, 6, 1)).astype(np.float32)
    scores[~keep[:, 0], 0] = 0.25
    target = scores[0].copy()
    target[0] = 0.25 + 1e-3
    others = np.arange(8) != 0
    got = lira(target, scores[others], keep[others], online=False, min_std=1e-4, min_models_per_side=1)
    np.testing.assert_allclose(float(got[0]), -stats.norm.logpdf(1e-3, 0.0, 1e-4), rtol=1e-3)


# --------------------------------------------------------------------------------------------
# Leave-one-model-out.


def test_leave_one_out_matches_manual_and_metrics():
    rng = np.random.default_rng(4)
    m, n, q = 8, 30, 2
    keep = np.argsort(rng.uniform(size=(m, n)), axis=0) < m // 2
    scores = (rng.normal(size=(m, n, q)) + 1.0 * keep[..., None]).astype(np.float32)
    kw = dict(fix_variance=True, center="mean")
    res = leave_one_out(scores, keep, targets=[1, 5, 6], **kw)
    assert isinstance(res, LeaveOneOutResult)
    assert res.scores.shape == (3, n) and res.labels.shape == (3, n)
    np.testing.assert_array_equal(res.targets, [1, 5, 6])
    np.testing.assert_array_equal(res.labels, keep[[1, 5, 6]])
    for i, t in enumerate([1, 5, 6]):
        others = np.arange(m) != t
        manual = np.asarray(lira(scores[t], scores[others], keep[others], **kw))
        np.testing.assert_allclose(res.scores[i], manual, rtol=1e-5, atol=1e-5)
        want = reference_lira(scores[t], scores[others], keep[others], **kw)
        np.testing.assert_allclose(res.scores[i], want, rtol=2e-5, atol=2e-4)

    metrics = leave_one_out_metrics(res, fprs=(0.0, 0.1), fnrs=(0.1,))
    assert isinstance(metrics, LeaveOneOutMetrics)
    assert len(metrics.per_target) == 3
    for key in ("auc", "tpr@10%fpr", "tnr@10%fnr", "tpr@0%fpr"):
        assert key in metrics.mean and key in metrics.pooled
    np.testing.assert_allclose(metrics.mean["auc"], np.mean([d["auc"] for d in metrics.per_target]))
    np.testing.assert_allclose(metrics.pooled["auc"], auc(res.scores.ravel(), res.labels.ravel().astype(int)))
    assert metrics.pooled["num_members"] == int(res.labels.sum())
    assert isinstance(metrics.mean["tpr@10%fpr/below_resolution"], bool)
    assert metrics.mean["reading"] == "strict"

    default = leave_one_out(scores, keep, **kw)
    np.testing.assert_array_equal(default.targets, np.arange(m))
    np.testing.assert_allclose(default.scores[[1, 5, 6]], res.scores, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Warnings and validation errors.


def test_few_models_warns_and_does_not_switch():
    target, shadows, keep = _unbalanced_setup()
    with pytest.warns(UserWarning, match="fix_variance=True"):
        got = lira(target, shadows, keep)
    np.testing.assert_allclose(np.asarray(got), reference_lira(target, shadows, keep), rtol=2e-5, atol=2e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lira(target, shadows, keep, fix_variance=True)
        lira(target, shadows, keep, min_models_per_side=1)
    # Offline only counts OUT models: 1..8 IN of 9 -> at least 1 OUT.
    with pytest.warns(UserWarning, match="min_models_per_side=2"):
        lira(target, shadows, keep, online=False, min_models_per_side=2)
    rng = np.random.default_rng(0)
    keep8 = np.argsort(rng.uniform(size=(8, 5)), axis=0) < 4
    with pytest.warns(UserWarning, match="fix_variance=True"):
        leave_one_out(rng.normal(size=(8, 5, 1)), keep8)


def _good():
    rng = np.random.default_rng(0)
    keep = np.argsort(rng.uniform(size=(4, 3)), axis=0) < 2
    return rng.normal(size=(3, 2)), rng.normal(size=(4, 3, 2)), keep


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda t, s, k: (t[0], s, k), "target_scores must be 2-D"),
        (lambda t, s, k: (t, s[0], k), "shadow_scores must be 3-D"),
        (lambda t, s, k: (t[:, :0], s[..., :0], k), "target_scores must have every axis"),
        (lambda t, s, k: (t, s[:0], k[:0]), "shadow_scores must have every axis"),
        (lambda t, s, k: (t, s[:, :2], k), r"shadow_scores must have shape \(M, \*target_scores.shape\)"),
        (lambda t, s, k: (t[:, :1], s, k), r"shadow_scores must have shape"),
        (lambda t, s, k: (t, s, k[:, :2]), "keep must be a boolean mask of shape"),
        (lambda t, s, k: (t, s, k.astype(int)), "keep must be a boolean mask.*dtype"),
        (lambda t, s, k: (t.astype(int), s, k), "target_scores must have a float"),
        (lambda t, s, k: (t, s.astype(np.int32), k), "shadow_scores must have a float"),
        (lambda t, s, k: (np.full_like(t, np.nan), s, k), "target_scores must be finite"),
        (lambda t, s, k: (t, np.full_like(s, -np.inf), k), "shadow_scores must be finite"),
        (lambda t, s, k: (t, s, np.ones_like(k)), "at least 1 OUT shadow model"),
        (lambda t, s, k: (t, s, np.zeros_like(k)), "at least 1 IN shadow model"),
    ],
)
def test_lira_validation(change, match):
    args = change(*_good())
    with pytest.raises(ValueError, match=match):
        lira(*args, min_models_per_side=1)


def test_offline_needs_no_in_models():
    t, s, k = _good()
    out = lira(t, s, np.zeros_like(k), online=False, min_models_per_side=1)
    assert np.all(np.isfinite(np.asarray(out)))
    with pytest.raises(ValueError, match="keep must give every example at least 1 OUT"):
        lira(t, s, np.ones_like(k), online=False)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(online="yes"), "online must be one of"),
        (dict(fix_variance=None), "fix_variance must be one of"),
        (dict(center="mode"), "center must be one of"),
        (dict(offline_test="left"), "offline_test must be one of"),
        (dict(pooled_std="all"), "pooled_std must be one of"),
        (dict(min_std=0.0), r"min_std must be in \(0, inf\)"),
        (dict(min_std=np.nan), "min_std must be in"),
        (dict(min_std=np.ones(2)), "min_std must be a scalar"),
        (dict(min_models_per_side=0), "min_models_per_side must be an integer >= 1"),
        (dict(min_models_per_side=2.5), "min_models_per_side must be an integer"),
    ],
)
def test_option_validation(kwargs, match):
    t, s, k = _good()
    with pytest.raises(ValueError, match=match):
        lira(t, s, k, **kwargs)
    with pytest.raises(ValueError, match=match):
        leave_one_out(s, k, **kwargs)
    if "online" not in kwargs and "fix_variance" not in kwargs:
        with pytest.raises(ValueError, match=match):
            lira_variants(t, s, k, **kwargs)


def test_global_threshold_validation():
    with pytest.raises(ValueError, match="target_scores must be 2-D"):
        global_threshold_score(np.zeros(3))
    with pytest.raises(ValueError, match="target_scores must be finite"):
        global_threshold_score(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="target_scores must have every axis"):
        global_threshold_score(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="target_scores must have a float"):
        global_threshold_score(np.zeros((3, 1), int))


def test_leave_one_out_validation():
    rng = np.random.default_rng(0)
    keep = np.argsort(rng.uniform(size=(4, 3)), axis=0) < 2
    s = rng.normal(size=(4, 3, 1))
    with pytest.raises(ValueError, match="all_scores must be 3-D"):
        leave_one_out(s[0], keep)
    with pytest.raises(ValueError, match="all_scores must be finite"):
        leave_one_out(np.full_like(s, np.inf), keep)
    with pytest.raises(ValueError, match="all_scores must hold at least 2 models"):
        leave_one_out(s[:1], keep[:1])
    with pytest.raises(ValueError, match="keep must be a boolean mask"):
        leave_one_out(s, keep[:, :2])
    with pytest.raises(ValueError, match=r"targets\[1\] must be an integer in \[0, 3\]"):
        leave_one_out(s, keep, targets=[0, 4])
    with pytest.raises(ValueError, match="targets must be None or a sequence"):
        leave_one_out(s, keep, targets=2)
    with pytest.raises(ValueError, match="targets must name at least 1 model"):
        leave_one_out(s, keep, targets=[])
    with pytest.raises(ValueError, match="targets must not repeat"):
        leave_one_out(s, keep, targets=[1, 1])
    # A target whose keep row is all members: no non-members to evaluate on.
    bad = keep.copy()
    bad[0] = True
    bad[1:, :] = np.array([[True, False, False], [False, True, True], [False, True, True]])
    with pytest.raises(ValueError, match=r"keep\[0\] must contain both"):
        leave_one_out(s, bad, targets=[0])
    # Example 0 is IN only for target 0: without it, no IN shadow is left.
    keep2 = np.array([[True, True, False], [False, False, True], [False, True, True], [False, False, False]])
    with pytest.raises(ValueError, match="at least 1 IN shadow model.*for target model 0"):
        leave_one_out(s, keep2, targets=[0], min_models_per_side=1)
    with pytest.raises(ValueError, match="result must be a LeaveOneOutResult"):
        leave_one_out_metrics((np.zeros(1), np.zeros((1, 2)), np.zeros((1, 2), bool)))


def test_variant_names():
    t, s, k = _good()
    out = lira_variants(t, s, k, min_models_per_side=1)
    assert tuple(out) == LIRA_VARIANT_NAMES
    for name, online, fixed in [
        ("lira_online", True, False),
        ("lira_online_fixed_variance", True, True),
        ("lira_offline", False, False),
        ("lira_offline_fixed_variance", False, True),
    ]:
        np.testing.assert_allclose(
            np.asarray(out[name]),
            reference_lira(t, s, k, online=online, fix_variance=fixed),
            rtol=2e-5,
            atol=2e-4,
        )
    np.testing.assert_allclose(np.asarray(out["global_threshold"]), t.mean(axis=1), rtol=1e-6)
