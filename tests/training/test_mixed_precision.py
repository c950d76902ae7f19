"""Mixed precision (precision="bfloat16"): close to float32, float32 state, in the fingerprint.

Tolerances (stated here, checked below): after 3 epochs of the FC net and of a tiny CNN, the
bfloat16 run's final train accuracy is within 0.1 of the float32 run's, its eval-mode logits
agree with the float32 run's to 0.05 + 5% (absolute + relative), and every stored parameter is
float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.models import get_model, model_functions
from hampjax.models.cnn import SalemCNN
from hampjax.training import OptimizerSpec, balanced_keep, train_many, undefended_recipe
from hampjax.training import engine

N, C = 64, 3


def _data(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N,) + shape).astype(np.float32)
    return x, rng.integers(0, C, N)


RECIPE = undefended_recipe("digits", epochs=3, batch_size=16).replace(
    optimizer=OptimizerSpec(kind="sgd", learning_rate=0.05, momentum=0.9))


# The CNN case costs ~16 s of conv training on CPU: it runs with -m slow.
@pytest.mark.parametrize("name", ["fc", pytest.param("cnn", marks=pytest.mark.slow)])
def test_bfloat16_close_to_float32(name):
    if name == "fc":
        model, (x, y) = get_model("fc", C, hidden_sizes=(16,)), _data((12,))
    else:
        model, (x, y) = SalemCNN(C, channels=3, hidden=8), _data((6, 6, 2))
    keep = balanced_keep(2, N, seed=0)
    kw = dict(seed=0, progress=False, devices=jax.devices()[:1], loop="scan")
    f32 = train_many(model, RECIPE, x, y, keep, precision="auto", **kw)  # auto: f32 on CPU
    bf16 = train_many(model, RECIPE, x, y, keep, precision="bfloat16", **kw)
    assert f32.performance["precision"] == "float32"
    assert bf16.performance["precision"] == "bfloat16"
    for leaf in jax.tree_util.tree_leaves(bf16.variables):
        assert leaf.dtype == np.float32
    assert not np.array_equal(f32.train_loss, bf16.train_loss)  # it did compute in bfloat16
    np.testing.assert_allclose(bf16.train_acc[:, -1], f32.train_acc[:, -1], atol=0.1)
    _, apply_fn = model_functions(model)
    for m in range(2):
        logits = [apply_fn(jax.tree_util.tree_map(lambda a: a[m], r.variables), jnp.asarray(x),
                           train=False)[0] for r in (f32, bf16)]
        assert logits[1].dtype == jnp.float32
        np.testing.assert_allclose(logits[1], logits[0], atol=0.05, rtol=0.05)


def test_mixed_precision_apply_keeps_float32_state():
    model = get_model("fc", C, hidden_sizes=(4,))
    init_fn, apply_fn = model_functions(model)
    variables = init_fn(jax.random.key(0), jnp.zeros((1, 5)))
    apply = engine.mixed_precision_apply(apply_fn)
    logits, new = jax.jit(lambda v: apply(v, jnp.ones((2, 5)), train=True))(variables)
    assert logits.dtype == jnp.float32
    assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(new))
    grads = jax.jit(jax.grad(lambda v: apply(v, jnp.ones((2, 5)), train=True)[0].sum()))(variables)
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(grads))


def test_precision_is_in_the_fingerprint(tmp_path):
    x, y = _data((12,))
    model = get_model("fc", C, hidden_sizes=(4,))
    keep = balanced_keep(2, N, seed=0)
    recipe = RECIPE.replace(epochs=1)
    kw = dict(seed=0, progress=False, devices=jax.devices()[:1], workdir=tmp_path)
    train_many(model, recipe, x, y, keep, precision="bfloat16", **kw)
    with pytest.raises(ValueError, match="precision"):
        train_many(model, recipe, x, y, keep, precision="float32", **kw)
    with pytest.raises(ValueError, match="precision"):
        engine.choose_precision("float16", "cpu")
