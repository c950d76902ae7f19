"""The shared validation helpers: messages name the argument and range; tracers are skipped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax import validation as v


def test_in_range_brackets_and_messages():
    v.check_in_range("g", 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^g must be in \[0, 1\), got 1.0$"):
        v.check_in_range("g", 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^u must be in \(0, 1\], got 0.0$"):
        v.check_in_range("u", 0.0, 0.0, 1.0, low_inclusive=False, high_inclusive=True)
    v.check_in_range("u", 1.0, 0.0, 1.0, low_inclusive=False, high_inclusive=True)


def test_nan_and_inf_rejected():
    with pytest.raises(ValueError, match="alpha"):
        v.check_nonnegative("alpha", float("nan"))
    with pytest.raises(ValueError, match="sigma"):
        v.check_positive("sigma", float("inf"))


def test_array_values_checked_elementwise():
    v.check_in_range("x", np.array([0.1, 0.5]), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\) element-wise; 2 element\(s\) are not, e.g. 2.0"):
        v.check_in_range("x", np.array([0.1, 2.0, -3.0]), 0.0, 1.0)


def test_tracers_skip_value_checks_but_not_shape_checks():
    @jax.jit
    def f(x):
        v.check_in_range("x", x, 0.0, 1.0)  # skipped: x is a tracer
        v.check_rank_at_least("x", x, 1)  # shapes are static: still checked
        return x

    f(jnp.array([5.0]))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        f(jnp.array(5.0))
    seen = []
    jax.jit(lambda x: seen.append(v.is_concrete(x)) or x)(1.0)
    assert seen == [False]
    assert v.is_concrete(jnp.ones(2)) and v.is_concrete(np.ones(2)) and v.is_concrete(0.5)


def test_choice_and_int():
    with pytest.raises(ValueError, match=r"^method must be one of 'a', 'b'; got 'c'$"):
        v.check_choice("method", "c", ("a", "b"))
    assert v.check_positive_int("n", np.int64(3)) == 3
    for bad in (0, 2.0, True, "3"):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            v.check_positive_int("n", bad)


def test_labels():
    v.check_labels(np.array([0, 2]), 3)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got 3"):
        v.check_labels(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="integer class indices"):
        v.check_labels(np.array([0.0]), 3)
    v.check_labels(np.zeros((0,), np.int32), 3)  # empty is fine


def test_shapes_and_binary_labels():
    v.check_same_shape(("a", "b"), np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"a and b must have the same shape, got a \(2, 3\), b \(3, 2\)"):
        v.check_same_shape(("a", "b"), np.zeros((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="last axis of size num_classes=4"):
        v.check_last_dim("logits", np.zeros((2, 3)), 4)
    v.check_binary_labels(np.array([0, 1, 1]))
    v.check_binary_labels(np.array([True, False]))
    with pytest.raises(ValueError, match="both members"):
        v.check_binary_labels(np.array([1, 1]))
    with pytest.raises(ValueError, match="only 0"):
        v.check_binary_labels(np.array([0, 2]))
    with pytest.raises(ValueError, match="finite"):
        v.check_finite("scores", np.array([0.0, np.nan]))
