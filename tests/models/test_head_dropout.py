"""head_dropout_rate: dropout before the classifier, in train mode only; rate 0 is the plain model."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.models import get_model, model_functions


def test_head_dropout_train_only():
    name, kwargs = "fc", {"hidden_sizes": (16,)}
    x = jax.random.normal(jax.random.key(0), (4, 6))
    init0, apply0 = model_functions(get_model(name, 3, **kwargs))
    init5, apply5 = model_functions(get_model(name, 3, head_dropout_rate=0.5, **kwargs))
    variables = init0(jax.random.key(1), x[:1])
    # Same parameters (dropout has none); eval mode is the plain model.
    same = jax.tree_util.tree_map(np.array_equal, variables, init5(jax.random.key(1), x[:1]))
    assert all(jax.tree_util.tree_leaves(same))
    plain = apply0(variables, x, train=False)[0]
    np.testing.assert_array_equal(apply5(variables, x, train=False)[0], plain)
    np.testing.assert_array_equal(apply0(variables, x, train=True)[0], plain)
    a = apply5(variables, x, train=True, key=jax.random.key(2))[0]
    b = apply5(variables, x, train=True, key=jax.random.key(3))[0]
    assert not np.allclose(a, plain) and not np.allclose(a, b)
    with pytest.raises(ValueError, match="head_dropout_rate=0.5"):
        apply5(variables, x, train=True)


def test_head_dropout_rate_validation():
    with pytest.raises(ValueError, match=r"head_dropout_rate must be in \[0, 1\)"):
        get_model("resnet20", 10, head_dropout_rate=1.0)
    for name in ("fc", "resnet18", "resnet20", "vgg11_bn", "salem_cnn"):
        assert get_model(name, 10, head_dropout_rate=0.5).head_dropout_rate == 0.5
    for name in ("resnet20", "salem_cnn"):  # shapes only (no convolutions run)
        _, apply_fn = model_functions(get_model(name, 10, head_dropout_rate=0.5))
        shapes = jax.eval_shape(model_functions(get_model(name, 10))[0], jax.random.key(0),
                                jnp.zeros((1, 32, 32, 3)))
        out = jax.eval_shape(lambda v, x: apply_fn(v, x, train=True, key=jax.random.key(0))[0],
                             shapes, jnp.zeros((2, 32, 32, 3)))
        assert out.shape == (2, 10)
