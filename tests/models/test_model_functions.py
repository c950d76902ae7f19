"""Pure init/apply functions: NumPy references, BatchNorm train/eval behavior, vmap, jit, dropout.

Only tiny models run here (8x8 images, a few channels); the big ones are covered by
``test_models.py`` through ``jax.eval_shape``.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.models.cnn import SalemCNN
from hampjax.models.densenet import DenseNet
from hampjax.models.mlp import FCNet
from hampjax.models.registry import model_functions
from hampjax.models.resnet import ResNet20, WideResNet, zero_pad_shortcut
from hampjax.models.vgg import VGG

EPS = 1e-5
TOL = dict(rtol=2e-4, atol=2e-4)


# Threefry keys make XLA:CPU compile every random draw slowly (about 1 s each with
# jax_threefry_partitionable=True), so conv models here are initialized with "rbg" keys or
# filled from NumPy; the initializers do not depend on the key implementation.
RBG = functools.partial(jax.random.key, impl="rbg")


def jitted(module):
    init_fn, apply_fn = model_functions(module)
    return jax.jit(init_fn), jax.jit(apply_fn, static_argnames="train")


def images(seed, shape=(4, 8, 8, 3)):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def to_np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def assert_trees_close(a, b, **tol):
    chex.assert_trees_all_equal_structs(a, b)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **(tol or TOL)), a, b)


# ----------------------------------------------------------------------------------------
# Slow, obviously correct NumPy building blocks (float64).


def np_conv_same(x, kernel, bias=None):
    """Stride-1 SAME convolution, NHWC input, HWIO kernel."""
    kh, kw = kernel.shape[:2]
    _, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i : i + h, j : j + w, :] @ kernel[i, j]
    return out if bias is None else out + bias


def np_pool(x, reduce):
    b, h, w, c = x.shape
    return reduce(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def relu(x):
    return np.maximum(x, 0.0)


class NpBatchNorm:
    """BatchNorm reference that records the running statistics a train step would produce."""

    def __init__(self, params, stats, train):
        self.params, self.stats, self.train = params, stats, train
        self.new_stats = jax.tree.map(lambda a: a, stats)

    def __call__(self, x, *path):
        p, s = self.params, self.stats
        for key in path:
            p, s = p[key], s[key]
        if self.train:
            mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
            new = self.new_stats
            for key in path:
                new = new[key]
            new["mean"] = 0.9 * s["mean"] + 0.1 * mean
            new["var"] = 0.9 * s["var"] + 0.1 * var
        else:
            mean, var = s["mean"], s["var"]
        return (x - mean) / np.sqrt(var + EPS) * p["scale"] + p["bias"]


def np_densenet(params, stats, x, *, train, layers_per_block, compression):
    """DenseNet-BC forward per HAMP Sec. IV-A, written from the description."""
    bn = NpBatchNorm(params, stats, train)
    h = np_conv_same(x, params["stem"]["kernel"])
    for block in range(3):
        for i in range(layers_per_block):
            name = f"block{block}_layer{i}"
            y = np_conv_same(relu(bn(h, name, "bn1")), params[name]["conv1"]["kernel"])
            y = np_conv_same(relu(bn(y, name, "bn2")), params[name]["conv2"]["kernel"])
            h = np.concatenate([h, y], axis=-1)
        if block < 2:
            name = f"transition{block}"
            out = int(np.floor(h.shape[-1] * compression))
            kernel = params[name]["conv"]["kernel"]
            assert kernel.shape == (1, 1, h.shape[-1], out)
            h = np_pool(np_conv_same(relu(bn(h, name, "bn")), kernel), np.mean)
    h = relu(bn(h, "head_bn")).mean(axis=(1, 2))
    logits = h @ params["classifier"]["kernel"] + params["classifier"]["bias"]
    return logits, bn.new_stats


def numpy_variables(module, x_shape, seed, *, far_running_stats=False):
    """Random variables of the model's structure, drawn with NumPy (nothing is compiled).

    Kernels ~ N(0, 2 / fan_in); BN scales in [0.5, 2], biases ~ N(0, 0.5^2). Running statistics
    are the init values (mean 0, var 1) or, with ``far_running_stats``, means ~ N(3, 1) and
    variances in [5, 10], far from any batch's statistics.
    """
    init_fn, _ = model_functions(module)
    shapes = jax.eval_shape(init_fn, jax.random.key(0), jax.ShapeDtypeStruct(x_shape, jnp.float32))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "kernel":
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
        elif name == "scale":
            value = rng.uniform(0.5, 2.0, shape)
        elif name == "bias":
            value = 0.5 * rng.normal(size=shape)
        elif name == "mean":
            value = 3.0 + rng.normal(size=shape) if far_running_stats else np.zeros(shape)
        elif name == "var":
            value = rng.uniform(5.0, 10.0, shape) if far_running_stats else np.ones(shape)
        else:
            raise AssertionError(f"unexpected variable {path}")
        return jnp.asarray(value, jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


TINY_DENSENET = DenseNet(6, depth=16, growth_rate=4, compression=0.5)  # 2 layers per block


@pytest.fixture(scope="module")
def tiny_densenet():
    _, apply_fn = jitted(TINY_DENSENET)
    x = images(1)
    variables = numpy_variables(TINY_DENSENET, x.shape, seed=2, far_running_stats=True)
    eval_out = apply_fn(variables, x, train=False)
    train_out = apply_fn(variables, x, train=True)
    return variables, x, eval_out, train_out


def test_densenet_eval_uses_running_statistics(tiny_densenet):
    variables, x, (logits, new_variables), (train_logits, _) = tiny_densenet
    v = to_np(variables)
    expected, _ = np_densenet(
        v["params"], v["batch_stats"], np.asarray(x, np.float64),
        train=False, layers_per_block=2, compression=0.5,
    )  # fmt: skip
    np.testing.assert_allclose(logits, expected, **TOL)
    # The running statistics are far from the batch's, so train mode must differ a lot.
    assert np.max(np.abs(np.asarray(logits) - np.asarray(train_logits))) > 0.1
    # Eval mode returns the variables unchanged, in the same structure.
    chex.assert_trees_all_equal(new_variables, variables)


def test_densenet_train_uses_batch_statistics_and_updates_running_ones(tiny_densenet):
    variables, x, _, (logits, new_variables) = tiny_densenet
    v = to_np(variables)
    expected, expected_stats = np_densenet(
        v["params"], v["batch_stats"], np.asarray(x, np.float64),
        train=True, layers_per_block=2, compression=0.5,
    )  # fmt: skip
    np.testing.assert_allclose(logits, expected, **TOL)
    assert_trees_close(new_variables["batch_stats"], expected_stats, rtol=1e-4, atol=1e-4)
    chex.assert_trees_all_equal(new_variables["params"], variables["params"])
    changed = jax.tree.map(
        lambda a, b: bool(np.max(np.abs(np.asarray(a) - np.asarray(b))) > 1e-3),
        new_variables["batch_stats"], variables["batch_stats"],
    )  # fmt: skip
    assert all(jax.tree.leaves(changed))


# ----------------------------------------------------------------------------------------
# Batch (in)dependence and running-stat updates for every BatchNorm architecture.

BN_MODELS = {
    "densenet22": DenseNet(5, depth=22),
    "resnet20_A": ResNet20(5, shortcut="A", depth=8),
    "resnet20_B": ResNet20(5, shortcut="B", depth=8),
    "wrn10_1": WideResNet(5, depth=10, width=1),
    "vgg_bn": VGG(5, config=(8, "M", 16, "M")),
}


@pytest.mark.parametrize("name", sorted(BN_MODELS))
def test_eval_is_batch_independent_and_train_is_not(name):
    _, apply_fn = jitted(BN_MODELS[name])
    x = images(3)
    x_other = x.at[1:].set(images(4)[1:] * 3.0 + 1.0)  # Same example 0, different batch-mates.
    variables = numpy_variables(BN_MODELS[name], x.shape, seed=0)
    # Move the running statistics away from their init values (one train step).
    _, variables = apply_fn(variables, images(5), train=True)

    eval_a, eval_vars = apply_fn(variables, x, train=False)
    eval_b, _ = apply_fn(variables, x_other, train=False)
    np.testing.assert_allclose(eval_a[0], eval_b[0], rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_equal(eval_vars, variables)

    train_a, train_vars = apply_fn(variables, x, train=True)
    train_b, _ = apply_fn(variables, x_other, train=True)
    assert np.max(np.abs(np.asarray(train_a[0]) - np.asarray(train_b[0]))) > 1e-3
    chex.assert_trees_all_equal(train_vars["params"], variables["params"])
    moved = jax.tree.leaves(
        jax.tree.map(lambda a, b: bool(jnp.any(a != b)), train_vars["batch_stats"],
                     variables["batch_stats"])
    )  # fmt: skip
    assert all(moved)


def test_fresh_batch_stats_are_zero_mean_unit_variance():
    init_fn, _ = jitted(BN_MODELS["resnet20_A"])
    stats = init_fn(RBG(0), images(0)[:1])["batch_stats"]
    for path, leaf in jax.tree_util.tree_leaves_with_path(stats):
        np.testing.assert_array_equal(leaf, 0.0 if path[-1].key == "mean" else 1.0)


# ----------------------------------------------------------------------------------------
# vmap over a leading model axis == a loop of single models.


@pytest.mark.parametrize(
    "module,shape,make_key",
    [
        (FCNet(4, hidden_sizes=(16, 8)), (5, 6), jax.random.key),
        (ResNet20(4, depth=8, width=4), (3, 8, 8, 3), RBG),
    ],
    ids=["fc", "resnet8"],
)
def test_vmap_over_models_matches_loop(module, shape, make_key):
    init_fn, apply_fn = model_functions(module)
    keys = jax.random.split(make_key(7), 3)
    x = jax.random.normal(jax.random.key(8), shape)
    xs = jax.random.normal(jax.random.key(9), (3, *shape))  # One batch per model.

    stacked = jax.jit(jax.vmap(init_fn, in_axes=(0, None)))(keys, x[:1])
    singles = [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(3)]
    if make_key is jax.random.key:
        # Threefry draws under vmap equal the per-key draws ("rbg" ones need not).
        looped = [jax.jit(init_fn)(k, x[:1]) for k in keys]
        assert_trees_close(singles, looped, rtol=1e-6, atol=1e-7)
    # Different keys give different models.
    leaf = max(jax.tree.leaves(stacked["params"]), key=lambda a: a.size)
    assert not np.allclose(leaf[0], leaf[1])

    for train in (False, True):
        apply = functools.partial(apply_fn, train=train)
        shared = jax.jit(jax.vmap(apply, in_axes=(0, None)))(stacked, x)
        per_model = jax.jit(jax.vmap(apply, in_axes=(0, 0)))(stacked, xs)
        for i in range(3):
            expected = jax.jit(apply)(singles[i], x)
            assert_trees_close(jax.tree.map(lambda a, i=i: a[i], shared), expected)
            expected = jax.jit(apply)(singles[i], xs[i])
            assert_trees_close(jax.tree.map(lambda a, i=i: a[i], per_model), expected)


def test_jit_matches_eager_and_traces_once():
    init_fn, apply_fn = model_functions(FCNet(3, hidden_sizes=(8,)))
    variables = init_fn(jax.random.key(0), jnp.zeros((1, 5)))
    x = jax.random.normal(jax.random.key(1), (4, 5))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(variables, x):
        return apply_fn(variables, x, train=True)

    eager = apply_fn(variables, x, train=True)
    assert_trees_close(forward(variables, x), eager)
    assert_trees_close(forward(variables, x + 1.0), apply_fn(variables, x + 1.0, train=True))


# ----------------------------------------------------------------------------------------
# Models without BatchNorm: NumPy references.


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fcnet_matches_numpy_reference(activation):
    module = FCNet(3, hidden_sizes=(8, 6), activation=getattr(jax.nn, activation))
    init_fn, apply_fn = model_functions(module)
    x = jax.random.normal(jax.random.key(1), (4, 5))
    variables = init_fn(jax.random.key(0), x[:1])
    for train in (False, True):
        logits, new_variables = apply_fn(variables, x, train=train)
        chex.assert_trees_all_equal(new_variables, variables)
        p = to_np(variables["params"])
        h = np.asarray(x, np.float64)
        act = np.tanh if activation == "tanh" else relu
        for name in ("hidden0", "hidden1"):
            h = act(h @ p[name]["kernel"] + p[name]["bias"])
        expected = h @ p["classifier"]["kernel"] + p["classifier"]["bias"]
        np.testing.assert_allclose(logits, expected, **TOL)


def test_salem_cnn_matches_numpy_reference():
    module = SalemCNN(4, channels=3, hidden=5)
    _, apply_fn = jitted(module)
    x = images(2, (2, 8, 8, 3))
    variables = numpy_variables(module, x.shape, seed=0)
    p = to_np(variables["params"])
    h = np.asarray(x, np.float64)
    for i in range(2):
        h = np_pool(relu(np_conv_same(h, p[f"conv{i}"]["kernel"], p[f"conv{i}"]["bias"])), np.max)
    h = h.reshape(2, -1)
    assert h.shape == (2, 2 * 2 * 3)
    h = relu(h @ p["hidden"]["kernel"] + p["hidden"]["bias"])
    expected = h @ p["classifier"]["kernel"] + p["classifier"]["bias"]
    logits, _ = apply_fn(variables, x, train=True)
    np.testing.assert_allclose(logits, expected, **TOL)


def test_zero_pad_shortcut_matches_numpy():
    x = np.arange(2 * 5 * 5 * 3, dtype=np.float32).reshape(2, 5, 5, 3)
    out = np.asarray(zero_pad_shortcut(jnp.asarray(x), 8, 2))
    assert out.shape == (2, 3, 3, 8)
    expected = np.zeros((2, 3, 3, 8), np.float32)
    for i in range(3):
        for j in range(3):
            expected[:, i, j, 2:5] = x[:, 2 * i, 2 * j, :]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(zero_pad_shortcut(jnp.asarray(x), 3, 1), x)


# ----------------------------------------------------------------------------------------
# Dropout keys and initialization.


def test_dropout_requires_key_in_train_mode_only():
    module = DenseNet(3, depth=7, growth_rate=4, bottleneck=False, dropout_rate=0.5)
    _, apply_fn = jitted(module)
    x = images(1)
    variables = numpy_variables(module, x.shape, seed=0)
    with pytest.raises(ValueError, match="key is required when train=True"):
        model_functions(module)[1](variables, x, train=True)
    a, _ = apply_fn(variables, x, train=True, key=RBG(1))
    b, _ = apply_fn(variables, x, train=True, key=RBG(1))
    c, _ = apply_fn(variables, x, train=True, key=RBG(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    e1, _ = apply_fn(variables, x, train=False)
    e2, _ = apply_fn(variables, x, train=False, key=RBG(3))
    np.testing.assert_array_equal(e1, e2)


def test_initialization_scales():
    variables = jax.jit(model_functions(ResNet20(10, depth=8))[0])(
        RBG(0), jnp.zeros((1, 8, 8, 3))
    )
    p = variables["params"]
    kernel = np.asarray(p["stage2_block0"]["conv2"]["kernel"])  # 3x3x64x64, He fan-out.
    assert abs(kernel.std() / np.sqrt(2.0 / (9 * 64)) - 1.0) < 0.03
    assert abs(kernel.mean()) < 0.003
    np.testing.assert_array_equal(p["stem_bn"]["scale"], 1.0)
    np.testing.assert_array_equal(p["stem_bn"]["bias"], 0.0)
    dense = np.asarray(p["classifier"]["kernel"])  # Uniform(+-1/sqrt(64)).
    assert np.abs(dense).max() <= 1 / 8 and np.abs(dense).max() > 0.9 / 8
    np.testing.assert_array_equal(p["classifier"]["bias"], 0.0)
