"""MobileNetV2, ShuffleNetV2 and EfficientNet-B0 (CIFAR variants): parameter counts, strides,
building blocks, BatchNorm / dropout / stochastic-depth behavior, training under the engine.

Parameter counts are traced with ``jax.eval_shape`` (nothing runs) and checked twice: against
an independent layer-by-layer formula and against published counts. The published counts are
torchvision's ``num_params`` (ImageNet heads, 1000 classes); the 10-class counts follow by
swapping the head (``- (f * 1000 + 1000) + (f * 10 + 10)``), since the CIFAR strides change no
parameter. Forward passes use NumPy-filled variables (no init program is compiled).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.models import efficientnet as effnet
from hampjax.models.efficientnet import EFFICIENTNET_B0_STAGES, EfficientNet
from hampjax.models.mobilenetv2 import (
    MOBILENETV2_CIFAR_STAGES,
    MobileNetV2,
    depthwise_conv,
    make_divisible,
)
from hampjax.models.registry import MODELS, count_params, get_model, model_functions
from hampjax.models.shufflenetv2 import (
    SHUFFLENETV2_REPEATS,
    SHUFFLENETV2_WIDTHS,
    ShuffleNetV2,
    channel_shuffle,
)

KEY = jax.random.key(0)
RBG = functools.partial(jax.random.key, impl="rbg")  # fast to compile on XLA:CPU
CIFAR = (1, 32, 32, 3)


def n_params(module, input_shape=CIFAR):
    init_fn, _ = model_functions(module)
    return count_params(jax.eval_shape(init_fn, KEY, jnp.zeros(input_shape, jnp.float32)))


def swap_head(count_1000, features, k=10):
    return count_1000 - (features * 1000 + 1000) + (features * k + k)


# ----------------------------------------------------------------------------------------
# Independent parameter-count formulas.


def conv(k, c_in, c_out, bias=False):
    return k * k * c_in * c_out + (c_out if bias else 0)


def dw(k, c):
    return k * k * c


def bn(c):
    return 2 * c


def dense(fan_in, fan_out):
    return fan_in * fan_out + fan_out


def mobilenetv2_formula(k, variant="paper"):
    total, c = conv(3, 3, 32) + bn(32), 32
    for t, out, n, s in MOBILENETV2_CIFAR_STAGES:
        for i in range(n):
            hidden = c * t
            if t != 1 or variant == "pytorch_cifar":
                total += conv(1, c, hidden) + bn(hidden)
            total += dw(3, hidden) + bn(hidden) + conv(1, hidden, out) + bn(out)
            if variant == "pytorch_cifar" and c != out and (s if i == 0 else 1) == 1:
                total += conv(1, c, out) + bn(out)  # projection shortcut
            c = out
    return total + conv(1, 320, 1280) + bn(1280) + dense(1280, k)


def shufflenetv2_formula(width, k, stage_repeats=SHUFFLENETV2_REPEATS):
    *stages, head = SHUFFLENETV2_WIDTHS[width]
    total, c = conv(3, 3, 24) + bn(24), 24
    for out, repeats in zip(stages, stage_repeats):
        mid = out // 2
        total += dw(3, c) + bn(c) + conv(1, c, mid) + bn(mid)  # left branch
        total += conv(1, c, mid) + bn(mid) + dw(3, mid) + bn(mid) + conv(1, mid, mid) + bn(mid)
        total += repeats * (2 * (conv(1, mid, mid) + bn(mid)) + dw(3, mid) + bn(mid))
        c = out
    return total + conv(1, c, head) + bn(head) + dense(head, k)


def efficientnet_b0_formula(k):
    total, c = conv(3, 3, 32) + bn(32), 32
    for t, ks, _, out, n in EFFICIENTNET_B0_STAGES:
        for _ in range(n):
            hidden, squeeze = c * t, max(1, c // 4)
            if t != 1:
                total += conv(1, c, hidden) + bn(hidden)
            total += dw(ks, hidden) + bn(hidden)
            total += conv(1, hidden, squeeze, bias=True) + conv(1, squeeze, hidden, bias=True)
            total += conv(1, hidden, out) + bn(out)
            c = out
    return total + conv(1, 320, 1280) + bn(1280) + dense(1280, k)


# ----------------------------------------------------------------------------------------
# Parameter counts.


def test_mobilenetv2_count_is_published_value():
    # torchvision mobilenet_v2: num_params 3,504,872 (1000 classes, 1280 head features).
    assert n_params(MobileNetV2(1000)) == mobilenetv2_formula(1000) == 3_504_872
    assert n_params(MobileNetV2(10)) == mobilenetv2_formula(10) == swap_head(3_504_872, 1280)
    assert swap_head(3_504_872, 1280) == 2_236_682


def test_mobilenetv2_pytorch_cifar_variant_count():
    # ReLU blocks with an expansion conv at t = 1 and conv+BN projections where the stride is
    # 1 but the channels change (32->16, 16->24, 64->96, 160->320).
    extra = (conv(1, 32, 32) + bn(32)) + sum(
        conv(1, a, b) + bn(b) for a, b in [(32, 16), (16, 24), (64, 96), (160, 320)]
    )
    expected = mobilenetv2_formula(10, "pytorch_cifar")
    assert expected == 2_236_682 + extra == 2_296_922
    assert n_params(MobileNetV2(10, variant="pytorch_cifar")) == expected


# torchvision shufflenet_v2_x{0_5,1_0,1_5,2_0}: num_params with 1000 classes.
SHUFFLENET_TORCHVISION = {0.5: 1_366_792, 1.0: 2_278_604, 1.5: 3_503_624, 2.0: 7_393_996}


@pytest.mark.parametrize("width", sorted(SHUFFLENET_TORCHVISION))
def test_shufflenetv2_counts_are_published_values(width):
    published = SHUFFLENET_TORCHVISION[width]
    head = SHUFFLENETV2_WIDTHS[width][3]
    assert shufflenetv2_formula(width, 1000) == published
    assert n_params(ShuffleNetV2(10, width_multiplier=width)) == swap_head(published, head)
    assert shufflenetv2_formula(width, 10) == swap_head(published, head)


def test_shufflenetv2_1x_count():
    assert n_params(ShuffleNetV2(10)) == 1_263_854
    assert n_params(ShuffleNetV2(1000)) == 2_278_604
    small = ShuffleNetV2(10, width_multiplier=0.5, stage_repeats=[1, 2, 0])
    assert small.stage_repeats == (1, 2, 0)
    assert n_params(small) == shufflenetv2_formula(0.5, 10, (1, 2, 0))


def test_efficientnet_b0_count_is_published_value():
    # torchvision efficientnet_b0: num_params 5,288,548 (1000 classes, 1280 head features).
    assert n_params(EfficientNet(1000)) == efficientnet_b0_formula(1000) == 5_288_548
    assert n_params(EfficientNet(10)) == efficientnet_b0_formula(10) == 4_020_358
    assert swap_head(5_288_548, 1280) == 4_020_358


def test_efficientnet_compound_scaling_gives_b1():
    # B1 = width 1.0, depth 1.1 (repeats rounded up): torchvision efficientnet_b1 7,794,184.
    assert n_params(EfficientNet(1000, depth_multiplier=1.1)) == 7_794_184


def test_make_divisible():
    assert make_divisible(32) == 32
    assert make_divisible(32 * 0.35) == 16  # 11.2 -> 8 would lose > 10%: one step up
    assert make_divisible(24 * 0.5) == 16  # 12 rounds half up
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(3) == 8  # at least one divisor
    assert make_divisible(100, 1) == 100


# ----------------------------------------------------------------------------------------
# CIFAR strides: the map the head conv sees, for a 32x32 input.


@pytest.mark.parametrize(
    "module,side,channels",
    [
        (MobileNetV2(10), 4, 1280),
        (MobileNetV2(10, variant="pytorch_cifar"), 4, 1280),
        (ShuffleNetV2(10), 4, 1024),
        (ShuffleNetV2(10, width_multiplier=2.0), 4, 2048),
        (EfficientNet(10), 2, 1280),
    ],
    ids=["mobilenetv2", "mobilenetv2_pytorch_cifar", "shufflenetv2", "shufflenetv2_2x",
         "efficientnet_b0"],
)
def test_cifar_strides(module, side, channels):
    init_fn, _ = model_functions(module)
    x = jax.ShapeDtypeStruct(CIFAR, jnp.float32)
    variables = jax.eval_shape(init_fn, KEY, x)

    def run(v, x):
        return module.apply(v, x, train=False, capture_intermediates=True,
                            mutable=["intermediates"])

    logits, state = jax.eval_shape(run, variables, x)
    assert logits.shape == (1, 10)
    head = state["intermediates"]["head_conv"]["__call__"][0]
    assert head.shape == (1, side, side, channels)


@pytest.mark.parametrize("module", [MobileNetV2(5), ShuffleNetV2(5), EfficientNet(5)],
                         ids=["mobilenetv2", "shufflenetv2", "efficientnet_b0"])
def test_small_inputs(module):
    init_fn, apply_fn = model_functions(module)
    x = jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32)
    variables = jax.eval_shape(init_fn, KEY, x)
    logits, _ = jax.eval_shape(functools.partial(apply_fn, train=False), variables, x)
    assert logits.shape == (2, 5)


# ----------------------------------------------------------------------------------------
# Building blocks.


def test_channel_shuffle_matches_torch_layout():
    x = np.arange(2 * 3 * 3 * 12, dtype=np.float32).reshape(2, 3, 3, 12)
    # PyTorch: [N, C, H, W].view(N, g, C/g, H, W).transpose(1, 2).reshape(N, C, H, W).
    nchw = x.transpose(0, 3, 1, 2)
    ref = nchw.reshape(2, 3, 4, 3, 3).transpose(0, 2, 1, 3, 4).reshape(2, 12, 3, 3)
    np.testing.assert_array_equal(channel_shuffle(jnp.asarray(x), 3), ref.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(channel_shuffle(jnp.asarray(x), 1), x)
    with pytest.raises(ValueError, match="channels \\(12\\) must be divisible by groups \\(5\\)"):
        channel_shuffle(jnp.asarray(x), 5)


@pytest.mark.parametrize("k", [3, 5])
def test_depthwise_conv_pads_like_pytorch(k):
    # A centered delta kernel picks x[2i, 2j] with symmetric padding (PyTorch); Flax "SAME"
    # would pad (0, 1) at stride 2 and pick x[2i + 1, 2j + 1] for k = 3.
    module = depthwise_conv(2, k, strides=2)
    kernel = np.zeros((k, k, 1, 2), np.float32)
    kernel[k // 2, k // 2] = 1.0
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 2)).astype(np.float32)
    out = module.apply({"params": {"kernel": jnp.asarray(kernel)}}, jnp.asarray(x))
    np.testing.assert_array_equal(out, x[:, ::2, ::2, :])


def test_stochastic_depth_drops_whole_examples():
    p = 0.5
    block = effnet._MBConv(8, 2, 3, 1, p)
    keep_all = effnet._MBConv(8, 2, 3, 1, 0.0)
    x = jax.random.normal(RBG(0), (16, 4, 4, 8))
    variables = jax.jit(functools.partial(block.init, train=False))({"params": RBG(1)}, x)

    @jax.jit
    def run(keys):
        def train(module, key):
            out, _ = module.apply(variables, x, train=True, mutable=["batch_stats"],
                                  rngs={"dropout": key})
            return out

        outs = jax.vmap(lambda k: train(block, k))(keys)
        branch = train(keep_all, keys[0]) - x  # the block's residual branch (train mode)
        return (outs, branch, block.apply(variables, x, train=False),
                keep_all.apply(variables, x, train=False))

    outs, branch, evaluated, reference = map(np.asarray, run(jax.random.split(RBG(2), 3)))
    x = np.asarray(x)
    dropped = 0
    for out in outs:
        for i in range(x.shape[0]):
            if np.allclose(out[i], x[i], atol=1e-6):
                dropped += 1
            else:
                np.testing.assert_allclose(out[i], x[i] + branch[i] / (1 - p), rtol=1e-4,
                                           atol=1e-5)
    assert 0 < dropped < 48  # some examples dropped, some kept (p = 0.5, 48 draws)
    # Eval mode is deterministic and keeps every branch unscaled.
    np.testing.assert_allclose(evaluated, reference, rtol=1e-6, atol=1e-6)


def test_efficientnet_stochastic_depth_schedule():
    # Block i of the 16 drops with 0.2 * i / 16 (only residual blocks use it).
    module = EfficientNet(10)
    x = jnp.zeros(CIFAR)
    rates = []

    def collect(next_fun, args, kwargs, context):
        if isinstance(context.module, effnet._MBConv) and context.method_name == "__call__":
            rates.append(context.module.stochastic_depth)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(collect):
        jax.eval_shape(lambda: module.init(KEY, x, train=False))
    assert len(rates) == 16
    np.testing.assert_allclose(rates, [0.2 * i / 16 for i in range(16)])


# ----------------------------------------------------------------------------------------
# Train / eval behavior on a batch of two 32x32 images.


def numpy_variables(module, x_shape, seed):
    """Random variables of the model's structure drawn with NumPy (no init program)."""
    init_fn, _ = model_functions(module)
    shapes = jax.eval_shape(init_fn, KEY, jax.ShapeDtypeStruct(x_shape, jnp.float32))
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "kernel":
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
        elif name == "scale":
            value = rng.uniform(0.5, 2.0, shape)
        elif name == "bias":
            value = 0.1 * rng.normal(size=shape)
        elif name == "mean":
            value = np.zeros(shape)
        elif name == "var":
            value = np.ones(shape)
        else:
            raise AssertionError(f"unexpected variable {path}")
        return jnp.asarray(value, jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


@pytest.mark.parametrize(
    "module",
    [
        MobileNetV2(10, dropout_rate=0.5),
        ShuffleNetV2(10),
        # 10 of B0's 16 blocks (residual blocks with stochastic depth in stages 4-6): the full
        # B0 costs another ~5 s of compiling and runs with `-m slow`.
        EfficientNet(10, depth_multiplier=0.5),
        pytest.param(EfficientNet(10), marks=pytest.mark.slow),
    ],
    ids=["mobilenetv2_dropout", "shufflenetv2", "efficientnet_half_depth", "efficientnet_b0"],
)
def test_train_and_eval_modes(module):
    x = jax.random.normal(RBG(0), (2, 32, 32, 3))
    variables = numpy_variables(module, x.shape, seed=0)
    _, apply_fn = model_functions(module)
    random = getattr(module, "dropout_rate", 0.0) > 0

    @jax.jit  # one program (compiling is what costs on CPU)
    def run(variables, x, k1, k2):
        return (
            apply_fn(variables, x, train=False, key=k1),
            apply_fn(variables, x, train=False, key=k2)[0],
            apply_fn(variables, x, train=True, key=k1),
            apply_fn(variables, x, train=True, key=k2)[0],
        )

    (e1, ev), e2, (t1, tv), t2 = run(variables, x, RBG(1), RBG(2))

    # Eval: running statistics, deterministic (the key is ignored), variables unchanged.
    assert e1.shape == (2, 10) and np.all(np.isfinite(e1))
    np.testing.assert_array_equal(e1, e2)
    jax.tree.map(np.testing.assert_array_equal, ev, variables)

    # Train: batch statistics; every running statistic moves; params are passed through.
    assert np.all(np.isfinite(t1)) and not np.allclose(t1, e1)
    old, new = jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(tv["batch_stats"])
    assert len(old) == len(new) > 0
    assert all(not np.allclose(a, b) for a, b in zip(old, new))
    jax.tree.map(np.testing.assert_array_equal, tv["params"], variables["params"])

    # Dropout / stochastic depth: another key gives another output (only if the model draws).
    assert (not np.allclose(t1, t2)) == random
    if random:
        with pytest.raises(ValueError, match="key is required when train=True"):
            apply_fn(variables, x, train=True)


def test_stochastic_depth_alone_needs_a_key():
    _, apply_fn = model_functions(EfficientNet(3, dropout_rate=0.0))
    with pytest.raises(ValueError, match="key is required .* stochastic_depth_rate=0.2"):
        apply_fn({}, jnp.zeros((1, 8, 8, 3)), train=True)
    _, apply_fn = model_functions(EfficientNet(3, dropout_rate=0.0, stochastic_depth_rate=0.0))
    variables = jax.eval_shape(model_functions(EfficientNet(3))[0], KEY, jnp.zeros((1, 8, 8, 3)))
    jax.eval_shape(functools.partial(apply_fn, train=True), variables, jnp.zeros((1, 8, 8, 3)))


# ----------------------------------------------------------------------------------------
# Registry and validation.


def test_registry_entries():
    assert get_model("mobilenetv2", 10) == MobileNetV2(10)
    assert get_model("shufflenetv2", 10) == ShuffleNetV2(10)
    assert get_model("shufflenetv2", 10, width_multiplier=0.5).width_multiplier == 0.5
    assert get_model("efficientnet_b0", 10) == EfficientNet(10)
    assert get_model("efficientnet_b0", 10, dropout_rate=0.3).dropout_rate == 0.3
    with pytest.raises(ValueError, match="width_multiplier is fixed to 1.0"):
        get_model("efficientnet_b0", 10, width_multiplier=2.0)
    assert {"mobilenetv2", "shufflenetv2", "efficientnet_b0"} <= set(MODELS)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: MobileNetV2(1), "num_classes must be an integer >= 2"),
        (lambda: MobileNetV2(10, width_multiplier=0.0), "width_multiplier must be in"),
        (lambda: MobileNetV2(10, dropout_rate=1.0), r"dropout_rate must be in \[0, 1\)"),
        (lambda: MobileNetV2(10, variant="kuangliu"), "variant must be one of 'paper'"),
        (lambda: ShuffleNetV2(10, width_multiplier=0.75), "width_multiplier must be one of"),
        (lambda: ShuffleNetV2(0), "num_classes must be an integer >= 2"),
        (lambda: ShuffleNetV2(10, stage_repeats=(3, 7)), "stage_repeats must be a sequence of 3"),
        (lambda: ShuffleNetV2(10, stage_repeats=(3, -1, 3)), r"stage_repeats\[1\] must be"),
        (lambda: EfficientNet(10, stochastic_depth_rate=1.0), "stochastic_depth_rate must be"),
        (lambda: EfficientNet(10, dropout_rate=-0.1), r"dropout_rate must be in \[0, 1\)"),
        (lambda: EfficientNet(10, depth_multiplier=0), "depth_multiplier must be in"),
        (lambda: make_divisible(0), "value must be in"),
    ],
)
def test_invalid_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("module", [MobileNetV2(10), ShuffleNetV2(10), EfficientNet(10)],
                         ids=["mobilenetv2", "shufflenetv2", "efficientnet_b0"])
def test_wrong_input_rank_raises(module):
    init_fn, _ = model_functions(module)
    with pytest.raises(ValueError, match=r"x must have shape \[batch, "):
        jax.eval_shape(init_fn, KEY, jax.ShapeDtypeStruct((32, 32, 3), jnp.float32))


# ----------------------------------------------------------------------------------------
# Under the batched engine: 8 random 16x16 images, 2 models, batch 4, one epoch. On XLA:CPU
# compiling the engine's init and epoch programs dominates (it grows with the number of
# layers): a ShuffleNetV2 with one basic unit per stage runs by default, the full-depth
# MobileNetV2 / EfficientNet (30-45 s) with `-m slow`.


def engine_run(module):
    from hampjax.training import train_many, undefended_recipe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    keep = np.ones((2, 8), bool)
    recipe = undefended_recipe("digits", epochs=1, batch_size=4)
    result = train_many(module, recipe, x, y, keep, seed=0, devices=jax.devices()[:1],
                        progress=False)
    assert result.train_loss.shape == (2, 1) and np.all(np.isfinite(result.train_loss))
    stats = jax.tree_util.tree_leaves_with_path(result.variables["batch_stats"])
    assert stats and all(np.all(np.isfinite(s)) for _, s in stats)
    for path, s in stats:  # every running statistic moved from its init (mean 0, var 1)
        assert not np.allclose(s, 0.0 if path[-1].key == "mean" else 1.0), path
    # The two models differ (own init and data order), so the model axis is real.
    assert not np.allclose(stats[0][1][0], stats[0][1][1])


@pytest.mark.slow  # ~45 s of conv training on CPU; the engine path is covered by test_loop_strategies
def test_shufflenetv2_trains_under_engine():
    engine_run(ShuffleNetV2(3, width_multiplier=0.5, stage_repeats=(1, 1, 1)))


@pytest.mark.slow
def test_mobilenetv2_with_dropout_trains_under_engine():
    engine_run(MobileNetV2(3, width_multiplier=0.25, dropout_rate=0.2))


@pytest.mark.slow
def test_efficientnet_trains_under_engine():
    # depth 0.5 keeps residual blocks (stochastic depth) in stages 4-6; dropout 0.2.
    engine_run(EfficientNet(3, width_multiplier=0.25, depth_multiplier=0.5))

