"""Tests for hampjax.attacks.rmia against a slow double-loop reference and hand values."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from hampjax.attacks.rmia import _reference_average, rmia, true_class_probs, tune_offline_a
from hampjax.metrics.roc import auc


# ---------------------------------------------------------------------------------------------
# Slow, obviously-correct reference: plain Python loops over (x, query, z).


def _slow_avg(vals, aggregate, trim):
    vals = sorted(vals)
    if aggregate == "trimmed_mean":
        cut = int(trim * len(vals))
        vals = vals[cut : len(vals) - cut]
    total = 0.0
    for v in vals:  # sequential sum (Python 3.12's sum() is compensated)
        total += v
    return total / len(vals)


def _slow_ratio(p, pr):
    if pr > 0:
        return p / pr
    return math.inf if p > 0 else 1.0


def slow_rmia(tx, rx, keep, tz, rz, *, online=True, a=0.3, gamma=1.0, aggregate="mean", trim=0.2):
    """Returns (scores [N], number of exact ties Ratio_x == gamma * Ratio_z)."""
    num_r, n, q = rx.shape
    nz = tz.shape[0]
    corr = (lambda m: m) if online else (lambda m: 0.5 * ((1.0 + a) * m + (1.0 - a)))
    scores, ties = [], 0
    for i in range(n):
        count = 0
        for j in range(q):
            refs = [float(rx[r, i, j]) for r in range(num_r) if online or not keep[r, i]]
            ratio_x = _slow_ratio(float(tx[i, j]), corr(_slow_avg(refs, aggregate, trim)))
            for k in range(nz):
                pr_z = corr(_slow_avg([float(rz[r, k, j]) for r in range(num_r)], aggregate, trim))
                thresh = gamma * _slow_ratio(float(tz[k, j]), pr_z)
                count += ratio_x >= thresh
                ties += ratio_x == thresh
        scores.append(count / (nz * q))
    return np.array(scores), ties


def _random_inputs(seed, n=13, nz=11, r=5, q=3, values=None):
    rng = np.random.default_rng(seed)
    if values is None:
        draw = lambda *s: rng.random(s)  # noqa: E731
    else:
        draw = lambda *s: rng.choice(np.asarray(values), size=s)  # noqa: E731
    keep = rng.random((r, n)) < 0.5
    keep[0] = False  # every x keeps an OUT reference (offline works)
    return draw(n, q), draw(r, n, q), keep, draw(nz, q), draw(r, nz, q)


SETTINGS = [
    dict(online=True, gamma=1.0),
    dict(online=True, gamma=2.0),
    dict(online=False, gamma=1.0, a=0.3),
    dict(online=False, gamma=2.0, a=0.0),
    dict(online=False, gamma=1.0, a=1.0),
    dict(online=True, gamma=1.0, aggregate="trimmed_mean", trim=0.2),
    dict(online=False, gamma=2.0, aggregate="trimmed_mean", trim=0.34),
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_sort_dense_and_slow_agree_exactly_random(settings, seed):
    inputs = _random_inputs(seed)
    expected, _ = slow_rmia(*inputs, **settings)
    sort = rmia(*inputs, method="sort", **settings)
    auto = rmia(*inputs, method="auto", **settings)
    for chunk in (1, 4, 1024):
        dense = rmia(*inputs, method="dense", chunk_size=chunk, **settings)
        np.testing.assert_array_equal(sort, dense)
    np.testing.assert_array_equal(sort, auto)
    np.testing.assert_array_equal(sort, expected)
    assert sort.dtype == np.float64 and sort.shape == (13,)


@pytest.mark.parametrize("settings", SETTINGS)
def test_sort_dense_and_slow_agree_exactly_with_ties(settings):
    # Dyadic probabilities including 0 and 1 (so 0/0, p/0 and exact LR == gamma all occur);
    # R=4 makes the online means exact.
    inputs = _random_inputs(3, n=20, nz=17, r=4, q=2, values=[0.0, 0.25, 0.5, 0.75, 1.0])
    expected, ties = slow_rmia(*inputs, **settings)
    assert ties > 0  # the boundary is actually exercised
    sort = rmia(*inputs, method="sort", **settings)
    dense = rmia(*inputs, method="dense", chunk_size=3, **settings)
    np.testing.assert_array_equal(sort, dense)
    np.testing.assert_array_equal(sort, expected)


def test_sort_equals_dense_larger():
    inputs = _random_inputs(7, n=500, nz=300, r=6, q=4, values=np.linspace(0, 1, 9))
    for gamma in (1.0, 2.0, 0.5):
        sort = rmia(*inputs, gamma=gamma, method="sort")
        dense = rmia(*inputs, gamma=gamma, method="dense", chunk_size=64)
        np.testing.assert_array_equal(sort, dense)


def test_online_offline_hand_checked():
    tx = np.array([[0.66], [0.3]])
    rx = np.array([[[0.8], [0.2]], [[0.4], [0.6]]])
    keep = np.array([[True, False], [False, True]])
    tz = np.array([[0.5], [0.27]])
    rz = np.array([[[0.5], [0.2]], [[0.5], [0.4]]])
    # Online: Pr(x) = [0.6, 0.4] -> Ratio_x = [1.1, 0.75]; Pr(z) = [0.5, 0.3] -> Ratio_z = [1, 0.9].
    np.testing.assert_array_equal(rmia(tx, rx, keep, tz, rz), [1.0, 0.0])
    # Offline a=0.3: Pr_OUT(x) = [0.4, 0.2] -> Pr(x) = [0.61, 0.48], Ratio_x = [1.082, 0.625];
    # Pr(z) = 0.5 * (1.3 * [0.5, 0.3] + 0.7) = [0.675, 0.545] -> Ratio_z = [0.741, 0.495].
    np.testing.assert_array_equal(rmia(tx, rx, keep, tz, rz, online=False), [1.0, 0.5])
    # gamma=2 online: x0 needs Ratio_x >= [2, 1.8]: none.
    np.testing.assert_array_equal(rmia(tx, rx, keep, tz, rz, gamma=2.0), [0.0, 0.0])
    # Several queries average the per-query fractions: query 2 is query 1 with x0 pushed up.
    tx2 = np.concatenate([tx, [[0.66], [0.9]]], axis=1)
    rx2 = np.concatenate([rx, rx], axis=2)
    tz2, rz2 = np.concatenate([tz, tz], axis=1), np.concatenate([rz, rz], axis=2)
    # Query 2: Ratio_x1 = 0.9 / 0.4 = 2.25 dominates both z.
    np.testing.assert_array_equal(rmia(tx2, rx2, keep, tz2, rz2), [1.0, 0.5])


def test_zero_probability_conventions():
    # Pr(x) = 0 online: p > 0 -> Ratio inf (dominates all); p = 0 -> Ratio 1.
    tx = np.array([[0.2], [0.0], [0.0]])
    rx = np.array([[[0.0], [0.0], [0.5]]])
    keep = np.zeros((1, 3), bool)
    tz = np.array([[0.5], [0.0], [0.25]])  # Ratio_z = [1, 0, 0.5]
    rz = np.array([[[0.5], [0.5], [0.5]]])
    scores = rmia(tx, rx, keep, tz, rz)
    np.testing.assert_array_equal(scores, [1.0, 1.0, 1 / 3])
    assert np.array_equal(scores, rmia(tx, rx, keep, tz, rz, method="dense"))


def test_trimmed_mean_matches_scipy():
    rng = np.random.default_rng(0)
    probs = rng.random((11, 6, 2))
    use = rng.random((11, 6)) < 0.6
    use[0] = True
    for trim in (0.0, 0.1, 0.2, 0.3, 0.49):
        got = _reference_average(probs, None, "trimmed_mean", trim)
        np.testing.assert_allclose(got, scipy.stats.trim_mean(probs, trim, axis=0), rtol=1e-13)
        got = _reference_average(probs, use, "trimmed_mean", trim)
        for n in range(6):
            for q in range(2):
                want = scipy.stats.trim_mean(probs[use[:, n], n, q], trim)
                np.testing.assert_allclose(got[n, q], want, rtol=1e-13)
    np.testing.assert_allclose(_reference_average(probs, None, "mean", 0.2), probs.mean(0), rtol=1e-13)


def _synthetic(seed, n=400, nz=300, r=8, q=2):
    rng = np.random.default_rng(seed)
    keep = np.argsort(rng.random((r, n)), axis=0) < r // 2  # exactly half IN for each x
    member = rng.random(n) < 0.5
    mu_x, mu_z = rng.normal(size=(n, 1)), rng.normal(size=(nz, 1))
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    rx = sig(mu_x[None] + 2.0 * keep[:, :, None] + 0.3 * rng.normal(size=(r, n, q)))
    tx = sig(mu_x + 2.0 * member[:, None] + 0.3 * rng.normal(size=(n, q)))
    rz = sig(mu_z[None] + 0.3 * rng.normal(size=(r, nz, q)))
    tz = sig(mu_z + 0.3 * rng.normal(size=(nz, q)))
    return (tx, rx, keep, tz, rz), member


@pytest.mark.parametrize(
    "settings",
    [dict(), dict(online=False), dict(aggregate="trimmed_mean"), dict(online=False, gamma=2.0)],
)
def test_separates_members(settings):
    inputs, member = _synthetic(0)
    scores = rmia(*inputs, **settings)
    assert auc(scores, member.astype(int)) > 0.8
    # A reference-free score (target probability alone) is much weaker on this setup.
    assert auc(inputs[0].mean(1), member.astype(int)) < auc(scores, member.astype(int))


def test_tune_offline_a_is_grid_argmax():
    inputs, _ = _synthetic(1, n=200, nz=100, r=5, q=1)
    _, rx, keep, _, rz = inputs
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    for t in (0, 3):
        best = tune_offline_a(rx, keep, rz, target_index=t, grid=grid)
        others = np.arange(5) != t
        aucs = [
            auc(rmia(rx[t], rx[others], keep[others], rz[t], rz[others], online=False, a=a),
                keep[t].astype(int))
            for a in grid
        ]
        assert best == grid[int(np.argmax(aucs))]
    assert tune_offline_a(rx, keep, rz) in [i / 10 for i in range(11)]


def test_tune_offline_a_skips_examples_without_out_reference():
    inputs, _ = _synthetic(2, n=60, nz=30, r=3, q=1)
    _, rx, keep, _, rz = inputs
    keep = keep.copy()
    keep[1:, :5] = True  # with reference 0 as target, x 0..4 have no OUT reference left
    a = tune_offline_a(rx, keep, rz, target_index=0)
    assert 0.0 <= a <= 1.0


def test_scaling_sort_path():
    # Dense would be 1e8 comparisons per query; the sort path is O((N + Z) log Z).
    inputs = _random_inputs(5, n=20000, nz=5000, r=2, q=1)
    scores = rmia(*inputs, method="sort")
    assert scores.shape == (20000,)
    assert np.all((scores >= 0) & (scores <= 1))


# ---------------------------------------------------------------------------------------------
# true_class_probs


def _np_true_class_probs(logits, labels, temperature):
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    return np.take_along_axis(p, np.asarray(labels)[..., None], -1)[..., 0]


def test_true_class_probs_values_jit_vmap():
    key1, key2 = jax.random.split(jax.random.key(0))
    logits = 3.0 * jax.random.normal(key1, (4, 6, 5))
    labels = jax.random.randint(key2, (4, 6), 0, 5)
    for t in (1.0, 2.5):
        want = _np_true_class_probs(logits, labels, t)
        np.testing.assert_allclose(true_class_probs(logits, labels, temperature=t), want, rtol=1e-5)
        jitted = jax.jit(functools.partial(true_class_probs, temperature=t))
        np.testing.assert_allclose(jitted(logits, labels), want, rtol=1e-5)
        mapped = jax.vmap(functools.partial(true_class_probs, temperature=t))
        np.testing.assert_allclose(mapped(logits, labels), want, rtol=1e-5)
    # Traced temperature.
    f = jax.jit(lambda lg, lb, t: true_class_probs(lg, lb, temperature=t))
    want = _np_true_class_probs(logits, labels, 2.0)
    np.testing.assert_allclose(f(logits, labels, 2.0), want, rtol=1e-5)


def test_true_class_probs_saturation_and_extremes():
    big = jnp.array([[30.0, 0.0], [0.0, 1000.0], [1e30, -1e30]], jnp.float32)
    p = true_class_probs(big, jnp.array([0, 0, 0]))
    assert np.all(np.isfinite(p))
    np.testing.assert_array_equal(p, [1.0, 0.0, 1.0])  # float32 saturates / underflows
    assert float(true_class_probs(big[0], jnp.array(0), temperature=10.0)) < 1.0


# ---------------------------------------------------------------------------------------------
# Validation


def _valid():
    return list(_random_inputs(0, n=4, nz=3, r=2, q=1))


def _replace(i, value):
    inputs = _valid()
    inputs[i] = value
    return inputs


ARG_ERRORS = [
    (_replace(0, np.full(4, 0.5)), "target_probs_x must be 2-D"),
    (_replace(0, np.zeros((0, 1))), "target_probs_x must have shape"),
    (_replace(1, np.full((2, 4), 0.5)), "ref_probs_x must be 3-D"),
    (_replace(1, np.zeros((0, 4, 1))), "R >= 1"),
    (_replace(1, np.full((2, 5, 1), 0.5)), r"ref_probs_x must have shape \[R, N, Q\]"),
    (_replace(2, np.zeros((2, 5), bool)), "ref_keep must be a boolean mask"),
    (_replace(2, np.zeros((2, 4), int)), "ref_keep must be a boolean mask"),
    (_replace(3, np.full(3, 0.5)), "target_probs_z must be 2-D"),
    (_replace(3, np.zeros((0, 1))), "Z >= 1"),
    (_replace(3, np.full((3, 2), 0.5)), r"target_probs_z must have shape \[Z, Q\]"),
    (_replace(4, np.full((3, 3, 1), 0.5)), r"ref_probs_z must have shape \[R, Z, Q\]"),
    (_replace(0, np.full((4, 1), 1.5)), r"target_probs_x must be in \[0, 1\]"),
    (_replace(1, np.full((2, 4, 1), -0.1)), r"ref_probs_x must be in \[0, 1\]"),
    (_replace(3, np.full((3, 1), np.nan)), r"target_probs_z must be in \[0, 1\]"),
    (_replace(4, np.full((2, 3, 1), 2.0)), r"ref_probs_z must be in \[0, 1\]"),
]


@pytest.mark.parametrize("inputs, match", ARG_ERRORS)
def test_array_errors(inputs, match):
    with pytest.raises(ValueError, match=match):
        rmia(*inputs)


KW_ERRORS = [
    (dict(online="yes"), r"online must be a Python bool \(True or False\)"),
    (dict(a=-0.1), r"a must be in \[0, 1\]"),
    (dict(a=1.5), r"a must be in \[0, 1\]"),
    (dict(a=np.array([0.3, 0.4])), "a must be a scalar"),
    (dict(gamma=0.0), r"gamma must be in \(0, inf\)"),
    (dict(gamma=math.inf), r"gamma must be in \(0, inf\)"),
    (dict(gamma=np.ones(2)), "gamma must be a scalar"),
    (dict(trim=0.5), r"trim must be in \[0, 0.5\)"),
    (dict(trim=-0.1), r"trim must be in \[0, 0.5\)"),
    (dict(trim=np.ones(2)), "trim must be a scalar"),
    (dict(aggregate="median"), "aggregate must be one of"),
    (dict(method="fast"), "method must be one of"),
    (dict(chunk_size=0), "chunk_size must be an integer >= 1"),
    (dict(chunk_size=2.0), "chunk_size must be an integer >= 1"),
]


@pytest.mark.parametrize("kwargs, match", KW_ERRORS)
def test_keyword_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rmia(*_valid(), **kwargs)


def test_offline_requires_out_reference():
    inputs = _valid()
    inputs[2] = np.zeros((2, 4), bool)
    inputs[2][:, 2] = True
    rmia(*inputs)  # online is fine
    with pytest.raises(ValueError, match="ref_keep is True for all references on 1 example"):
        rmia(*inputs, online=False)


def test_true_class_probs_errors():
    logits = jnp.zeros((3, 4))
    with pytest.raises(ValueError, match="temperature must be in"):
        true_class_probs(logits, jnp.zeros(3, int), temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be a scalar"):
        true_class_probs(logits, jnp.zeros(3, int), temperature=jnp.ones(2))
    with pytest.raises(ValueError, match="labels must be in"):
        true_class_probs(logits, jnp.full(3, 4))
    with pytest.raises(ValueError, match="labels must have shape"):
        true_class_probs(logits, jnp.zeros(4, int))


def test_tune_offline_a_errors():
    _, rx, keep, _, rz = _valid()
    with pytest.raises(ValueError, match="R >= 2"):
        tune_offline_a(rx[:1], keep[:1], rz[:1])
    with pytest.raises(ValueError, match=r"target_index must be an integer in \[0, 1\]"):
        tune_offline_a(rx, keep, rz, target_index=2)
    with pytest.raises(ValueError, match="grid must be a non-empty 1-D"):
        tune_offline_a(rx, keep, rz, grid=[])
    with pytest.raises(ValueError, match=r"grid must be in \[0, 1\]"):
        tune_offline_a(rx, keep, rz, grid=[0.5, 1.2])
    with pytest.raises(ValueError, match="ref_keep must be a boolean mask"):
        tune_offline_a(rx, keep[:, :3], rz)
    with pytest.raises(ValueError, match="ref_probs_z must be 3-D"):
        tune_offline_a(rx, keep, rz[0])
    with pytest.raises(ValueError, match="gamma must be in"):
        tune_offline_a(rx, keep, rz, gamma=-1.0)
    one_class = keep.copy()
    one_class[0] = False
    with pytest.raises(ValueError, match="both members and non-members"):
        tune_offline_a(rx, one_class, rz, target_index=0)
