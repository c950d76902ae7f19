"""The zoo's convolution: JAX's values and gradients, the same bits inside and outside loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from hampjax.models.convolution import conv_general_dilated

NHWC = ("NHWC", "HWIO", "NHWC")
CASES = [  # strides, groups, kernel, padding, c_out
    (2, 1, 3, "SAME", 6),
    (2, 4, 3, ((1, 1), (1, 1)), 8),  # depthwise, channel multiplier 2
    (2, 2, 3, ((0, 1), (2, 0)), 6),  # grouped, asymmetric padding
]


def _reference(x, w, strides, padding, groups):
    return lax.conv_general_dilated(x, w, (strides, strides), padding, dimension_numbers=NHWC,
                                    feature_group_count=groups)


def _ours(x, w, strides, padding, groups):
    return conv_general_dilated(x, w, (strides, strides), padding, dimension_numbers=NHWC,
                                feature_group_count=groups)


@pytest.mark.parametrize("strides,groups,k,padding,co", CASES)
def test_values_and_gradients_match_jax(strides, groups, k, padding, co):
    x = jax.random.normal(jax.random.key(0), (3, 9, 8, 4))
    w = jax.random.normal(jax.random.key(1), (k, k, 4 // groups, co))
    want = _reference(x, w, strides, padding, groups)
    np.testing.assert_array_equal(_ours(x, w, strides, padding, groups), want)
    probe = jax.random.normal(jax.random.key(2), want.shape)

    def loss(fn):
        return lambda x, w: jnp.sum(jnp.sin(fn(x, w, strides, padding, groups)) * probe)

    got = jax.grad(loss(_ours), (0, 1))(x, w)
    ref = jax.grad(loss(_reference), (0, 1))(x, w)
    for name, a, b in zip(("input", "kernel"), got, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("strides,groups,k,padding,co", [CASES[0], CASES[1]])
def test_gradients_have_the_same_bits_inside_a_scan(strides, groups, k, padding, co):
    """The point of the module: XLA:CPU compiles JAX's own kernel gradient differently inside
    a while loop; ours gives the same bits in a jitted call and in a scan body."""
    x = jax.random.normal(jax.random.key(0), (4, 16, 16, 4))
    w = jax.random.normal(jax.random.key(1), (k, k, 4 // groups, co))

    def grads(x, w):
        return jax.grad(lambda x, w: jnp.sum(_ours(x, w, strides, padding, groups) ** 2),
                        (0, 1))(x, w)

    direct = jax.jit(grads)(x, w)
    scanned = jax.jit(lambda x, w: jax.lax.scan(lambda c, _: (c, grads(x, w)), 0, None,
                                                length=2)[1])(x, w)
    for a, b in zip(direct, scanned):
        np.testing.assert_array_equal(a, b[1])


@pytest.mark.parametrize("kwargs,match", [
    (dict(lhs_dilation=(2, 2)), "lhs_dilation"),
    (dict(rhs_dilation=(2, 2)), "rhs_dilation"),
    (dict(batch_group_count=2), "batch_group_count"),
    (dict(dimension_numbers=("NCHW", "OIHW", "NCHW")), "dimension_numbers"),
    (dict(precision=lax.Precision.HIGHEST), "precision"),
])
def test_rejects_what_it_does_not_implement(kwargs, match):
    x, w = jnp.zeros((1, 4, 4, 2)), jnp.zeros((3, 3, 2, 2))
    kwargs = {"dimension_numbers": NHWC, **kwargs}
    with pytest.raises(ValueError, match=match):
        conv_general_dilated(x, w, (1, 1), "SAME", **kwargs)
