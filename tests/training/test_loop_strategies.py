"""Loop strategies of the engine: "host" (loop-free programs driven from Python) == "scan".

On CPU the two strategies give bit-identical parameters and histories, for a dense and a
convolutional model, with best_val selection, both shuffle modes, guarded steps (unequal member
counts), an optimizer reset, Adam with gradient clipping and Weighted Smoothing's per-epoch
example state, whatever ``steps_per_call``.
"""

import jax
import numpy as np
import pytest

from hampjax.models import get_model
from hampjax.models.cnn import SalemCNN
from hampjax.training import (
    OptimizerSpec,
    undefended_recipe,
    train_many,
    weighted_smoothing_recipe,
)
from hampjax.training import engine

N, C = 40, 3


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 8, 8, 2)).astype(np.float32), rng.integers(0, C, N)


def _keep():
    keep = np.zeros((2, N), bool)
    keep[0, :23] = True  # 23 and 13 members: 3 and 2 steps of 8, a guarded tail step
    keep[1, 20:33] = True
    return keep


def _recipes():
    base = undefended_recipe("digits", epochs=2, batch_size=8).replace(
        optimizer=OptimizerSpec(kind="sgd", learning_rate=0.05, momentum=0.9))
    return {
        "best_val_every_epoch": base.replace(selection="best_val", min_improvement=0.0,
                                             shuffle="every_epoch"),
        "once_reset": base.replace(shuffle="once", reset_optimizer_each_epoch=True),
        # Adam with clipping: XLA fused its state updates across unrolled steps (and across a
        # one-step tail loop), which changed float32 rounding before the engine fenced them.
        "adam_clip": base.replace(optimizer=OptimizerSpec(kind="adam", learning_rate=0.022,
                                                          clip_norm=10.0)),
        "ws": weighted_smoothing_recipe(sigma=0.1, epochs=2, batch_size=8).replace(
            selection="best_val", shuffle="every_epoch"),
    }


MODELS = {
    "fc": lambda: get_model("fc", C, hidden_sizes=(8,)),
    "cnn": lambda: SalemCNN(C, channels=3, hidden=8),
}


def _assert_same(a, b):
    for name in ("train_loss", "train_acc", "val_acc", "best_epoch"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for la, lb in zip(jax.tree_util.tree_leaves(a.variables), jax.tree_util.tree_leaves(b.variables)):
        np.testing.assert_array_equal(la, lb)


def _train(images, model_name, recipe, **kw):
    x, y = images
    if model_name == "fc":
        x = x.reshape(N, -1)
    recipe = _recipes()[recipe] if isinstance(recipe, str) else recipe
    return train_many(MODELS[model_name](), recipe, x, y, _keep(), seed=3,
                      val_data=(x[:9], y[:9]), eval_batch_size=16, progress=False,
                      devices=jax.devices()[:1], **kw)


@pytest.mark.parametrize("recipe_name", ["best_val_every_epoch", "once_reset", "adam_clip"])
def test_host_loop_bit_identical_to_scan_dense(images, recipe_name):
    scan = _train(images, "fc", recipe_name, loop="scan")
    host = _train(images, "fc", recipe_name, loop="host", steps_per_call=2)
    assert scan.performance["loop"] == "scan" and host.performance["loop"] == "host"
    assert host.performance["steps_per_call"] == 2
    _assert_same(scan, host)
    if recipe_name == "adam_clip":  # 3 steps per epoch: one call, and one call per step
        _assert_same(scan, _train(images, "fc", recipe_name, loop="host", steps_per_call=3))
        _assert_same(scan, _train(images, "fc", recipe_name, loop="host", steps_per_call=1))


def test_host_loop_conv(images):
    """A CNN with best_val, every-epoch shuffle and a guarded tail step: host == scan."""
    before = dict(engine.TRACE_COUNTS)
    a = _train(images, "cnn", "best_val_every_epoch", loop="host", steps_per_call=2)
    assert a.performance["loop"] == "host"
    # 3 steps per epoch in calls of 2 and 1: programs of 2 and of 1 unrolled steps, traced
    # once for both epochs; one eval batch of the 9 validation rows.
    assert engine.TRACE_COUNTS["host_steps"] - before["host_steps"] == 2
    assert engine.TRACE_COUNTS["host_eval"] - before["host_eval"] == 1
    assert engine.TRACE_COUNTS["epoch"] == before["epoch"]  # no scan program
    # Within the host strategy results do not depend on steps_per_call.
    _assert_same(a, _train(images, "cnn", "best_val_every_epoch", loop="host",
                           steps_per_call=3))
    # The zoo's convolution (hampjax.models.convolution) compiles to the same kernels inside
    # and outside a while loop: "auto" scans the zoo's conv nets on CPU, bit-identically.
    c = _train(images, "cnn", "best_val_every_epoch")
    assert c.performance["loop"] == "scan"
    _assert_same(a, c)


def test_weighted_smoothing_state_scan_vs_host(images):
    """Weighted Smoothing's per-epoch example state (an eval-mode pass over the candidates,
    then noisy probabilities in every step, Adam with clipping): bit-identical."""
    recipe = _recipes()["ws"].replace(**{"example_state.start_epoch": 0})
    a = _train(images, "fc", recipe, loop="scan")
    _assert_same(a, _train(images, "fc", recipe, loop="host", steps_per_call=2))


def test_auto_loop_scans_zoo_convs_but_not_plain_ones(images):
    import flax.linen as nn
    from hampjax.models import model_functions

    class PlainConv(nn.Module):  # A user's model: flax's Conv with JAX's own gradient.
        @nn.compact
        def __call__(self, x, *, train):
            return nn.Dense(C)(nn.Conv(2, (3, 3))(x).mean((1, 2)))

    x = images[0][:2]
    for model, want in ((MODELS["cnn"](), False), (PlainConv(), True)):
        init_fn, apply_fn = model_functions(model)
        shapes = jax.eval_shape(init_fn, jax.random.key(0), x)
        assert engine.has_convolution(apply_fn, shapes, x) is want


def test_choose_loop():
    assert engine.choose_loop("auto", "cpu", has_conv=True) == "host"
    assert engine.choose_loop("auto", "cpu", has_conv=False) == "scan"
    assert engine.choose_loop("auto", "gpu", has_conv=True) == "scan"
    assert engine.choose_loop("host", "gpu", has_conv=False) == "host"
    with pytest.raises(ValueError, match="loop"):
        engine.choose_loop("fast", "cpu", has_conv=True)


def test_predict_many_unrolls_conv_models_on_cpu(images, monkeypatch):
    # On CPU predict_many writes a few models out one after the other (vmapped convolutions
    # become slow grouped convolutions); the outputs match the vmapped ones.
    from hampjax.models import model_functions
    from hampjax.training import predict, predict_many

    x, _ = images
    init_fn, apply_fn = model_functions(MODELS["cnn"]())
    variables = jax.vmap(init_fn, in_axes=(0, None))(jax.random.split(jax.random.key(0), 3),
                                                     x[:1])
    assert predict._unroll_models(3, None)
    unrolled = predict_many(apply_fn, variables, x, batch_size=16)
    monkeypatch.setattr(predict, "_MAX_UNROLLED_MODELS", 0)
    vmapped = predict_many(apply_fn, variables, x, batch_size=16)
    assert unrolled.dtype == np.float32
    np.testing.assert_allclose(unrolled, vmapped, rtol=1e-5, atol=1e-6)
