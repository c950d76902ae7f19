"""Theorem 1 of "To Trust or Not To Trust" as a property test, and saturation-safe scores.

For a piecewise-affine ReLU network without normalization, ``f(delta x) = delta A_x x + b_x``
on the ray's last linear piece, so logit gaps grow linearly in ``delta`` and the max softmax
probability tends to 1 for almost every ``x``.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.attacks.shift import max_prediction_score, max_score_logit

NUM_INPUTS = 1000  # "a few hundred" is too few to resolve a 1% rate; the measured rate is ~99.8%
LOGIT_999 = np.log(999.0)  # p_max > 1 - 1e-3  <=>  logit(p_max) > log(999)


class _MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        bias = nn.initializers.normal(1.0)  # non-zero biases: f is affine, not homogeneous
        for width in (64, 64):
            x = nn.relu(nn.Dense(width, bias_init=bias)(x))
        return nn.Dense(10, bias_init=bias)(x)


class _CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        bias = nn.initializers.normal(1.0)
        x = nn.relu(nn.Conv(8, (3, 3), bias_init=bias)(x))
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = nn.relu(nn.Conv(8, (3, 3), bias_init=bias)(x))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(10, bias_init=bias)(x)


def _model_and_inputs(kind, seed):
    k_init, k_x = jax.random.split(jax.random.key(seed))
    if kind == "mlp":
        model, x = _MLP(), jax.random.normal(k_x, (NUM_INPUTS, 16))
    else:
        model, x = _CNN(), jax.random.normal(k_x, (NUM_INPUTS, 8, 8, 3))
    params = model.init(k_init, x[:1])
    return jax.jit(model.apply), params, x


def _numpy_mlp_logits(params, x):
    """Float64 NumPy forward pass of _MLP: the slow, obviously correct reference."""
    p = params["params"]
    h = np.asarray(x, np.float64)
    for i in range(2):
        layer = p[f"Dense_{i}"]
        w, b = (np.asarray(layer[k], np.float64) for k in ("kernel", "bias"))
        h = np.maximum(h @ w + b, 0.0)
    last = p["Dense_2"]
    return h @ np.asarray(last["kernel"], np.float64) + np.asarray(last["bias"], np.float64)


def _np_logit_of_max(z):
    z = np.asarray(z, np.float64)
    top = z.max(axis=1, keepdims=True)
    first = np.argmax(z, axis=1)
    others = np.where(np.arange(z.shape[1])[None] == first[:, None], -np.inf, z - top)
    m = others.max(axis=1, keepdims=True)
    return -(m[:, 0] + np.log(np.sum(np.exp(others - m), axis=1)))


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("seed", [0, 1])
def test_theorem1_scaled_inputs_are_overconfident(kind, seed):
    apply, params, x = _model_and_inputs(kind, seed)
    scaled = max_score_logit(apply(params, 1e4 * x))
    assert np.all(np.isfinite(scaled))
    frac_scaled = float(np.mean(np.asarray(scaled) > LOGIT_999))
    assert frac_scaled >= 0.99, frac_scaled
    # Control: the same network on the unscaled inputs is not (mostly) overconfident, so the
    # property is caused by the scaling.
    frac_plain = float(np.mean(np.asarray(max_score_logit(apply(params, x))) > LOGIT_999))
    assert frac_plain < 0.5, frac_plain


def test_theorem1_float64_reference():
    apply, params, x = _model_and_inputs("mlp", 0)
    z64 = _numpy_mlp_logits(params, 1e4 * np.asarray(x, np.float64))
    p_max = max_prediction_score(z64)
    assert np.mean(p_max > 1 - 1e-3) >= 0.99
    # The float32 log-space score agrees with the float64 reference on the decision.
    s32 = np.asarray(max_score_logit(apply(params, 1e4 * x)))
    s64 = _np_logit_of_max(z64)
    np.testing.assert_allclose(s32, s64, rtol=1e-3, atol=5.0)
    assert np.mean((s32 > LOGIT_999) == (s64 > LOGIT_999)) >= 0.99


def test_max_score_logit_matches_numpy_reference():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 5)) * rng.choice([0.1, 1.0, 10.0], size=(50, 1))
    z[0] = [1.0, 1.0, 0.0, -1.0, 0.5]  # tie at the maximum
    got = np.asarray(max_score_logit(jnp.asarray(z, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, _np_logit_of_max(z.astype(np.float32)), rtol=1e-5, atol=1e-5)
    # Equivalently logit(p_max) from float64 softmax.
    p = max_prediction_score(z)
    np.testing.assert_allclose(got, np.log(p) - np.log1p(-p), rtol=1e-4, atol=1e-4)
    assert got[0] <= 0.0  # tied maximum: p_max <= 1/2


def test_saturation_float32_softmax_is_one_but_score_still_ranks():
    apply, params, x = _model_and_inputs("mlp", 0)
    deltas = [1e2, 1e3, 1e4, 1e5]
    logits = [apply(params, d * x) for d in deltas]
    p32 = np.stack([np.asarray(jax.nn.softmax(z).max(-1)) for z in logits])  # [D, N]
    scores = np.stack([np.asarray(max_score_logit(z)) for z in logits])
    saturated = np.all(p32 == 1.0, axis=0)
    assert saturated.sum() >= NUM_INPUTS // 2  # float32 softmax says exactly 1.0 ...
    assert np.all(np.isfinite(scores))
    # ... yet the log-space score is strictly increasing in delta for those inputs.
    assert np.all(np.diff(scores[:, saturated], axis=0) > 0)


def test_max_score_logit_hand_values_and_extremes():
    z = jnp.array([[30.0, 0.0], [40.0, 0.0], [1e30, -1e30], [0.0, 0.0]])
    np.testing.assert_array_equal(np.asarray(jax.nn.softmax(z).max(-1))[:3], 1.0)
    s = np.asarray(max_score_logit(z))
    assert s[0] == pytest.approx(30.0) and s[1] == pytest.approx(40.0)
    assert np.isfinite(s[2]) and s[2] > s[1]
    assert s[3] == 0.0 and not np.signbit(s[3])
    # Three classes: logit(p_max) = z_max - log(sum of the other exps).
    s3 = float(max_score_logit(jnp.array([2.0, 0.0, 0.0])))
    assert s3 == pytest.approx(2.0 - np.log(2.0), rel=1e-6)


def test_max_score_logit_jit_and_vmap():
    z = jax.random.normal(jax.random.key(3), (4, 6, 7)) * 50.0
    eager = max_score_logit(z)
    np.testing.assert_allclose(jax.jit(max_score_logit)(z), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(max_score_logit)(z), eager, rtol=1e-6)
    assert eager.shape == (4, 6)


@pytest.mark.parametrize(
    "bad, match",
    [
        (jnp.zeros((3, 1)), "logits.shape\\[-1\\]"),
        (jnp.zeros((3, 4), jnp.int32), "float"),
        (jnp.array([[0.0, jnp.nan]]), "finite"),
        (jnp.array(1.0), "at least 1 dimension"),
    ],
)
def test_max_score_logit_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        max_score_logit(bad)
