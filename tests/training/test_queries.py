"""Test-time queries: NumPy references (np.flip, np.pad(mode="reflect") + crop), the named
query sets, jit / vmap, and every validation error."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.training.queries import Query, QuerySet, identity, mirror, shift


def np_shift(x, dy, dx):
    """Obviously-correct reference: reflect-pad by |dy|, |dx|, then crop so content moves."""
    py, px = abs(dy), abs(dx)
    padded = np.pad(x, ((0, 0), (py, py), (px, px), (0, 0)), mode="reflect")
    h, w = x.shape[1:3]
    return padded[:, py - dy:py - dy + h, px - dx:px - dx + w, :]


def np_query(x, mirrored, dy, dx):
    if mirrored:
        x = np.flip(x, axis=2)
    return np_shift(x, dy, dx)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).normal(size=(3, 5, 6, 2)).astype(np.float32)


def test_identity_and_mirror_match_numpy(images):
    np.testing.assert_array_equal(identity(images), images)
    np.testing.assert_array_equal(mirror(images), np.flip(images, axis=2))
    np.testing.assert_array_equal(mirror(mirror(images)), images)


@pytest.mark.parametrize("dy,dx", list(itertools.product((-2, -1, 0, 1, 2), repeat=2)))
def test_shift_matches_numpy_reflect_pad_then_crop(images, dy, dx):
    np.testing.assert_array_equal(shift(images, dy, dx), np_shift(images, dy, dx))


def test_shift_hand_computed():
    x = np.arange(9).reshape(1, 3, 3, 1)
    # Content moves one row down; the new top row reflects row 1 about row 0.
    np.testing.assert_array_equal(
        np.asarray(shift(x, 1, 0))[0, :, :, 0], [[3, 4, 5], [0, 1, 2], [3, 4, 5]]
    )
    # Content moves one column left; the new right column reflects column 1 about column 2.
    np.testing.assert_array_equal(
        np.asarray(shift(x, 0, -1))[0, :, :, 0], [[1, 2, 1], [4, 5, 4], [7, 8, 7]]
    )
    # Shifts keep the dtype and introduce no new values.
    assert shift(x, 1, -1).dtype == jnp.asarray(x).dtype
    assert set(np.asarray(shift(x, 1, -1)).ravel()) <= set(x.ravel())


def test_named_sets():
    none, two, many = QuerySet.none(), QuerySet.mirror(), QuerySet.mirror_shifts()
    assert (none.size, two.size, many.size) == (1, 2, 18)
    assert none.names == ("identity",)
    assert two.names == ("identity", "mirror")
    assert many.queries[0] == Query() and many.queries[0].is_identity
    assert many.queries[:2] == two.queries
    expected = {Query(m, dy, dx) for m in (False, True) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert set(many.queries) == expected
    assert len(set(many.names)) == 18
    assert many.names[2] == "shift(-1,-1)" and many.names[3] == "mirror+shift(-1,-1)"
    # Hashable and equal by value (usable as static jit arguments).
    assert hash(QuerySet.mirror_shifts()) == hash(many) and QuerySet.mirror_shifts() == many
    assert not none.needs_images and two.needs_images


def test_apply_matches_numpy_per_query(images):
    qs = QuerySet.mirror_shifts()
    out = np.asarray(qs.apply(images))
    assert out.shape == (18,) + images.shape
    np.testing.assert_array_equal(out[0], images)
    for q, query in enumerate(qs.queries):
        np.testing.assert_array_equal(
            out[q], np_query(images, query.mirrored, query.dy, query.dx), err_msg=query.name
        )


def test_none_accepts_tabular_and_any_rank():
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(QuerySet.none().apply(x), x[None])
    np.testing.assert_array_equal(QuerySet.none().apply(np.arange(5.0)), np.arange(5.0)[None])


def test_jit_and_vmap(images):
    qs = QuerySet.mirror_shifts()
    eager = np.asarray(qs.apply(images))
    np.testing.assert_array_equal(jax.jit(qs.apply)(images), eager)
    stacked = np.stack([images, images[::-1]])  # [2, N, H, W, C]
    batched = np.asarray(jax.vmap(qs.apply)(stacked))  # [2, Q, N, H, W, C]
    np.testing.assert_array_equal(batched[0], eager)
    np.testing.assert_array_equal(batched[1], np.asarray(qs.apply(images[::-1])))
    np.testing.assert_array_equal(
        jax.jit(lambda x: shift(x, 1, -1))(images), np_shift(images, 1, -1)
    )
    np.testing.assert_array_equal(jax.vmap(mirror)(stacked)[1], np.flip(images[::-1], axis=2))


def test_validation_errors(images):
    tabular = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"x must be 4-D \[N, H, W, C\]"):
        mirror(tabular)
    with pytest.raises(ValueError, match="x must be 4-D"):
        shift(tabular, 1, 0)
    with pytest.raises(ValueError, match="x must be 4-D"):
        QuerySet.mirror().apply(tabular)
    with pytest.raises(ValueError, match="x must be 4-D"):
        Query(dy=1)(tabular)
    with pytest.raises(ValueError, match="images must be 4-D"):
        QuerySet.mirror_shifts().check_input(images[0], name="images")
    with pytest.raises(ValueError, match="x must have a leading example axis"):
        QuerySet.none().check_input(np.float32(1.0))
    with pytest.raises(ValueError, match=r"dy must be in \[-4, 4\]"):
        shift(images, 5, 0)
    with pytest.raises(ValueError, match=r"dx must be in \[-5, 5\]"):
        shift(images, 0, -6)
    with pytest.raises(ValueError, match="dy must be an integer"):
        shift(images, 0.5, 0)
    with pytest.raises(ValueError, match="dx must be an integer"):
        Query(dx=True)
    with pytest.raises(ValueError, match="mirrored must be a bool"):
        Query(mirrored=1)
    with pytest.raises(ValueError, match="too small for query shift"):
        QuerySet.mirror_shifts().check_input(np.zeros((2, 1, 4, 1)))
    with pytest.raises(ValueError, match="queries must be a non-empty tuple"):
        QuerySet(())
    with pytest.raises(ValueError, match="queries must hold only Query"):
        QuerySet((Query(), "mirror"))
    assert QuerySet([Query()]).queries == (Query(),)  # lists become tuples
    assert shift(images, np.int64(1), 0).shape == images.shape  # NumPy integers are accepted
