"""Label-only attacks against analytic boundary distances, NumPy references and properties."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import binom

from hampjax.attacks.label_only import (
    augmentation_correct,
    augmentation_scores,
    cw_l2_distance,
    distance_to_score,
    gap_attack_scores,
    hop_skip_jump_distance,
    labels_from_logits,
    noise_robustness_scores,
)

# ------------------------------------------------------------------------------------------
# A linear binary classifier in 10-D whose boundary distances are known exactly.
# ------------------------------------------------------------------------------------------

DIM = 10
_rng = np.random.default_rng(0)
W = _rng.normal(size=DIM).astype(np.float32)
B = np.float32(0.3)
SIGNED = np.array([0.3, -0.5, 0.8, -1.1, 1.5, -2.0, 2.6, 3.3], np.float32)  # signed distances


def linear_logits(x, w=W, b=B):
    z = x @ w + b
    return jnp.stack([-z, z], axis=-1)


linear_predict = labels_from_logits(linear_logits)


def _linear_points():
    unit = W / np.linalg.norm(W)
    foot = -B * W / np.sum(W**2)  # on the boundary
    ortho = _rng.normal(size=(len(SIGNED), DIM))
    ortho -= np.outer(ortho @ unit, unit)  # stay on the boundary's parallel plane
    x = foot + ortho + SIGNED[:, None] * unit
    return x.astype(np.float32), (SIGNED > 0).astype(np.int32), np.abs(SIGNED)


X_LIN, Y_LIN, DIST_LIN = _linear_points()


def test_linear_fixture_is_exact():
    z = X_LIN.astype(np.float64) @ W + B
    np.testing.assert_allclose(np.abs(z) / np.linalg.norm(W), DIST_LIN, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(linear_predict(X_LIN)), Y_LIN)


def test_labels_from_logits():
    logits = jax.random.normal(jax.random.key(0), (6, 4))
    predict = labels_from_logits(lambda x: x)
    np.testing.assert_array_equal(predict(logits), np.argmax(np.asarray(logits), -1))
    with pytest.raises(ValueError, match="logits_fn must be a callable"):
        labels_from_logits(3)


# ------------------------------------------------------------------------------------------
# Gap attack.
# ------------------------------------------------------------------------------------------


def test_gap_attack_scores():
    pred = jnp.array([[0, 1, 2], [2, 2, 0]])
    labels = jnp.array([[0, 2, 2], [1, 2, 0]])
    want = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    np.testing.assert_array_equal(gap_attack_scores(pred, labels), want)
    assert gap_attack_scores(pred, labels).dtype == jnp.float32
    np.testing.assert_array_equal(jax.jit(gap_attack_scores)(pred, labels), want)
    np.testing.assert_array_equal(jax.vmap(gap_attack_scores)(pred, labels), want)


def test_gap_attack_validation():
    with pytest.raises(ValueError, match="same shape"):
        gap_attack_scores(jnp.zeros(3, jnp.int32), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match="pred_labels must be integer"):
        gap_attack_scores(jnp.zeros(3), jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="labels must be integer"):
        gap_attack_scores(jnp.zeros(3, jnp.int32), jnp.zeros(3))


# ------------------------------------------------------------------------------------------
# Noise robustness on binary features.
# ------------------------------------------------------------------------------------------

NBITS = 20


def count_predict(x):
    """Class 1 iff at least 10 of the 20 bits are set (a linear model on binary features)."""
    return (jnp.sum(x, axis=-1) >= 10).astype(jnp.int32)


def _bits(ones):
    x = np.zeros((len(ones), NBITS), np.float32)
    for i, k in enumerate(ones):
        x[i, :k] = 1.0
    return x


def _exact_robustness(k, label, rate):
    """P(correct) after flipping each bit w.p. rate: ones = Bin(k, 1-r) + Bin(20-k, r)."""
    dist = np.convolve(binom.pmf(np.arange(k + 1), k, 1 - rate),
                       binom.pmf(np.arange(NBITS - k + 1), NBITS - k, rate))
    p1 = dist[10:].sum()
    return p1 if label == 1 else 1 - p1


NOISE_ONES = [10, 11, 12, 14, 17, 9, 6, 2]
NOISE_LABELS = np.array([1, 1, 1, 1, 1, 0, 0, 0], np.int32)
NOISE_X = _bits(NOISE_ONES)
NOISE_KW = dict(flip_rate=0.2, num_variants=400, batch_size=256)


def test_noise_robustness_matches_binomial_and_is_monotone():
    scores = np.asarray(noise_robustness_scores(count_predict, NOISE_X, NOISE_LABELS,
                                                jax.random.key(0), **NOISE_KW))
    assert scores.dtype == np.float32 and scores.shape == (8,)
    exact = np.array([_exact_robustness(k, y, 0.2) for k, y in zip(NOISE_ONES, NOISE_LABELS)])
    tol = 4.5 * np.sqrt(exact * (1 - exact) / 400) + 1 / 400
    assert np.all(np.abs(scores - exact) <= tol), (scores, exact)
    # Farther from the boundary (more margin bits) -> more robust -> higher score.
    assert np.all(np.diff(scores[:4]) > 0), scores
    assert scores[5] < scores[6] < scores[7]
    np.testing.assert_allclose(scores * 400, np.round(scores * 400), atol=1e-3)


def test_noise_robustness_extreme_rates_and_int_inputs():
    x = NOISE_X.astype(np.int32)
    gap = (np.asarray(count_predict(x)) == NOISE_LABELS).astype(np.float32)
    clean = noise_robustness_scores(count_predict, x, NOISE_LABELS, jax.random.key(1),
                                    flip_rate=0.0, num_variants=3, batch_size=5)
    np.testing.assert_array_equal(clean, gap)
    flipped = noise_robustness_scores(count_predict, x, NOISE_LABELS, jax.random.key(1),
                                      flip_rate=1.0, num_variants=3, batch_size=5)
    want = (np.asarray(count_predict(1 - x)) == NOISE_LABELS).astype(np.float32)
    np.testing.assert_array_equal(flipped, want)


def test_noise_robustness_keys_batches_jit_vmap():
    run = functools.partial(noise_robustness_scores, count_predict, NOISE_X, NOISE_LABELS,
                            flip_rate=0.3, num_variants=20)
    jitted = jax.jit(functools.partial(run, batch_size=7))
    a = run(jax.random.key(3), batch_size=7)
    np.testing.assert_array_equal(jitted(jax.random.key(3)), a)
    np.testing.assert_array_equal(jitted(jax.random.key(3)), a)  # deterministic
    np.testing.assert_array_equal(run(jax.random.key(3), batch_size=1000), a)  # batch-invariant
    assert not np.array_equal(jitted(jax.random.key(4)), a)
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.vmap(jitted)(keys)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], jitted(keys[i]))


def test_noise_robustness_validation():
    key = jax.random.key(0)
    y = NOISE_LABELS
    call = functools.partial(noise_robustness_scores, **NOISE_KW)
    with pytest.raises(ValueError, match="binary features"):
        call(count_predict, NOISE_X + 0.5, y, key)
    with pytest.raises(ValueError, match=r"flip_rate must be in \[0, 1\]"):
        noise_robustness_scores(count_predict, NOISE_X, y, key, flip_rate=1.5, num_variants=2,
                                batch_size=2)
    with pytest.raises(ValueError, match="num_variants must be an integer >= 1"):
        noise_robustness_scores(count_predict, NOISE_X, y, key, flip_rate=0.1, num_variants=0,
                                batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        noise_robustness_scores(count_predict, NOISE_X, y, key, flip_rate=0.1, num_variants=2,
                                batch_size=2.0)
    with pytest.raises(ValueError, match="key must be a jax.random key"):
        call(count_predict, NOISE_X, y, 0)
    with pytest.raises(ValueError, match="labels must have shape"):
        call(count_predict, NOISE_X, y[:3], key)
    with pytest.raises(ValueError, match="labels must be integer"):
        call(count_predict, NOISE_X, y.astype(np.float32), key)
    with pytest.raises(ValueError, match="labels must be in"):
        call(count_predict, NOISE_X, y - 1, key)
    with pytest.raises(ValueError, match="x must contain at least 1 example"):
        call(count_predict, NOISE_X[:0], y[:0], key)
    with pytest.raises(ValueError, match="x must be finite"):
        call(count_predict, np.full_like(NOISE_X, np.nan), y, key)
    with pytest.raises(ValueError, match="predict_labels must be a callable"):
        call(None, NOISE_X, y, key)
    with pytest.raises(ValueError, match="predict_labels must return labels of shape"):
        call(lambda x: count_predict(x)[:2], NOISE_X, y, key)
    with pytest.raises(ValueError, match="predict_labels must return integer labels"):
        call(lambda x: jnp.sum(x, -1), NOISE_X, y, key)


# ------------------------------------------------------------------------------------------
# Augmentation attack.
# ------------------------------------------------------------------------------------------


def pixel_predict(x):
    """Class 1 iff the pixel at (1, 1) of channel 0 is bright."""
    return (x[:, 1, 1, 0] > 0.5).astype(jnp.int32)


def test_augmentation_hand_computed():
    x = np.zeros((2, 4, 4, 1), np.float32)
    x[0, 1, 1, 0] = 1.0  # bright pixel where the classifier looks
    x[1, 1, 2, 0] = 1.0  # one column right of it
    y = np.array([1, 1], np.int32)
    correct = np.asarray(augmentation_correct(pixel_predict, x, y, max_shift=1, flips=True))
    assert correct.shape == (2, 18) and correct.dtype == bool
    # Order: flip-major, then dy, then dx in -1, 0, 1; index = 9 f + 3 (dy + 1) + (dx + 1).
    # Example 0: identity (f=0, 0, 0) -> 4; flipped, the pixel sits at (1, 2): shift dx=-1 -> 12.
    # Example 1: unflipped shift dx=-1 -> 3; flipped it sits at (1, 1): identity -> 13.
    assert set(np.flatnonzero(correct[0])) == {4, 12}
    assert set(np.flatnonzero(correct[1])) == {3, 13}
    scores = augmentation_scores(pixel_predict, x, y, max_shift=1, flips=True)
    np.testing.assert_allclose(scores, [2 / 18, 2 / 18])
    # Translations only: one in nine.
    np.testing.assert_allclose(augmentation_scores(pixel_predict, x, y, flips=False), [1 / 9, 1 / 9])
    # max_shift=0 and no flips is the gap attack.
    np.testing.assert_array_equal(
        augmentation_scores(pixel_predict, x, y, max_shift=0, flips=False), [1.0, 0.0])


def _np_augmentations(x, max_shift, flips, padding):
    mode = {"zeros": "constant", "reflect": "reflect"}[padding]
    d = max_shift
    _, h, w, _ = x.shape
    out = []
    for f in ((0, 1) if flips else (0,)):
        img = x[:, :, ::-1] if f else x
        padded = np.pad(img, ((0, 0), (d, d), (d, d), (0, 0)), mode=mode)
        for dy in range(-d, d + 1):
            for dx in range(-d, d + 1):
                # aug[i, j] = img[i - dy, j - dx]
                out.append(padded[:, d - dy:d - dy + h, d - dx:d - dx + w])
    return out


AUG_W = jax.random.normal(jax.random.key(7), (4 * 4 * 2, 3))


def aug_predict(x, w=AUG_W):
    return jnp.argmax(x.reshape(x.shape[0], -1) @ w, axis=-1).astype(jnp.int32)


@pytest.mark.parametrize("max_shift,flips,padding", [(1, True, "zeros"), (2, False, "reflect"),
                                                      (1, True, "reflect")])
def test_augmentation_matches_numpy(max_shift, flips, padding):
    x = np.asarray(jax.random.normal(jax.random.key(8), (5, 4, 4, 2)))
    y = np.array([0, 1, 2, 0, 1], np.int32)
    augs = _np_augmentations(x, max_shift, flips, padding)
    want = np.stack([np.asarray(aug_predict(a)) == y for a in augs], 1)
    got = augmentation_correct(aug_predict, x, y, max_shift=max_shift, flips=flips, padding=padding)
    np.testing.assert_array_equal(got, want)
    chunked = augmentation_correct(aug_predict, x, y, max_shift=max_shift, flips=flips,
                                   padding=padding, batch_size=2)
    np.testing.assert_array_equal(chunked, want)
    np.testing.assert_allclose(
        augmentation_scores(aug_predict, x, y, max_shift=max_shift, flips=flips, padding=padding),
        want.mean(1), rtol=1e-6)


def test_augmentation_jit_and_vmap_over_models():
    x = np.asarray(jax.random.normal(jax.random.key(9), (5, 4, 4, 2)))
    y = np.array([0, 1, 2, 0, 1], np.int32)
    ws = jax.random.normal(jax.random.key(10), (3, 32, 3))

    def for_model(w):
        return augmentation_scores(functools.partial(aug_predict, w=w), x, y, max_shift=1)

    batched = jax.jit(jax.vmap(for_model))(ws)
    for i in range(3):
        np.testing.assert_allclose(batched[i], for_model(ws[i]), rtol=1e-6)


def test_augmentation_validation():
    x = np.zeros((2, 4, 4, 1), np.float32)
    y = np.array([1, 1], np.int32)
    with pytest.raises(ValueError, match="x must be 4-D"):
        augmentation_scores(pixel_predict, x[..., 0], y)
    with pytest.raises(ValueError, match=r"max_shift must be an integer in \[0, 3\]"):
        augmentation_scores(pixel_predict, x, y, max_shift=4)
    with pytest.raises(ValueError, match=r"max_shift must be an integer in \[0, 3\]"):
        augmentation_correct(pixel_predict, x, y, max_shift=-1)
    with pytest.raises(ValueError, match=r"flips must be a Python bool \(True or False\)"):
        augmentation_scores(pixel_predict, x, y, flips=1)
    with pytest.raises(ValueError, match="padding must be one of"):
        augmentation_scores(pixel_predict, x, y, padding="wrap")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        augmentation_scores(pixel_predict, x, y, batch_size=0)
    with pytest.raises(ValueError, match="labels must have shape"):
        augmentation_scores(pixel_predict, x, y[:1])
    with pytest.raises(ValueError, match="predict_labels must return labels"):
        augmentation_scores(lambda v: v[:, 0, 0, 0].astype(jnp.int32)[None], x, y)


# ------------------------------------------------------------------------------------------
# HopSkipJump.
# ------------------------------------------------------------------------------------------

HSJA_KW = dict(num_iterations=15, num_evals=50, gamma=0.01)


def _check_upper_bound_close(dist, true, rtol):
    dist = np.asarray(dist)
    assert np.all(dist >= true * (1 - 1e-4) - 1e-5), (dist, true)  # an adversarial point exists
    assert np.all(dist <= true * (1 + rtol)), (dist / true)


hsja_linear = jax.jit(functools.partial(hop_skip_jump_distance, linear_predict, **HSJA_KW))


def test_hsja_close_to_analytic_distance():
    dist = hop_skip_jump_distance(linear_predict, X_LIN, Y_LIN, jax.random.key(0), **HSJA_KW)
    assert dist.dtype == jnp.float32 and dist.shape == (len(SIGNED),)
    _check_upper_bound_close(dist, DIST_LIN, 0.05)
    np.testing.assert_array_equal(np.argsort(np.asarray(dist)), np.argsort(DIST_LIN))  # ranking
    # jit gives the same result; deterministic for a fixed key, different for another key.
    np.testing.assert_allclose(hsja_linear(X_LIN, Y_LIN, jax.random.key(0)), dist, rtol=1e-3)
    again = hsja_linear(X_LIN, Y_LIN, jax.random.key(0))
    np.testing.assert_array_equal(hsja_linear(X_LIN, Y_LIN, jax.random.key(0)), again)
    other = hsja_linear(X_LIN, Y_LIN, jax.random.key(1))
    assert not np.array_equal(other, again)
    _check_upper_bound_close(other, DIST_LIN, 0.05)


def test_hsja_box_misclassified_and_failures():
    y = Y_LIN.copy()
    y[0] = 1 - y[0]  # misclassified -> distance 0
    dist = hop_skip_jump_distance(linear_predict, X_LIN, y, jax.random.key(2), box=(-8.0, 8.0),
                                  **HSJA_KW)
    assert float(dist[0]) == 0.0
    _check_upper_bound_close(dist[1:], DIST_LIN[1:], 0.05)
    # A constant classifier has no boundary: every attack fails -> +inf.
    never = hop_skip_jump_distance(lambda v: jnp.zeros(v.shape[0], jnp.int32), X_LIN[:3],
                                   np.zeros(3, np.int32), jax.random.key(0), num_iterations=2,
                                   num_evals=4, init_trials=3)
    np.testing.assert_array_equal(never, [np.inf] * 3)


def test_hsja_vmap_over_keys():
    keys = jax.random.split(jax.random.key(3), 2)
    batched = jax.vmap(hsja_linear, in_axes=(None, None, 0))(X_LIN, Y_LIN, keys)
    for i in range(2):
        _check_upper_bound_close(batched[i], DIST_LIN, 0.05)
        np.testing.assert_allclose(batched[i], hsja_linear(X_LIN, Y_LIN, keys[i]), rtol=0.03)


def test_boundary_distances_on_nhwc_images():
    """HSJA and CW on [N, H, W, C] inputs: a linear model on the flattened image."""
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 3, 2)).astype(np.float32)
    x = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)

    def image_logits(v):
        z = jnp.sum(v * w, axis=(1, 2, 3))
        return jnp.stack([-z, z], axis=-1)

    z = np.sum(x * w, axis=(1, 2, 3))
    y = (z > 0).astype(np.int32)
    true = np.abs(z) / np.linalg.norm(w)
    hsja = hop_skip_jump_distance(labels_from_logits(image_logits), x, y, jax.random.key(0),
                                  num_iterations=10, num_evals=50, gamma=0.01)
    _check_upper_bound_close(hsja, true, 0.2)
    cw = cw_l2_distance(image_logits, x, y, **CW_KW)
    _check_upper_bound_close(cw, true, 0.03)


def test_hsja_validation():
    key = jax.random.key(0)
    call = functools.partial(hop_skip_jump_distance, linear_predict, X_LIN, Y_LIN, key)
    for kw, msg in [
        (dict(num_iterations=0), "num_iterations must be an integer >= 1"),
        (dict(num_iterations=1, num_evals=0), "num_evals must be an integer >= 1"),
        (dict(num_iterations=1, gamma=0.0), r"gamma must be in \(0, inf\)"),
        (dict(num_iterations=1, step_search_steps=0), "step_search_steps must be an integer"),
        (dict(num_iterations=1, binary_search_steps=0), "binary_search_steps must be an integer"),
        (dict(num_iterations=1, init_trials=0), "init_trials must be an integer >= 1"),
        (dict(num_iterations=1, init_scale=-1.0), r"init_scale must be in \(0, inf\)"),
        (dict(num_iterations=1, box=(1.0, 0.0)), "box must be None or a pair"),
        (dict(num_iterations=1, box=(0.0,)), "box must be None or a pair"),
        (dict(num_iterations=1, box=(-0.1, 0.1)), "inside box"),
    ]:
        with pytest.raises(ValueError, match=msg):
            call(**kw)
    with pytest.raises(ValueError, match="key must be a jax.random key"):
        hop_skip_jump_distance(linear_predict, X_LIN, Y_LIN, None, num_iterations=1)
    with pytest.raises(ValueError, match="x must have a floating dtype"):
        hop_skip_jump_distance(lambda v: v[:, 0], X_LIN.astype(np.int32), Y_LIN, key,
                               num_iterations=1)
    with pytest.raises(ValueError, match="labels must have shape"):
        hop_skip_jump_distance(linear_predict, X_LIN, Y_LIN[:2], key, num_iterations=1)


# ------------------------------------------------------------------------------------------
# Carlini-Wagner L2.
# ------------------------------------------------------------------------------------------

CW_KW = dict(steps=200, lr=0.01, c=1.0, binary_search_steps=5)


def test_cw_close_to_analytic_distance():
    dist = cw_l2_distance(linear_logits, X_LIN, Y_LIN, **CW_KW)
    assert dist.dtype == jnp.float32 and dist.shape == (len(SIGNED),)
    _check_upper_bound_close(dist, DIST_LIN, 0.03)
    np.testing.assert_array_equal(np.argsort(np.asarray(dist)), np.argsort(DIST_LIN))
    boxed = cw_l2_distance(linear_logits, X_LIN, Y_LIN, box=(-8.0, 8.0), **CW_KW)
    _check_upper_bound_close(boxed, DIST_LIN, 0.03)


def test_cw_multiclass_upper_bound_misclassified_and_failure():
    rng = np.random.default_rng(1)
    w3 = rng.normal(size=(DIM, 3)).astype(np.float32)
    b3 = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(6, DIM)).astype(np.float32)
    z = x.astype(np.float64) @ w3 + b3
    y = z.argmax(1).astype(np.int32)
    # Distance to the union of half-spaces {z_j > z_y}: the minimum over j of each distance.
    true = np.array([min((z[i, y[i]] - z[i, j]) / np.linalg.norm(w3[:, y[i]] - w3[:, j])
                         for j in range(3) if j != y[i]) for i in range(6)])
    y_bad = y.copy()
    y_bad[0] = (y[0] + 1) % 3
    dist = np.asarray(cw_l2_distance(lambda v: v @ w3 + b3, x, y_bad, **CW_KW))
    assert dist[0] == 0.0
    assert np.all(dist[1:] >= true[1:] * (1 - 1e-4) - 1e-5)
    assert np.all(np.isfinite(dist))
    # Far too few, too small steps: no iterate succeeds -> +inf.
    fail = cw_l2_distance(linear_logits, X_LIN, Y_LIN, steps=2, lr=1e-3, c=1e-3,
                          binary_search_steps=1)
    np.testing.assert_array_equal(fail, [np.inf] * len(SIGNED))


def test_cw_jit_and_vmap_over_models():
    ws = np.stack([W, -W, 2 * W])
    x = X_LIN[:4]

    def for_model(w):
        logits_fn = functools.partial(linear_logits, w=w)
        y = jnp.argmax(logits_fn(x), -1).astype(jnp.int32)
        return cw_l2_distance(logits_fn, x, y, steps=150, lr=0.01, c=1.0, binary_search_steps=4)

    batched = jax.jit(jax.vmap(for_model))(jnp.asarray(ws))
    for i, w in enumerate(ws):
        true = np.abs(x @ w + B) / np.linalg.norm(w)
        _check_upper_bound_close(batched[i], true, 0.03)
        np.testing.assert_allclose(batched[i], for_model(w), rtol=1e-3)


def test_cw_validation():
    call = functools.partial(cw_l2_distance, linear_logits, X_LIN, Y_LIN)
    for kw, msg in [
        (dict(steps=0, lr=0.1), "steps must be an integer >= 1"),
        (dict(steps=1, lr=0.0), r"lr must be in \(0, inf\)"),
        (dict(steps=1, lr=0.1, c=0.0), r"c must be in \(0, inf\)"),
        (dict(steps=1, lr=0.1, binary_search_steps=0), "binary_search_steps must be an integer"),
        (dict(steps=1, lr=0.1, kappa=-1.0), r"kappa must be in \[0, inf\)"),
        (dict(steps=1, lr=0.1, box=(0.0, np.inf)), "box must be None or a pair"),
    ]:
        with pytest.raises(ValueError, match=msg):
            call(**kw)
    with pytest.raises(ValueError, match="logits_fn must be a callable"):
        cw_l2_distance("model", X_LIN, Y_LIN, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="logits_fn must return logits of shape"):
        cw_l2_distance(lambda v: v @ W, X_LIN, Y_LIN, steps=1, lr=0.1)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        cw_l2_distance(linear_logits, X_LIN, Y_LIN + 1, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="x must have a floating dtype"):
        cw_l2_distance(linear_logits, X_LIN.astype(np.int32), Y_LIN, steps=1, lr=0.1)


# ------------------------------------------------------------------------------------------
# distance_to_score.
# ------------------------------------------------------------------------------------------


def test_distance_to_score():
    d = jnp.array([0.0, 2.5, jnp.inf, 1.0, jnp.inf])
    np.testing.assert_array_equal(distance_to_score(d), [0.0, 2.5, 3.5, 1.0, 3.5])
    np.testing.assert_array_equal(jax.jit(distance_to_score)(d), [0.0, 2.5, 3.5, 1.0, 3.5])
    np.testing.assert_array_equal(jax.vmap(distance_to_score)(jnp.stack([d, d[::-1]]))[1],
                                  [3.5, 1.0, 3.5, 2.5, 0.0])
    np.testing.assert_array_equal(distance_to_score(jnp.full(3, jnp.inf)), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="distances must be in"):
        distance_to_score(jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match="distances must be in"):
        distance_to_score(jnp.array([-1.0, 2.0]))
    with pytest.raises(ValueError, match="distances must be 1-D"):
        distance_to_score(jnp.zeros((2, 2)))
