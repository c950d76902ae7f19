"""DP-SGD primitives and the DP step: clipping bound, dense == generic, noise, Poisson batches."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hampjax.defenses import dp_sgd
from hampjax.defenses.baselines import cross_entropy_loss
from hampjax.models.registry import get_model, model_functions
from hampjax.training import build_recipe, preset_spec
from hampjax.training.engine import dp_config
from hampjax.training.recipes import LossContext
from hampjax.training.step import Batch, DpConfig, StepFns, dp_gradient

B, D, K = 6, 5, 3
INIT, APPLY = model_functions(get_model("fc", K, hidden_sizes=(7, 4)))
X = jax.random.normal(jax.random.key(1), (B, D)) * 3.0
Y = jnp.array([0, 1, 2, 0, 1, 2])
WHERE = jnp.array([True, True, True, True, True, False])
PARAMS = INIT(jax.random.key(0), X[:1])["params"]


def _loss(logits, labels, ctx):
    del ctx
    return cross_entropy_loss(logits, labels)


def _per_example_grads(params):
    def one(x, y):
        return jax.grad(lambda p: _loss(APPLY({"params": p}, x[None], train=True)[0],
                                        y[None], None)[0])(params)

    return jax.vmap(one)(X, Y)


def _flat_norms(tree):
    return jnp.sqrt(sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, 1)
                        for g in jax.tree_util.tree_leaves(tree)))


def _batch(where=WHERE, noise_key=None, denominator=None):
    return Batch(X, Y, where, jnp.zeros((B,)), jax.random.key(2), jax.random.key(3),
                 noise_key=noise_key if noise_key is not None else jax.random.key(4),
                 denominator=denominator)


SGD = optax.sgd(1.0)


def _fns(clip_norm, sigma, per_example):
    return StepFns(APPLY, _loss, SGD, DpConfig(clip_norm, sigma, per_example))


def _ctx(batch):
    return LossContext(jnp.int32(0), batch.loss_key, batch.where, batch.example_state)


@functools.partial(jax.jit, static_argnums=0)
def _dp(fns, params, batch):
    return dp_gradient(fns, {"params": params}, batch, _ctx(batch))


def _direction(clip_norm, sigma, per_example, params=PARAMS, **batch_kwargs):
    return _dp(_fns(clip_norm, sigma, per_example), params, _batch(**batch_kwargs))


def test_clip_factors_edge_cases():
    got = dp_sgd.clip_factors(jnp.array([0.0, 0.5, 4.0, jnp.inf, jnp.nan]), 2.0)
    np.testing.assert_array_equal(got, [1.0, 1.0, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(dp_sgd.clip_factors(jnp.array([0.0, 1e30]), jnp.inf), [1, 1])


def test_dense_norms_match_per_example_gradients():
    def per_example(p):
        logits = APPLY({"params": p}, X, train=True)[0]
        return jnp.where(WHERE, _loss(logits, Y, None), 0.0)

    def example_loss(p, example):
        x, y = example
        return _loss(APPLY({"params": p}, x, train=True)[0], y, None)[0]

    assert dp_sgd.dense_support(per_example, PARAMS) is None
    direct, dense, generic = jax.jit(lambda p: (
        _flat_norms(_per_example_grads(p)) ** 2 * WHERE, dp_sgd.dense_sq_norms(per_example, p),
        dp_sgd.generic_sq_norms(example_loss, p, (X, Y), WHERE)))(PARAMS)
    np.testing.assert_allclose(dense, direct, rtol=1e-5)
    np.testing.assert_allclose(generic, direct, rtol=1e-5)


@pytest.mark.parametrize("per_example", ["dense", "generic"])
def test_dp_direction_is_the_noisy_sum_of_clipped_gradients(per_example):
    clip, sigma, denom = 0.5, 2.0, 3.0
    grads = jax.jit(_per_example_grads)(PARAMS)
    norms = _flat_norms(grads)
    assert float(jnp.max(norms * WHERE)) > 2 * clip  # the clip acts
    factors = jnp.minimum(1.0, clip / norms) * WHERE
    clipped = jax.tree_util.tree_map(lambda g: g * factors.reshape((-1,) + (1,) * (g.ndim - 1)),
                                     grads)
    assert float(jnp.max(_flat_norms(clipped))) <= clip * (1 + 1e-6)  # every clipped g_i <= C
    # (sum_i clip(g_i) + N(0, sigma^2 C^2)) / denom, the noise drawn from the batch's noise key.
    noise = jax.jit(dp_sgd.add_gaussian_noise)(jax.tree_util.tree_map(jnp.zeros_like, PARAMS),
                                               jax.random.key(4), sigma * clip / denom)
    expected = jax.tree_util.tree_map(lambda g, n: jnp.sum(g, 0) / denom + n, clipped, noise)
    got, loss, _, logits = _direction(clip, sigma, per_example, denominator=jnp.float32(denom))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                           got, expected)
    np.testing.assert_allclose(loss, jnp.sum(_loss(logits, Y, None) * WHERE) / 5, rtol=1e-6)
    if per_example == "dense":  # no real rows: the direction is the noise alone
        empty = _direction(clip, sigma, per_example, where=jnp.zeros((B,), bool),
                           denominator=jnp.float32(denom))[0]
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), empty,
                               noise)


def test_generic_path_under_vmap_over_models_matches_dense_per_model():
    params = jax.vmap(lambda k: INIT(k, X[:1])["params"])(jax.random.split(jax.random.key(7), 3))
    batch = _batch(denominator=jnp.float32(3.0))
    fns = _fns(0.5, 2.0, "generic")
    generic = jax.jit(jax.vmap(lambda p: dp_gradient(fns, {"params": p}, batch,
                                                     _ctx(batch))[0]))(params)
    for m in range(3):
        one = _direction(0.5, 2.0, "dense", params=jax.tree_util.tree_map(lambda a: a[m], params),
                         denominator=jnp.float32(3.0))[0]
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a[m], b, rtol=1e-5, atol=1e-6), generic, one)


def test_noise_std_and_independence_across_models():
    keys = jax.random.split(jax.random.key(1), 2)  # one key per model under vmap
    two = jax.jit(jax.vmap(lambda k: dp_sgd.add_gaussian_noise(jnp.zeros((40000,)), k, 3.0)))(
        keys)
    assert abs(float(jnp.std(two)) - 3.0) < 0.05 and abs(float(jnp.mean(two))) < 0.05
    assert abs(float(jnp.corrcoef(two[0], two[1])[0, 1])) < 0.03


def test_poisson_batches_sample_members_at_rate_q():
    n = 400
    keep = (jnp.arange(n) % 4) != 0  # 300 members, B 25 -> 12 steps, q 1/12, B_exp 25

    @jax.jit
    def sample(key):
        kw = dict(batch_size=25, num_steps=14)
        return (dp_sgd.poisson_batches(key, keep, cap=dp_sgd.poisson_cap_size(25, 6.0), **kw),
                dp_sgd.poisson_batches(key, keep, cap=10, **kw))

    out, tiny = sample(jax.random.key(0))
    assert out.indices.shape == (14, 55)
    np.testing.assert_array_equal(out.active, [True] * 12 + [False] * 2)
    np.testing.assert_array_equal(out.denominator, 25.0)
    counts = np.asarray(out.where.sum(1))
    assert counts[12:].sum() == 0 and 15 < counts[:12].mean() < 35
    assert np.asarray(keep)[np.asarray(out.indices)].all()  # padding repeats members too
    assert int(out.dropped.sum()) == 0
    np.testing.assert_array_equal(tiny.dropped, np.maximum(counts - 10, 0))  # same draws
    np.testing.assert_array_equal(tiny.where.sum(1), np.minimum(counts, 10))
    assert math.isclose(float(dp_sgd.poisson_sample_rate(18000, 128)[1]), 1 / 141, rel_tol=1e-6)


class _WithBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
        return nn.Dense(3)(nn.BatchNorm(use_running_average=not train)(x))


def test_dp_config_picks_the_per_example_path_and_refuses_batchnorm():
    recipe = build_recipe(preset_spec("dp_sgd", "digits"))
    assert dp_config(recipe, INIT, APPLY, X[:1]).per_example == "dense"
    cnn_init, cnn_apply = model_functions(get_model("salem_cnn", 3))
    image = jnp.zeros((1, 8, 8, 3))
    assert dp_config(recipe, cnn_init, cnn_apply, image).per_example == "generic"
    with pytest.raises(ValueError, match="per_example='dense' does not apply.*conv"):
        dp_config(recipe.replace(**{"privacy.per_example": "dense"}), cnn_init, cnn_apply, image)
    bn_init, bn_apply = model_functions(_WithBatchNorm())
    with pytest.raises(ValueError, match="cannot train model _WithBatchNorm: it has BatchNorm"):
        dp_config(recipe, bn_init, bn_apply, X[:1], model_name="model _WithBatchNorm")
    assert dp_config(build_recipe(preset_spec("undefended", "digits")), bn_init, bn_apply,
                     X[:1]) is None
