"""Tests for hampjax.defenses.output_modification (HAMP's testing-time defense)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.defenses import output_modification as om
from hampjax.defenses.output_modification import (
    OutputModifier,
    fresh_random_outputs,
    make_random_output_pool,
    modify_output,
    random_binary_inputs,
    random_image_inputs,
    sample_from_pool,
)

# --------------------------------------------------------------------------------------------
# Slow, obviously-correct NumPy references.
# --------------------------------------------------------------------------------------------


TINY = np.finfo(np.float32).tiny  # smallest normal float32


def flush_subnormals(x):
    """XLA's float32 view on CPU/GPU: subnormals (and -0.0) are zero."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(np.abs(x) < TINY, np.float32(0.0), x)


def next_float_above(v):
    """Smallest float32 that compares greater than v once subnormals are flushed."""
    if v == 0:
        return TINY
    if v == -TINY:
        return np.float32(0.0)
    return np.nextafter(v, np.float32(np.inf))


def reference_modify(outputs, random_outputs, break_ties=False):
    """Row loop: out[argsort(z, stable)] = sort(r), optionally separating tied values."""
    z, r = flush_subnormals(outputs), flush_subnormals(random_outputs)
    num_classes = z.shape[-1]
    z2, r2 = z.reshape(-1, num_classes), r.reshape(-1, num_classes)
    out = np.empty_like(r2)
    for row in range(z2.shape[0]):
        order = np.argsort(z2[row], kind="stable")
        values = np.sort(r2[row])
        if break_ties:
            for p in range(1, num_classes):
                values[p] = max(values[p], next_float_above(values[p - 1]))
        out[row, order] = values
    return out.reshape(r.shape)


def stable_argsort(x):
    return np.argsort(flush_subnormals(x), axis=-1, kind="stable")


def distinct_rows(rng, shape):
    """Random float32 rows without tied values (a permutation of well-separated values)."""
    num_classes = shape[-1]
    flat = np.stack([rng.permutation(num_classes) for _ in range(int(np.prod(shape[:-1])))])
    flat = flat + rng.uniform(0.0, 0.5, flat.shape)
    return (flat * 0.37 - 5.0).astype(np.float32).reshape(shape)


def assert_top1_kept(result, outputs):
    """argmax(result) is a top class of outputs; it is argmax(outputs) when the top is unique.

    With tied maxima the stable order ranks the LAST tied class highest, while np.argmax
    returns the first one.
    """
    result, outputs = np.asarray(result, np.float32), np.asarray(outputs, np.float32)
    top = outputs.max(-1, keepdims=True)
    label = result.argmax(-1)
    assert np.all(np.take_along_axis(outputs, label[..., None], -1) == top)
    unique_top = (outputs == top).sum(-1) == 1
    np.testing.assert_array_equal(label[unique_top], outputs.argmax(-1)[unique_top])
    last_top = outputs.shape[-1] - 1 - (outputs == top)[..., ::-1].argmax(-1)
    np.testing.assert_array_equal(label, last_top)


def has_row_ties(x):
    s = np.sort(np.asarray(x).reshape(-1, np.shape(x)[-1]), axis=-1)
    return bool(np.any(s[:, 1:] == s[:, :-1]))


# --------------------------------------------------------------------------------------------
# modify_output: values and ranking.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [2, 3, 10, 100])
def test_random_rows_match_reference(num_classes):
    rng = np.random.default_rng(num_classes)
    z = rng.standard_normal((37, num_classes)).astype(np.float32)
    r = distinct_rows(rng, (37, num_classes))
    expected = reference_modify(z, r)
    for break_ties in (False, True):  # no ties in r: both settings are exact
        result = np.asarray(modify_output(jnp.asarray(z), jnp.asarray(r), break_ties=break_ties))
        np.testing.assert_array_equal(result, expected)
        np.testing.assert_array_equal(stable_argsort(result), stable_argsort(z))
        np.testing.assert_array_equal(np.sort(result, axis=-1), np.sort(r, axis=-1))
        np.testing.assert_array_equal(result.argmax(-1), z.argmax(-1))  # no ties in z


def test_large_batch_of_gaussian_logits():
    # Enough rows to span many network blocks and a partial last block, with a few rows of
    # exactly tied random values (Gaussian float32 rows have them about once in 2000).
    kz, kr = jax.random.split(jax.random.key(0))
    z = jax.random.normal(kz, (1500, 100))
    r = jax.random.normal(kr, (1500, 100))
    r = r.at[3, 7].set(r[3, 8]).at[900, :3].set(r[900, 50]).at[1499, 0].set(r[1499, 99])
    assert has_row_ties(r)
    result = np.asarray(modify_output(z, r))
    np.testing.assert_array_equal(result, reference_modify(z, r, break_ties=True))
    np.testing.assert_array_equal(stable_argsort(result), stable_argsort(z))
    exact = np.asarray(modify_output(z, r, break_ties=False))
    np.testing.assert_array_equal(exact, reference_modify(z, r))


@pytest.mark.parametrize("num_classes", [2, 100])
def test_ties_in_outputs_follow_stable_order(num_classes):
    rng = np.random.default_rng(1)
    z = rng.integers(0, 3, size=(40, num_classes)).astype(np.float32)  # many repeats
    z[0] = 1.0  # an all-equal row
    z[1] = 0.0
    r = distinct_rows(rng, (40, num_classes))
    result = np.asarray(modify_output(jnp.asarray(z), jnp.asarray(r)))
    np.testing.assert_array_equal(result, reference_modify(z, r))
    np.testing.assert_array_equal(stable_argsort(result), stable_argsort(z))
    np.testing.assert_array_equal(np.sort(result, axis=-1), np.sort(r, axis=-1))
    # An all-equal row receives the random values in increasing class order.
    np.testing.assert_array_equal(result[0], np.sort(r[0]))
    assert_top1_kept(result, z)


@pytest.mark.parametrize("num_classes", [2, 100])
def test_ties_in_both_keep_exact_ranking(num_classes):
    rng = np.random.default_rng(2)
    z = rng.integers(0, 4, size=(40, num_classes)).astype(np.float32)
    z[:5] = rng.standard_normal((5, num_classes))  # distinct outputs, tied random values
    r = rng.integers(-3, 3, size=(40, num_classes)).astype(np.float32)
    r[5] = 2.0  # all-equal random row
    assert has_row_ties(r)
    result = np.asarray(modify_output(jnp.asarray(z), jnp.asarray(r)))
    np.testing.assert_array_equal(result, reference_modify(z, r, break_ties=True))
    np.testing.assert_array_equal(stable_argsort(result), stable_argsort(z))
    np.testing.assert_array_equal(
        np.asarray(jnp.argsort(jnp.asarray(result), axis=-1, stable=True)),
        np.asarray(jnp.argsort(jnp.asarray(z), axis=-1, stable=True)),
    )
    assert_top1_kept(result, z)
    # Separated values stay within num_classes ulps of the random values.
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(
        np.sort(result, axis=-1), np.sort(r, axis=-1), rtol=num_classes * eps, atol=1e-30
    )


def test_ties_in_random_outputs_without_break_ties_keep_exact_values():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((30, 8)).astype(np.float32)
    r = rng.integers(0, 3, size=(30, 8)).astype(np.float32)
    result = np.asarray(modify_output(jnp.asarray(z), jnp.asarray(r), break_ties=False))
    np.testing.assert_array_equal(result, reference_modify(z, r))
    np.testing.assert_array_equal(np.sort(result, axis=-1), np.sort(r, axis=-1))
    # Weak ranking: z_i < z_j implies result_i <= result_j.
    less = z[:, :, None] < z[:, None, :]
    assert np.all(result[:, :, None] <= result[:, None, :], where=less)


def test_two_class_counterexample_for_exact_multiset():
    # outputs [1, 0] with random values [5, 5]: no arrangement of {5, 5} ranks class 1 first.
    z, r = jnp.array([1.0, 0.0]), jnp.array([5.0, 5.0])
    separated = np.asarray(modify_output(z, r))
    np.testing.assert_array_equal(separated, [np.nextafter(np.float32(5), np.float32(6)), 5.0])
    assert separated.argmax() == 0
    np.testing.assert_array_equal(np.asarray(modify_output(z, r, break_ties=False)), [5.0, 5.0])


def test_docstring_example_by_hand():
    out = modify_output(jnp.array([2.0, 9.0, 1.0]), jnp.array([0.3, 0.1, 0.2]))
    np.testing.assert_array_equal(np.asarray(out), np.float32([0.2, 0.3, 0.1]))


def test_special_values_rank_like_jnp_argsort():
    z = jnp.array(
        [
            [jnp.nan, 1.0, -jnp.inf, 0.0, -0.0, jnp.inf, jnp.nan, 1.0],
            [-0.0, 0.0, -0.0, 0.0, 2.0, -2.0, 3.0, -3.0],
        ]
    )
    r = jnp.asarray(distinct_rows(np.random.default_rng(4), (2, 8)))
    result = om._modify_output_impl(z, r, True)  # the core; modify_output rejects NaN/inf
    np.testing.assert_array_equal(
        np.asarray(jnp.argsort(result, axis=-1, stable=True)),
        np.asarray(jnp.argsort(z, axis=-1, stable=True)),
    )
    np.testing.assert_array_equal(np.asarray(result), reference_modify(z, r))


def test_zeros_and_subnormals():
    sub = np.float32(1e-45)
    r = jnp.array([[-0.0, 0.0, -sub, sub], [0.0, 0.0, -0.0, 1.0], [-TINY, -TINY, 0.0, 2.0]])
    z = jnp.array([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    result = modify_output(z, r)
    expected = reference_modify(z, r, break_ties=True)
    np.testing.assert_array_equal(np.asarray(result), expected)
    # Separated zeros jump to the smallest normal float, which XLA does not flush.
    up1 = np.nextafter(TINY, np.float32(1))
    np.testing.assert_array_equal(expected[0], [np.nextafter(up1, np.float32(1)), up1, TINY, 0.0])
    np.testing.assert_array_equal(
        np.asarray(jnp.argsort(result, axis=-1, stable=True)),
        np.asarray(jnp.argsort(z, axis=-1, stable=True)),
    )
    # Subnormal outputs rank as zero, like jnp.argsort.
    z_sub = jnp.array([[sub, 0.0, -sub, 2 * sub]])
    r4 = jnp.array([[0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_array_equal(
        np.asarray(jnp.argsort(modify_output(z_sub, r4), axis=-1, stable=True)),
        np.asarray(jnp.argsort(z_sub, axis=-1, stable=True)),
    )
    np.testing.assert_array_equal(np.asarray(modify_output(z_sub, r4)), np.asarray(r4))


def test_works_on_probabilities():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((25, 10)).astype(np.float32) * 3
    random_logits = distinct_rows(rng, (25, 10))
    probs, random_probs = jax.nn.softmax(logits), jax.nn.softmax(random_logits)
    result = np.asarray(modify_output(probs, random_probs))
    np.testing.assert_array_equal(stable_argsort(result), stable_argsort(probs))
    np.testing.assert_array_equal(np.sort(result, axis=-1), np.sort(np.asarray(random_probs), axis=-1))
    np.testing.assert_allclose(result.sum(-1), 1.0, rtol=1e-5)
    # softmax commutes with the rearrangement.
    np.testing.assert_allclose(
        result, np.asarray(jax.nn.softmax(modify_output(jnp.asarray(logits), jnp.asarray(random_logits)))),
        rtol=1e-6,
    )


def test_jit_matches_eager_and_does_not_retrace():
    rng = np.random.default_rng(6)
    z = jnp.asarray(rng.integers(0, 5, size=(16, 20)).astype(np.float32))
    r = jnp.asarray(rng.integers(0, 5, size=(16, 20)).astype(np.float32))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def defended(z, r):
        return modify_output(z, r)

    np.testing.assert_array_equal(np.asarray(defended(z, r)), np.asarray(modify_output(z, r)))
    np.testing.assert_array_equal(np.asarray(defended(r, z)), np.asarray(modify_output(r, z)))
    jitted = jax.jit(functools.partial(modify_output, break_ties=False))
    expected = np.asarray(modify_output(z, r, break_ties=False))
    np.testing.assert_array_equal(np.asarray(jitted(z, r)), expected)


def test_vmap_matches_batched_call():
    rng = np.random.default_rng(7)
    z = rng.integers(0, 4, size=(3, 20, 10)).astype(np.float32)
    r = rng.integers(0, 6, size=(3, 20, 10)).astype(np.float32)
    r[1] = distinct_rows(rng, (20, 10))  # some rows with ties in r, some without
    direct = np.asarray(modify_output(jnp.asarray(z), jnp.asarray(r)))
    mapped = np.asarray(jax.vmap(modify_output)(jnp.asarray(z), jnp.asarray(r)))
    np.testing.assert_array_equal(mapped, direct)
    np.testing.assert_array_equal(direct, reference_modify(z, r, break_ties=True))
    mapped_jit = jax.jit(jax.vmap(functools.partial(modify_output, break_ties=False)))(z, r)
    np.testing.assert_array_equal(np.asarray(mapped_jit), reference_modify(z, r))


@pytest.mark.parametrize("shape", [(7,), (2, 3, 5), (2, 1, 3, 4)])
def test_any_leading_shape(shape):
    rng = np.random.default_rng(len(shape))
    z = rng.integers(0, 3, size=shape).astype(np.float32)
    r = rng.standard_normal(shape).astype(np.float32)
    result = np.asarray(modify_output(jnp.asarray(z), jnp.asarray(r)))
    assert result.shape == shape
    np.testing.assert_array_equal(result, reference_modify(z, r, break_ties=True))


def test_empty_batch():
    result = modify_output(jnp.zeros((0, 5)), jnp.zeros((0, 5)))
    assert result.shape == (0, 5) and result.dtype == jnp.float32


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision(dtype):
    rng = np.random.default_rng(8)
    z = jnp.asarray(rng.integers(0, 4, size=(12, 10)), dtype)
    r = jnp.asarray(rng.standard_normal((12, 10)), dtype)
    result = modify_output(z, r, break_ties=False)
    assert result.dtype == dtype
    expected = reference_modify(z.astype(jnp.float32), r.astype(jnp.float32))
    np.testing.assert_array_equal(np.asarray(result.astype(jnp.float32)), expected)
    separated = modify_output(z, r)
    np.testing.assert_array_equal(
        stable_argsort(separated.astype(jnp.float32)), stable_argsort(z.astype(jnp.float32))
    )


def test_result_dtype_follows_random_outputs():
    z = jnp.array([[1.0, 2.0, 0.0]], jnp.float16)
    r = jnp.array([[0.5, 0.25, 0.75]], jnp.float32)
    result = modify_output(z, r)
    assert result.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(result), [[0.5, 0.75, 0.25]])


@pytest.mark.parametrize("break_ties", [False, True])
def test_counting_and_sorting_formulations_agree(break_ties):
    # The CPU path (counting + network) and the accelerator / many-class path (XLA sort).
    rng = np.random.default_rng(9)
    z = np.concatenate([rng.integers(0, 3, (20, 30)), rng.standard_normal((20, 30))]).astype(np.float32)
    r = np.concatenate([rng.integers(0, 3, (20, 30)), rng.standard_normal((20, 30))]).astype(np.float32)
    counted = jax.jit(om._modify_by_counting, static_argnums=2)(z, r, break_ties)
    sorted_ = jax.jit(om._modify_by_sorting, static_argnums=2)(z, r, break_ties)
    np.testing.assert_array_equal(np.asarray(counted), np.asarray(sorted_))
    np.testing.assert_array_equal(
        np.asarray(om._from_sort_keys(counted, jnp.float32)), reference_modify(z, r, break_ties)
    )


def test_many_classes_use_sorting_path():
    num_classes = om._COUNTING_MAX_CLASSES + 88
    rng = np.random.default_rng(10)
    z = rng.integers(0, 50, size=(3, num_classes)).astype(np.float32)
    r = rng.integers(0, 50, size=(3, num_classes)).astype(np.float32)
    result = np.asarray(modify_output(jnp.asarray(z), jnp.asarray(r)))
    np.testing.assert_array_equal(result, reference_modify(z, r, break_ties=True))


@pytest.mark.parametrize(
    "fused_layers, widths", [(om._FUSED_LAYERS, (2, 3, 5, 33, 100)), (1, (7, 64)), (4, (7, 64))]
)
def test_sorting_network_sorts_every_width(fused_layers, widths, monkeypatch):
    monkeypatch.setattr(om, "_FUSED_LAYERS", fused_layers)
    rng = np.random.default_rng(11)
    sort_rows = jax.jit(om._sort_rows_by_network, static_argnums=1)
    for num_classes in widths:
        values = rng.integers(-4, 4, size=(70, num_classes)).astype(np.float32)
        keys = sort_rows(jnp.asarray(values), False)
        np.testing.assert_array_equal(
            np.asarray(om._from_sort_keys(keys, jnp.float32)), np.sort(values, axis=-1)
        )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_sort_keys_are_an_order_isomorphism(dtype):
    finfo = jnp.finfo(dtype)
    values = jnp.array(
        [-jnp.inf, -finfo.max, -3.0, -finfo.smallest_normal, 0.0, finfo.smallest_normal, 1.0,
         finfo.max, jnp.inf],
        dtype,
    )
    keys = np.asarray(om._to_sort_keys(values))
    assert np.all(np.diff(keys.astype(np.int64)) > 0)
    np.testing.assert_array_equal(keys[3:6], [-1, 0, 1])  # no gap around zero
    np.testing.assert_array_equal(keys[-1] - keys[-2], 1)  # inf follows the largest float
    back = om._from_sort_keys(jnp.asarray(keys), dtype)
    np.testing.assert_array_equal(np.asarray(back, np.float32), np.asarray(values, np.float32))
    assert int(om._to_sort_keys(jnp.array(-0.0, dtype))) == 0
    assert int(om._to_sort_keys(jnp.array(np.nan, dtype))) > keys[-1]
    assert int(om._to_sort_keys(jnp.array(-np.nan, dtype))) > keys[-1]


# --------------------------------------------------------------------------------------------
# Random inputs.
# --------------------------------------------------------------------------------------------


def test_random_binary_inputs():
    x = random_binary_inputs(jax.random.key(0), 2000, 600)
    assert x.shape == (2000, 600) and x.dtype == jnp.float32
    values = np.asarray(x)
    assert set(np.unique(values)) == {0.0, 1.0}
    assert abs(values.mean() - 0.5) < 0.005
    assert abs(values.mean(axis=0) - 0.5).max() < 0.06  # every feature is fair
    np.testing.assert_array_equal(np.asarray(random_binary_inputs(jax.random.key(0), 2000, 600)), values)
    assert not np.array_equal(np.asarray(random_binary_inputs(jax.random.key(1), 2000, 600)), values)
    assert random_binary_inputs(jax.random.key(0), 3, 4, dtype=jnp.int8).dtype == jnp.int8


@pytest.mark.parametrize("max_pixel", [254, 255])
def test_random_image_inputs_integer_grid(max_pixel):
    mean, std = np.float32([0.4914, 0.4822, 0.4465]), np.float32([0.2470, 0.2435, 0.2616])
    x = random_image_inputs(jax.random.key(3), 64, (32, 32, 3), mean=mean, std=std, max_pixel=max_pixel)
    assert x.shape == (64, 32, 32, 3) and x.dtype == jnp.float32
    pixels = (np.asarray(x, np.float64) * std + mean) * 255.0
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)
    pixels = np.round(pixels)
    assert pixels.min() == 0 and pixels.max() == max_pixel
    assert abs(pixels.mean() - max_pixel / 2) < 1.0
    # Per-channel normalization: channel c of value v is (v/255 - mean_c) / std_c.
    x0 = random_image_inputs(jax.random.key(3), 64, (32, 32, 3), mean=0.0, std=1.0, max_pixel=max_pixel)
    np.testing.assert_allclose(np.asarray(x), (np.asarray(x0) - mean) / std, rtol=1e-5, atol=1e-5)


def test_random_image_inputs_scalar_stats_and_keys():
    a = random_image_inputs(jax.random.key(0), 4, (8, 8, 1), mean=0.5, std=0.25)
    b = random_image_inputs(jax.random.key(0), 4, (8, 8, 1), mean=0.5, std=0.25)
    c = random_image_inputs(jax.random.key(1), 4, (8, 8, 1), mean=0.5, std=0.25)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


# --------------------------------------------------------------------------------------------
# Random outputs: pool and fresh draws.
# --------------------------------------------------------------------------------------------

NUM_FEATURES, NUM_CLASSES = 12, 5
W = jnp.asarray(np.random.default_rng(12).standard_normal((NUM_FEATURES, NUM_CLASSES)), jnp.float32)


def linear_apply(x):
    return x @ W


sample_binary = functools.partial(random_binary_inputs, num_features=NUM_FEATURES)


@pytest.mark.parametrize("pool_size, batch_size", [(50, 16), (48, 16), (10, 64)])
def test_pool_equals_model_on_the_same_inputs(pool_size, batch_size):
    key = jax.random.key(4)
    pool = make_random_output_pool(linear_apply, sample_binary, key, pool_size, batch_size=batch_size)
    chunk = min(batch_size, pool_size)
    num_chunks = -(-pool_size // chunk)
    inputs = jnp.concatenate([sample_binary(k, chunk) for k in jax.random.split(key, num_chunks)])
    assert pool.shape == (pool_size, NUM_CLASSES)
    np.testing.assert_allclose(np.asarray(pool), np.asarray(linear_apply(inputs))[:pool_size], rtol=1e-6)


def test_fresh_random_outputs():
    key = jax.random.key(5)
    out = fresh_random_outputs(linear_apply, sample_binary, key, 7)
    assert out.shape == (7, NUM_CLASSES)
    np.testing.assert_allclose(np.asarray(out), np.asarray(linear_apply(sample_binary(key, 7))), rtol=1e-6)


def test_sample_from_pool_is_keyed_and_uniform():
    pool = jnp.asarray(np.arange(5 * 3, dtype=np.float32).reshape(5, 3))
    a = np.asarray(sample_from_pool(pool, jax.random.key(0), (4000,)))
    b = np.asarray(sample_from_pool(pool, jax.random.key(0), 4000))
    c = np.asarray(sample_from_pool(pool, jax.random.key(1), (4000,)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    rows = a[:, 0] / 3  # row index of each draw
    np.testing.assert_array_equal(a, np.asarray(pool)[rows.astype(int)])
    counts = np.bincount(rows.astype(int), minlength=5)
    assert counts.min() > 650 and counts.max() < 950  # 800 expected each
    assert sample_from_pool(pool, jax.random.key(0), (2, 3)).shape == (2, 3, 3)
    assert sample_from_pool(pool, jax.random.key(0), ()).shape == (3,)
    assert sample_from_pool(pool, jax.random.key(0), (0, 2)).shape == (0, 2, 3)


# --------------------------------------------------------------------------------------------
# OutputModifier.
# --------------------------------------------------------------------------------------------


def test_output_modifier_pool_mode():
    pool = jax.random.normal(jax.random.key(0), (100, NUM_CLASSES))
    defense = OutputModifier.from_pool(pool)
    assert defense.mode == "pool"
    logits = jax.random.normal(jax.random.key(1), (2, 6, NUM_CLASSES))
    key = jax.random.key(2)
    expected = modify_output(logits, sample_from_pool(pool, key, (2, 6)))
    np.testing.assert_array_equal(np.asarray(defense(logits, key)), np.asarray(expected))
    # A pytree: passes through jit as an argument.
    jitted = jax.jit(lambda d, x, k: d(x, k))(defense, logits, key)
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(expected))
    assert not np.array_equal(np.asarray(defense(logits, jax.random.key(3))), np.asarray(expected))
    labels = defense(logits, key).argmax(-1)
    np.testing.assert_array_equal(np.asarray(labels), np.asarray(logits.argmax(-1)))
    assert defense(jnp.zeros((0, NUM_CLASSES)), key).shape == (0, NUM_CLASSES)


def test_output_modifier_fresh_mode():
    defense = OutputModifier.fresh(linear_apply, sample_binary, break_ties=False)
    assert defense.mode == "fresh"
    logits = jax.random.normal(jax.random.key(1), (3, 4, NUM_CLASSES))
    key = jax.random.key(2)
    random_outputs = fresh_random_outputs(linear_apply, sample_binary, key, 12).reshape(3, 4, NUM_CLASSES)
    expected = modify_output(logits, random_outputs, break_ties=False)
    np.testing.assert_array_equal(np.asarray(defense(logits, key)), np.asarray(expected))
    jitted = jax.jit(lambda x, k: defense(x, k))(logits, key)
    np.testing.assert_array_equal(np.asarray(jitted), np.asarray(expected))
    assert not np.array_equal(np.asarray(defense(logits, jax.random.key(3))), np.asarray(expected))


# --------------------------------------------------------------------------------------------
# Validation errors.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "z, r, match",
    [
        (jnp.zeros((3, 4)), jnp.zeros((3, 5)), "same shape"),
        (jnp.zeros((3, 4)), jnp.zeros((4, 4)), "same shape"),
        (jnp.float32(1.0), jnp.float32(1.0), "at least 1 dimension"),
        (jnp.zeros((3, 1)), jnp.zeros((3, 1)), "number of classes"),
        (jnp.zeros((3, 4), jnp.int32), jnp.zeros((3, 4)), "outputs must have a float"),
        (jnp.zeros((3, 4)), jnp.zeros((3, 4), jnp.int32), "random_outputs must have a float"),
    ],
)
def test_modify_output_validation(z, r, match):
    with pytest.raises(ValueError, match=match):
        modify_output(z, r)


def test_modify_output_validation_before_tracing():
    with pytest.raises(ValueError, match="same shape"):
        jax.jit(modify_output)(jnp.zeros((3, 4)), jnp.zeros((3, 5)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_samples=0, num_features=3), "num_samples"),
        (dict(num_samples=-1, num_features=3), "num_samples"),
        (dict(num_samples=2.0, num_features=3), "num_samples"),
        (dict(num_samples=True, num_features=3), "num_samples"),
        (dict(num_samples=2, num_features=0), "num_features"),
    ],
)
def test_random_binary_inputs_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_binary_inputs(jax.random.key(0), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_samples=0), "num_samples"),
        (dict(image_shape=()), "image_shape"),
        (dict(image_shape=(4, 0, 3)), r"image_shape\[1\]"),
        (dict(image_shape="abc"), "image_shape"),
        (dict(max_pixel=0), "max_pixel"),
        (dict(max_pixel=256), r"max_pixel must be an integer in \[1, 255\]"),
        (dict(max_pixel=254.0), "max_pixel"),
        (dict(mean=(0.5, 0.5)), "mean must be a scalar or have shape"),
        (dict(std=np.ones((3, 1))), "std must be a scalar or have shape"),
        (dict(std=(0.2, 0.0, 0.2)), "std must be in"),
        (dict(std=-1.0), "std must be in"),
        (dict(mean=np.nan), "mean must be finite"),
    ],
)
def test_random_image_inputs_validation(kwargs, match):
    args = dict(num_samples=2, image_shape=(4, 4, 3), mean=0.5, std=0.25)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        random_image_inputs(jax.random.key(0), **args)


def test_pool_validation():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="pool_size"):
        make_random_output_pool(linear_apply, sample_binary, key, 0)
    with pytest.raises(ValueError, match="batch_size"):
        make_random_output_pool(linear_apply, sample_binary, key, 10, batch_size=0)
    with pytest.raises(ValueError, match="must have shape"):
        make_random_output_pool(lambda x: x.sum(-1), sample_binary, key, 10)
    with pytest.raises(ValueError, match="must have shape"):
        make_random_output_pool(lambda x: linear_apply(x)[:1], sample_binary, key, 10)
    with pytest.raises(ValueError, match="apply_fn output classes"):
        make_random_output_pool(lambda x: linear_apply(x)[:, :1], sample_binary, key, 10)
    with pytest.raises(ValueError, match="apply_fn output must have a float"):
        make_random_output_pool(lambda x: (x @ W).astype(jnp.int32), sample_binary, key, 10)
    with pytest.raises(ValueError, match="num must be"):
        fresh_random_outputs(linear_apply, sample_binary, key, 0)


@pytest.mark.parametrize(
    "pool, batch_shape, match",
    [
        (jnp.zeros((10,)), (2,), "pool must have 2 dimensions"),
        (jnp.zeros((2, 3, 4)), (2,), "pool must have 2 dimensions"),
        (jnp.zeros((0, 4)), (2,), "pool_size"),
        (jnp.zeros((10, 1)), (2,), "number of classes"),
        (jnp.zeros((10, 4), jnp.int32), (2,), "pool must have a float"),
        (jnp.zeros((10, 4)), (-1,), r"batch_shape\[0\]"),
        (jnp.zeros((10, 4)), (2, -1), r"batch_shape\[1\]"),
        (jnp.zeros((10, 4)), "ab", "batch_shape"),
    ],
)
def test_sample_from_pool_validation(pool, batch_shape, match):
    with pytest.raises(ValueError, match=match):
        sample_from_pool(pool, jax.random.key(0), batch_shape)


def test_output_modifier_validation():
    with pytest.raises(ValueError, match="pool must have 2 dimensions"):
        OutputModifier.from_pool(jnp.zeros((10,)))
    with pytest.raises(ValueError, match="apply_fn must be callable"):
        OutputModifier.fresh(None, sample_binary)
    with pytest.raises(ValueError, match="sample_inputs must be callable"):
        OutputModifier.fresh(linear_apply, 3)
    with pytest.raises(ValueError, match="needs a pool"):
        OutputModifier()(jnp.zeros((2, 5)), jax.random.key(0))
    defense = OutputModifier.from_pool(jnp.zeros((10, 5)))
    with pytest.raises(ValueError, match="last axis of size"):
        defense(jnp.zeros((2, 4)), jax.random.key(0))
    with pytest.raises(ValueError, match="number of classes"):
        defense(jnp.zeros((2, 1)), jax.random.key(0))
    fresh = OutputModifier.fresh(linear_apply, sample_binary)
    with pytest.raises(ValueError, match="same shape"):
        fresh(jnp.zeros((2, 4)), jax.random.key(0))


def test_benchmark_script_smoke(tmp_path):
    import importlib.util
    import json
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "bench_modify_output.py"
    spec = importlib.util.spec_from_file_location("bench_modify_output", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    payload = bench.main(["--batch", "64", "--classes", "10", "--repeats", "2", "--json", str(out)])
    assert json.loads(out.read_text())["results"].keys() == payload["results"].keys()
    assert len(payload["results"]) == 7  # every alternative agreed with modify_output
