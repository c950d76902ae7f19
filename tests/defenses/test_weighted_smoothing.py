"""Tests for hampjax.defenses.weighted_smoothing against NumPy (float64) references."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hampjax.defenses.weighted_smoothing import (
    WS_DEFAULT_FLOOR,
    WS_NOISE_START_EPOCH,
    WS_SIGMA_GRID,
    weighted_smoothing_loss,
    ws_noise_scale,
    ws_optimizer,
    ws_sample_scores,
)

B, C = 16, 6


def _batch(seed: int = 0, b: int = B, c: int = C, scale: float = 2.0):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(b, c)) * scale).astype(np.float32)
    labels = rng.integers(0, c, size=b).astype(np.int32)
    return logits, labels


def _np_softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_ce(z, y):
    z = np.asarray(z, np.float64)
    m = z.max(-1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))
    return -logp[np.arange(len(y)), y]


# ---------------------------------------------------------------------------------------------
# Scores.


def test_sample_scores_match_numpy():
    logits, labels = _batch(seed=1)
    p = _np_softmax(logits)
    rows = np.arange(B)
    py = p[rows, labels]
    other = p.copy()
    other[rows, labels] = 0.0
    mentr = -(1 - py) * np.log(py) - (other * np.log(1 - other)).sum(-1)
    np.testing.assert_allclose(np.asarray(ws_sample_scores(logits, labels)), mentr, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(ws_sample_scores(logits, labels, score="cross_entropy")),
                               _np_ce(logits, labels), rtol=1e-5, atol=1e-6)
    jitted = jax.jit(lambda z, y: ws_sample_scores(z, y))(logits, labels)
    np.testing.assert_allclose(np.asarray(jitted), mentr, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Noise scale.


def np_noise_scale(scores, labels, num_classes, normalization, weight, valid=None):
    scores = np.asarray(scores, np.float64)
    if valid is None:
        valid = np.ones(len(scores), bool)
    z = np.zeros(len(scores))
    for c in range(num_classes):
        idx = np.flatnonzero((labels == c) & valid)
        if idx.size == 0:
            continue
        s = scores[idx]
        if normalization == "zscore":
            std = s.std()  # population (ddof=0)
            z[idx] = 0.0 if s.max() == s.min() else (s - s.mean()) / std
        else:
            z[idx] = 0.0 if s.max() == s.min() else (s - s.min()) / (s.max() - s.min())
    f = 1.0 - z
    if weight == "relu_one_minus_z":
        f = np.maximum(f, 0.0)
    return np.where(valid, f, 0.0)


def _score_set(seed=2):
    rng = np.random.default_rng(seed)
    # 7 classes: class 3 empty, class 4 constant (zero std), class 5 a single member.
    labels = np.concatenate([np.repeat([0, 1, 2], 9), [4] * 7, [5], [6] * 4]).astype(np.int32)
    scores = rng.gamma(2.0, 0.5, size=labels.size).astype(np.float32)
    # 7 x 0.1 in float32: the class mean is off by one ulp, so a z-score guarded only by
    # std > 0 would give z = -1 here instead of 0.
    scores[labels == 4] = 0.1
    scores[labels == 6] = [0.0, 0.0, 0.0, 4.0]  # one outlier: z = sqrt(3) > 1
    perm = rng.permutation(labels.size)
    return scores[perm], labels[perm], 7


@pytest.mark.parametrize("normalization", ["zscore", "minmax"])
@pytest.mark.parametrize("weight", ["one_minus_z", "relu_one_minus_z"])
def test_noise_scale_matches_numpy(normalization, weight):
    scores, labels, k = _score_set()
    got = ws_noise_scale(scores, labels, k, normalization=normalization, weight=weight)
    want = np_noise_scale(scores, labels, k, normalization, weight)
    assert got.shape == scores.shape and got.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(got)))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    # Degenerate classes: factor exactly 1 (z = 0).
    assert np.all(np.asarray(got)[np.isin(labels, [4, 5])] == 1.0)
    if normalization == "zscore":
        outlier = np.asarray(got)[(labels == 6) & (scores == 4.0)][0]
        want_outlier = 0.0 if weight == "relu_one_minus_z" else 1.0 - math.sqrt(3.0)
        np.testing.assert_allclose(outlier, want_outlier, atol=1e-5)


def test_noise_scale_hand_computed():
    got = ws_noise_scale(jnp.array([1.0, 3.0, 5.0, 5.0, 7.0]), jnp.array([0, 0, 1, 1, 2]), 3)
    np.testing.assert_allclose(np.asarray(got), [2.0, 0.0, 1.0, 1.0, 1.0])
    got = ws_noise_scale(jnp.array([1.0, 2.0, 5.0]), jnp.array([0, 0, 0]), 2,
                         normalization="minmax")
    np.testing.assert_allclose(np.asarray(got), [1.0, 0.75, 0.0])


@pytest.mark.parametrize("normalization", ["zscore", "minmax"])
def test_noise_scale_mask_and_integer_scores(normalization):
    scores, labels, k = _score_set(seed=3)
    scores = scores - np.float32(10.0)  # all negative: masked rows must not act as 0 in max
    valid = np.random.default_rng(0).random(scores.size) < 0.7
    scores_nan = scores.copy()
    scores_nan[~valid] = np.nan  # masked samples may hold anything
    got = ws_noise_scale(scores_nan, labels, k, normalization=normalization, where=valid)
    want = np_noise_scale(scores, labels, k, normalization, "one_minus_z", valid)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(got)[~valid] == 0.0)
    out = ws_noise_scale(np.array([1, 3]), np.array([0, 0]), 2)
    assert jnp.issubdtype(out.dtype, jnp.floating)
    np.testing.assert_allclose(np.asarray(out), [2.0, 0.0])


def test_noise_scale_jit_static_num_classes_and_vmap():
    scores, labels, k = _score_set(seed=4)
    f = jax.jit(ws_noise_scale, static_argnames=("num_classes", "normalization", "weight"))
    np.testing.assert_allclose(np.asarray(f(scores, labels, num_classes=k)),
                               np.asarray(ws_noise_scale(scores, labels, k)), rtol=1e-6)
    # Several models, each with its own membership mask.
    rng = np.random.default_rng(5)
    masks = rng.random((3, scores.size)) < 0.6
    many = jax.jit(jax.vmap(lambda s, w: ws_noise_scale(s, labels, k, where=w)))(
        np.stack([scores] * 3), masks)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(many[i]),
                                   np_noise_scale(scores, labels, k, "zscore", "one_minus_z",
                                                  masks[i]), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Loss.


def np_ws_loss(logits, labels, noise_scale, eps, sigma, use_margin=True, noise_on="probs",
               floor=WS_DEFAULT_FLOOR):
    """The authors' training step in float64, with the standard normal draw ``eps`` supplied."""
    p = _np_softmax(logits)
    top = np.sort(p, -1)
    margin = top[:, -1] - top[:, -2] if use_margin else np.ones(len(labels))
    noise = sigma * np.asarray(eps, np.float64) * (margin * noise_scale)[:, None]
    if noise_on == "logits":
        return _np_ce(np.asarray(logits, np.float64) + noise, labels)
    q = np.abs(p + noise)
    q = q / q.sum(-1, keepdims=True)
    q = np.clip(q, floor, 1.0)
    return -np.log(q[np.arange(len(labels)), labels])


def jax_ref_loss(logits, labels, noise, floor=WS_DEFAULT_FLOOR):
    """Obviously correct JAX loss for a CONSTANT noise array."""
    p = jax.nn.softmax(logits)
    q = jnp.abs(p + noise)
    q = q / jnp.sum(q, -1, keepdims=True)
    q = jnp.clip(q, floor, 1.0)
    return -jnp.log(q[jnp.arange(labels.shape[0]), labels])


def _const_noise(logits, noise_scale, key, sigma, use_margin=True):
    p = _np_softmax(logits)
    top = np.sort(p, -1)
    margin = (top[:, -1] - top[:, -2]) if use_margin else np.ones(len(p))
    eps = np.asarray(jax.random.normal(key, logits.shape, jnp.float32), np.float64)
    return (sigma * eps * (margin * noise_scale)[:, None]).astype(np.float32), eps


@pytest.mark.parametrize("sigma", [0.05, 0.5, 3.0])
@pytest.mark.parametrize("use_margin", [True, False])
@pytest.mark.parametrize("noise_on", ["probs", "logits"])
def test_loss_matches_numpy(sigma, use_margin, noise_on):
    logits, labels = _batch(seed=6)
    noise_scale = np.random.default_rng(7).normal(1.0, 1.0, size=B).astype(np.float32)
    key = jax.random.key(11)
    eps = np.asarray(jax.random.normal(key, logits.shape, jnp.float32))
    got = weighted_smoothing_loss(logits, labels, noise_scale, key, sigma=sigma,
                                  use_margin=use_margin, noise_on=noise_on)
    want = np_ws_loss(logits, labels, noise_scale, eps, sigma, use_margin, noise_on)
    assert got.shape == (B,) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-5)
    assert np.abs(want - _np_ce(logits, labels)).max() > 1e-3  # the noise does something


def test_zero_noise_is_cross_entropy_up_to_floor():
    logits, labels = _batch(seed=8, scale=5.0)
    logits[0] = 0.0
    logits[0, (labels[0] + 1) % C] = 50.0  # CE = 50 > 36: clipped at the floor
    ce = _np_ce(logits, labels)
    want = np.minimum(ce, 36.0)
    key = jax.random.key(0)
    a = weighted_smoothing_loss(logits, labels, np.zeros(B, np.float32), key, sigma=0.3)
    b = weighted_smoothing_loss(logits, labels, np.ones(B, np.float32), key, sigma=0.0)
    for got in (a, b):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(a[0]), 36.0, rtol=1e-6)
    c = weighted_smoothing_loss(logits, labels, np.zeros(B, np.float32), key, sigma=0.3,
                                noise_on="logits")
    np.testing.assert_allclose(np.asarray(c), ce, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("use_margin", [True, False])
def test_gradient_matches_reference_and_skips_noise(use_margin):
    logits, labels = _batch(seed=9)
    noise_scale = np.random.default_rng(10).normal(1.0, 1.0, size=B).astype(np.float32)
    key, sigma = jax.random.key(3), 0.4

    def ours(z, ns, s):
        return weighted_smoothing_loss(z, labels, ns, key, sigma=s, use_margin=use_margin).mean()

    g_z, g_ns, g_s = jax.grad(ours, argnums=(0, 1, 2))(jnp.asarray(logits), noise_scale, sigma)
    noise, _ = _const_noise(logits, noise_scale, key, sigma, use_margin)
    want = jax.grad(lambda z: jax_ref_loss(z, jnp.asarray(labels), noise).mean())(
        jnp.asarray(logits))
    assert np.all(np.isfinite(np.asarray(g_z)))
    np.testing.assert_allclose(np.asarray(g_z), np.asarray(want), rtol=1e-3, atol=1e-6)
    # No gradient through the noise: not into noise_scale, not into sigma.
    assert np.all(np.asarray(g_ns) == 0.0) and float(g_s) == 0.0
    # The margin is a constant too: the gradient differs from one through a live margin.
    def live_margin(z):
        p = jax.nn.softmax(z)
        top = jax.lax.top_k(p, 2)[0]
        eps = jax.random.normal(key, z.shape, z.dtype)
        nz = sigma * eps * ((top[:, 0] - top[:, 1]) * noise_scale)[:, None]
        q = jnp.abs(p + nz)
        return -jnp.log((q / q.sum(-1, keepdims=True))[jnp.arange(B), labels]).mean()
    if use_margin:
        assert np.abs(np.asarray(jax.grad(live_margin)(jnp.asarray(logits)) - g_z)).max() > 1e-4


def test_floor_clip_gives_zero_gradient():
    logits = jnp.array([[0.0, 60.0, 0.0]])
    labels = jnp.array([0])
    g = jax.grad(lambda z: weighted_smoothing_loss(z, labels, jnp.zeros(1), jax.random.key(0),
                                                   sigma=0.1).sum())(logits)
    assert np.all(np.asarray(g) == 0.0)


def test_different_keys_give_different_losses_same_key_same_loss():
    logits, labels = _batch(seed=12)
    ns = np.ones(B, np.float32)
    f = lambda k: np.asarray(weighted_smoothing_loss(logits, labels, ns, k, sigma=0.5))  # noqa
    assert not np.allclose(f(jax.random.key(0)), f(jax.random.key(1)))
    np.testing.assert_array_equal(f(jax.random.key(2)), f(jax.random.key(2)))
    # Legacy raw uint32 keys work too.
    legacy = np.asarray(weighted_smoothing_loss(logits, labels, ns, jax.random.PRNGKey(2),
                                                sigma=0.5))
    assert legacy.shape == (B,) and np.all(np.isfinite(legacy))


def test_jit_equals_eager_and_vmap_equals_loop():
    m = 4
    batches = [_batch(seed=30 + i) for i in range(m)]
    logits = np.stack([b[0] for b in batches])
    labels = np.stack([b[1] for b in batches])
    ns = np.random.default_rng(13).normal(1.0, 0.5, size=(m, B)).astype(np.float32)
    keys = jax.random.split(jax.random.key(4), m)
    sigmas = np.array([0.0, 0.01, 0.2, 1.0], np.float32)

    def per_model(z, y, n, k, s):
        return weighted_smoothing_loss(z, y, n, k, sigma=s)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def batched(z, y, n, k, s):
        return jax.vmap(per_model)(z, y, n, k, s)

    out = batched(logits, labels, ns, keys, sigmas)
    out2 = batched(logits, labels, ns, jax.random.split(jax.random.key(5), m), sigmas * 2)
    assert out2.shape == (m, B)
    chex.clear_trace_counter()
    for i in range(m):
        eager = per_model(logits[i], labels[i], ns[i], keys[i], float(sigmas[i]))
        np.testing.assert_allclose(np.asarray(out[i]), np.asarray(eager), rtol=1e-5, atol=1e-6)
        jitted = jax.jit(per_model)(logits[i], labels[i], ns[i], keys[i], sigmas[i])
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-6)
    g = jax.jit(jax.vmap(jax.grad(lambda z, y, n, k, s: per_model(z, y, n, k, s).mean())))(
        logits, labels, ns, keys, sigmas)
    assert np.all(np.isfinite(np.asarray(g)))


# ---------------------------------------------------------------------------------------------
# Optimizer and constants.


def test_optimizer_schedule_and_clipping():
    lr, decay, spe = 0.02, 0.5, 3
    opt = ws_optimizer(lr, decay, spe, clip_norm=10.0)
    params = {"w": jnp.zeros(4)}
    state = opt.init(params)
    grads = {"w": jnp.full(4, 100.0)}  # global norm 200 -> clipped to 10
    step = jax.jit(opt.update)
    for s in range(8):
        updates, state = step(grads, state, params)
        # Constant gradient: Adam's normalized step is 1, so the update is -lr_t.
        np.testing.assert_allclose(np.asarray(updates["w"]), -lr * decay ** (s // spe), rtol=1e-4)
        if s == 0:
            adam_state = state[1][0]
            np.testing.assert_allclose(np.asarray(adam_state.nu["w"]), 0.001 * 5.0**2, rtol=1e-5)
    assert isinstance(opt, optax.GradientTransformation)


def test_constants():
    assert WS_NOISE_START_EPOCH == 4
    assert WS_SIGMA_GRID[0] == 0.0 and len(WS_SIGMA_GRID) == 12 and WS_SIGMA_GRID[-1] == 1.0
    assert list(WS_SIGMA_GRID) == sorted(WS_SIGMA_GRID)
    assert WS_DEFAULT_FLOOR == math.exp(-36)


# ---------------------------------------------------------------------------------------------
# Validation.

_Z, _Y = _batch(seed=40)
_NS = np.ones(B, np.float32)
_KEY = jax.random.key(0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sigma=-1.0), r"sigma must be in \[0, inf\)"),
        (dict(sigma=float("inf")), r"sigma must be in \[0, inf\)"),
        (dict(sigma=np.ones(2)), r"sigma must be a scalar"),
        (dict(floor=0.0), r"floor must be in \(0, 1\)"),
        (dict(floor=1.0), r"floor must be in \(0, 1\)"),
        (dict(noise_on="grads"), r"noise_on must be one of 'probs', 'logits'"),
        (dict(use_margin=1), r"use_margin must be a bool"),
        (dict(noise_scale=np.ones(B - 1)), r"noise_scale must have shape labels.shape=\(16,\)"),
        (dict(key=None), r"key must be a jax.random key"),
        (dict(key=np.zeros(3, np.uint32)), r"key must be a jax.random key"),
        (dict(key=jax.random.split(_KEY, 2)), r"key must be a single jax.random key"),
        (dict(labels=np.full(B, C)), r"labels must be in \[0, 6\), got 6"),
        (dict(labels=np.zeros(B, np.float32)), r"labels must be integer class indices"),
        (dict(labels=np.zeros(B - 1, np.int32)), r"labels must have shape logits.shape\[:-1\]"),
        (dict(logits=np.zeros((B, 1), np.float32)), r"logits.shape\[-1\] must be an integer >= 2"),
    ],
)
def test_loss_validation_errors(kwargs, match):
    args = dict(logits=_Z, labels=_Y, noise_scale=_NS, key=_KEY, sigma=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        weighted_smoothing_loss(args.pop("logits"), args.pop("labels"), args.pop("noise_scale"),
                                args.pop("key"), **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(score="loss"), r"score must be one of 'mentr', 'cross_entropy'"),
        (dict(labels=np.full(B, -1)), r"labels must be in \[0, 6\), got -1"),
        (dict(labels=np.zeros(3, np.int32)), r"labels must have shape logits.shape\[:-1\]"),
        (dict(logits=np.zeros((B, 1), np.float32)), r"logits.shape\[-1\] must be an integer >= 2"),
        (dict(logits=np.float32(1.0), labels=np.int32(0)), r"logits must have at least 1"),
    ],
)
def test_scores_validation_errors(kwargs, match):
    args = dict(logits=_Z, labels=_Y)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ws_sample_scores(args.pop("logits"), args.pop("labels"), **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_classes=1), r"num_classes must be an integer >= 2"),
        (dict(num_classes=6.0), r"num_classes must be an integer >= 2"),
        (dict(scores=np.ones((B, 1))), r"scores must be 1-D"),
        (dict(labels=np.zeros(B - 1, np.int32)), r"labels must have shape scores.shape"),
        (dict(labels=np.full(B, 6)), r"labels must be in \[0, 6\), got 6"),
        (dict(normalization="rank"), r"normalization must be one of 'zscore', 'minmax'"),
        (dict(weight="abs"), r"weight must be one of 'one_minus_z', 'relu_one_minus_z'"),
        (dict(where=np.ones(B - 1, bool)), r"where must be a boolean mask of shape"),
        (dict(where=np.ones(B, np.float32)), r"where must be a boolean mask"),
    ],
)
def test_noise_scale_validation_errors(kwargs, match):
    args = dict(scores=np.ones(B, np.float32), labels=_Y, num_classes=C)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ws_noise_scale(args.pop("scores"), args.pop("labels"), args.pop("num_classes"), **args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(learning_rate=0.0), r"learning_rate must be in \(0, inf\)"),
        (dict(decay_per_epoch=0.0), r"decay_per_epoch must be in \(0, 1\]"),
        (dict(decay_per_epoch=1.01), r"decay_per_epoch must be in \(0, 1\]"),
        (dict(steps_per_epoch=0), r"steps_per_epoch must be an integer >= 1"),
        (dict(steps_per_epoch=2.0), r"steps_per_epoch must be an integer >= 1"),
        (dict(clip_norm=-1.0), r"clip_norm must be in \(0, inf\)"),
    ],
)
def test_optimizer_validation_errors(kwargs, match):
    args = dict(learning_rate=0.01, decay_per_epoch=0.99, steps_per_epoch=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ws_optimizer(args.pop("learning_rate"), args.pop("decay_per_epoch"),
                     args.pop("steps_per_epoch"), **args)
