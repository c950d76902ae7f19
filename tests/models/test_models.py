"""Model zoo: exact parameter counts, output shapes, registry, validation errors.

Big models are never run: ``jax.eval_shape`` traces ``init`` / ``apply`` for shapes only.
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hampjax.models.cnn import SalemCNN
from hampjax.models.densenet import DenseNet, densenet_channels, densenet_layers_per_block
from hampjax.models.mlp import FCNet
from hampjax.models.registry import MODELS, count_params, get_model, model_functions
from hampjax.models.resnet import BasicBlock, ResNet18, ResNet20, WideResNet, zero_pad_shortcut
from hampjax.models.vgg import VGG, VGG_CONFIGS

KEY = jax.random.key(0)
CIFAR = (1, 32, 32, 3)


def abstract_variables(module, input_shape):
    init_fn, _ = model_functions(module)
    return jax.eval_shape(init_fn, KEY, jnp.zeros(input_shape, jnp.float32))


def n_params(module, input_shape=CIFAR):
    return count_params(abstract_variables(module, input_shape))


# ----------------------------------------------------------------------------------------
# Independent parameter-count formulas (conv kernels, BN scale+bias, dense layers).


def dense_count(fan_in, fan_out):
    return fan_in * fan_out + fan_out


def conv_count(k, c_in, c_out, bias=False):
    return k * k * c_in * c_out + (c_out if bias else 0)


def bn_count(c):
    return 2 * c


def fc_formula(d, k, hidden=(1024, 512, 256, 128)):
    dims = (d, *hidden, k)
    return sum(dense_count(a, b) for a, b in zip(dims[:-1], dims[1:]))


def densenet_formula(depth, growth, compression, k):
    n = (depth - 4) // 6
    c = 2 * growth
    total = conv_count(3, 3, c)
    for block in range(3):
        for _ in range(n):
            total += bn_count(c) + conv_count(1, c, 4 * growth)
            total += bn_count(4 * growth) + conv_count(3, 4 * growth, growth)
            c += growth
        if block < 2:
            out = int(np.floor(c * compression))
            total += bn_count(c) + conv_count(1, c, out)
            c = out
    return total + bn_count(c) + dense_count(c, k)


def wrn_formula(depth, width, k):
    n = (depth - 4) // 6
    c = 16
    total = conv_count(3, 3, 16)
    for stage in range(3):
        out = 16 * width * 2**stage
        for _ in range(n):
            total += bn_count(c) + conv_count(3, c, out) + bn_count(out) + conv_count(3, out, out)
            if c != out:
                total += conv_count(1, c, out)
            c = out
    return total + bn_count(c) + dense_count(c, k)


def cifar_resnet_formula(widths, blocks, projection, k, stem_width=None):
    c = stem_width or widths[0]
    total = conv_count(3, 3, c) + bn_count(c)
    for stage, (out, n) in enumerate(zip(widths, blocks)):
        for i in range(n):
            total += conv_count(3, c, out) + bn_count(out) + conv_count(3, out, out) + bn_count(out)
            if projection and (c != out or (stage > 0 and i == 0)):
                total += conv_count(1, c, out) + bn_count(out)
            c = out
    return total + dense_count(c, k)


def vgg_formula(cfg, k, c_in=3, spatial=32):
    total, c = 0, c_in
    for item in cfg:
        if item == "M":
            spatial //= 2
            continue
        total += conv_count(3, c, item, bias=True) + bn_count(item)
        c = item
    return total + dense_count(c * spatial * spatial, k)


# ----------------------------------------------------------------------------------------
# Parameter counts.


def test_fcnet_purchase_count_is_published_value():
    assert n_params(FCNet(100), (1, 600)) == 1_317_348
    assert fc_formula(600, 100) == 1_317_348


@pytest.mark.parametrize("d,k", [(600, 100), (6169, 100), (446, 30)])
def test_fcnet_counts_match_formula(d, k):
    assert n_params(FCNet(k), (1, d)) == fc_formula(d, k)


def test_fcnet_custom_hidden_sizes_count():
    expected = (4 * 7 + 7) + (7 * 5 + 5) + (5 * 3 + 3)
    assert n_params(FCNet(3, hidden_sizes=(7, 5)), (1, 4)) == expected


@pytest.mark.parametrize("k,expected", [(10, 769_162), (100, 800_032)])
def test_densenet100_bc_count(k, expected):
    assert n_params(DenseNet(k, depth=100)) == expected
    assert densenet_formula(100, 12, 0.5, k) == expected


def test_densenet22_bc_count_matches_formula():
    assert n_params(DenseNet(10, depth=22)) == densenet_formula(22, 12, 0.5, 10)


def test_densenet_channels_per_spec():
    assert densenet_channels(100, 12, 0.5, True) == (24, 216, 108, 300, 150, 342)
    assert densenet_channels(22, 12, 0.5, True) == (24, 60, 30, 66, 33, 69)
    assert densenet_layers_per_block(100, True) == 16
    assert densenet_layers_per_block(22, True) == 3
    assert densenet_layers_per_block(40, False) == 12


def test_densenet_non_bottleneck_count():
    # Plain layers are BN-ReLU-3x3 conv; depth 10 -> 2 layers per block.
    growth, c, total = 4, 8, conv_count(3, 3, 8)
    for block in range(3):
        for _ in range(2):
            total += bn_count(c) + conv_count(3, c, growth)
            c += growth
        if block < 2:
            total += bn_count(c) + conv_count(1, c, c)
    total += bn_count(c) + dense_count(c, 10)
    model = DenseNet(10, depth=10, growth_rate=growth, compression=1.0, bottleneck=False)
    assert n_params(model) == total


def test_resnet18_count_is_published_value():
    assert n_params(ResNet18(10)) == 11_173_962
    assert cifar_resnet_formula((64, 128, 256, 512), (2, 2, 2, 2), True, 10) == 11_173_962


def test_resnet20_option_a_count_is_published_value():
    assert n_params(ResNet20(10)) == 269_722
    assert cifar_resnet_formula((16, 32, 64), (3, 3, 3), False, 10) == 269_722


def test_resnet20_option_b_count_matches_formula():
    expected = cifar_resnet_formula((16, 32, 64), (3, 3, 3), True, 10)
    assert expected == 269_722 + (16 * 32 + 64) + (32 * 64 + 128)
    assert n_params(ResNet20(10, shortcut="B")) == expected


def test_resnet56_count_matches_formula():
    assert n_params(ResNet20(100, depth=56)) == cifar_resnet_formula(
        (16, 32, 64), (9, 9, 9), False, 100
    )


def test_wrn28_2_count():
    assert n_params(WideResNet(10)) == 1_467_610
    assert wrn_formula(28, 2, 10) == 1_467_610
    assert n_params(WideResNet(100, depth=16, width=4)) == wrn_formula(16, 4, 100)


def test_vgg11_bn_count_is_published_value():
    assert n_params(VGG(10)) == 9_231_114
    assert vgg_formula(VGG_CONFIGS["vgg11"], 10) == 9_231_114


def test_vgg_without_batchnorm_has_no_batch_stats():
    variables = abstract_variables(VGG(10, batch_norm=False), CIFAR)
    assert "batch_stats" not in variables
    assert count_params(variables) == 9_231_114 - 2 * (64 + 128 + 256 * 2 + 512 * 4)


def test_salem_cnn_count():
    expected = (
        conv_count(5, 3, 32, bias=True)
        + conv_count(5, 32, 32, bias=True)
        + dense_count(2048, 128)
        + dense_count(128, 10)
    )
    assert expected == 291_626
    assert n_params(SalemCNN(10)) == 291_626


def test_count_params_ignores_batch_stats_and_counts_stacked_models():
    variables = {"params": {"w": jnp.zeros((3, 4))}, "batch_stats": {"m": jnp.zeros((100,))}}
    assert count_params(variables) == 12
    stacked = jax.tree.map(lambda a: jnp.stack([a, a]), variables)
    assert count_params(stacked) == 24


# ----------------------------------------------------------------------------------------
# Output shapes (eval_shape: nothing is run) for every registered model.

INPUTS = {
    "fc": (4, 600),
    "densenet100_bc": (4, 32, 32, 3),
    "densenet22_bc": (4, 32, 32, 3),
    "resnet18": (4, 32, 32, 3),
    "resnet20": (4, 32, 32, 3),
    "wrn28_2": (4, 32, 32, 3),
    "vgg11_bn": (4, 32, 32, 3),
    "salem_cnn": (4, 32, 32, 3),
    "mobilenetv2": (4, 32, 32, 3),
    "shufflenetv2": (4, 32, 32, 3),
    "efficientnet_b0": (4, 32, 32, 3),
}
HAS_BN = {name: name not in ("fc", "salem_cnn") for name in INPUTS}


def test_inputs_cover_registry():
    assert set(INPUTS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(INPUTS))
@pytest.mark.parametrize("train", [False, True])
def test_output_shapes_and_variable_structure(name, train):
    k = 7
    init_fn, apply_fn = model_functions(get_model(name, k))
    x = jax.ShapeDtypeStruct(INPUTS[name], jnp.float32)
    variables = jax.eval_shape(init_fn, KEY, x)
    assert set(variables) == ({"params", "batch_stats"} if HAS_BN[name] else {"params"})
    # The key seeds dropout / stochastic depth (efficientnet_b0) and is ignored otherwise.
    logits, new_variables = jax.eval_shape(
        functools.partial(apply_fn, train=train, key=KEY), variables, x
    )
    assert logits.shape == (INPUTS[name][0], k)
    assert logits.dtype == jnp.float32
    assert jax.tree.structure(new_variables) == jax.tree.structure(variables)
    assert jax.tree.map(lambda a: a.shape, new_variables) == jax.tree.map(
        lambda a: a.shape, variables
    )


@pytest.mark.parametrize(
    "module",
    [DenseNet(5, depth=22), ResNet20(5), WideResNet(5, depth=10), ResNet18(5), SalemCNN(5)],
)
def test_image_models_accept_other_sizes(module):
    # Global pooling heads work on any size divisible by the total stride.
    init_fn, apply_fn = model_functions(module)
    x = jax.ShapeDtypeStruct((2, 16, 16, 1), jnp.float32)
    variables = jax.eval_shape(init_fn, KEY, x)
    logits, _ = jax.eval_shape(functools.partial(apply_fn, train=False), variables, x)
    assert logits.shape == (2, 5)


# ----------------------------------------------------------------------------------------
# Registry.


def test_registry_names():
    assert set(MODELS) == {
        "fc",
        "densenet100_bc",
        "densenet22_bc",
        "resnet18",
        "resnet20",
        "wrn28_2",
        "vgg11_bn",
        "salem_cnn",
        "mobilenetv2",
        "shufflenetv2",
        "efficientnet_b0",
    }


def test_get_model_builds_expected_configurations():
    assert get_model("densenet100_bc", 10) == DenseNet(10, depth=100)
    assert get_model("densenet22_bc", 10) == DenseNet(10, depth=22)
    assert get_model("resnet20", 10) == ResNet20(10, shortcut="A")
    assert get_model("resnet20", 10, shortcut="B").shortcut == "B"
    assert get_model("wrn28_2", 10) == WideResNet(10, depth=28, width=2)
    assert get_model("vgg11_bn", 10) == VGG(10)
    assert get_model("fc", 30, hidden_sizes=[8, 4]).hidden_sizes == (8, 4)
    assert get_model("densenet22_bc", 10, dropout_rate=0.2).dropout_rate == 0.2


def test_get_model_unknown_name_lists_names():
    with pytest.raises(ValueError, match="name must be one of") as info:
        get_model("resnet50", 10)
    for name in MODELS:
        assert repr(name) in str(info.value)


def test_get_model_rejects_fixed_and_unknown_attributes():
    with pytest.raises(ValueError, match="depth is fixed to 100"):
        get_model("densenet100_bc", 10, depth=40)
    with pytest.raises(ValueError, match="width is fixed to 2"):
        get_model("wrn28_2", 10, width=4)
    with pytest.raises(ValueError, match="dropout is not an attribute of DenseNet.*dropout_rate"):
        get_model("densenet22_bc", 10, dropout=0.1)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        get_model("salem_cnn", 1)


# ----------------------------------------------------------------------------------------
# Validation errors.

INVALID = [
    (lambda: FCNet(1), "num_classes must be an integer >= 2"),
    (lambda: FCNet(True), "num_classes must be an integer >= 2"),
    (lambda: FCNet(10, hidden_sizes=(8, 0)), r"hidden_sizes\[1\] must be an integer >= 1"),
    (lambda: FCNet(10, hidden_sizes=()), "hidden_sizes must be a non-empty sequence"),
    (lambda: FCNet(10, hidden_sizes="64"), "hidden_sizes must be a non-empty sequence"),
    (lambda: FCNet(10, hidden_sizes=(8.0,)), r"hidden_sizes\[0\] must be an integer"),
    (lambda: FCNet(10, activation="tanh"), "activation must be callable"),
    (lambda: DenseNet(10, depth=101), r"depth must be 4 \+ 6 \* n"),
    (lambda: DenseNet(10, depth=4), r"depth must be 4 \+ 6 \* n"),
    (lambda: DenseNet(10, depth=11, bottleneck=False), r"depth must be 4 \+ 3 \* n"),
    (lambda: DenseNet(10, bottleneck=1), "bottleneck must be a Python bool"),
    (lambda: DenseNet(10, growth_rate=0), "growth_rate must be an integer >= 1"),
    (lambda: DenseNet(10, compression=0.0), r"compression must be in \(0, 1\]"),
    (lambda: DenseNet(10, compression=1.5), r"compression must be in \(0, 1\]"),
    (lambda: DenseNet(10, compression=0.001), "leaves a transition with no channels"),
    (lambda: DenseNet(10, dropout_rate=1.0), r"dropout_rate must be in \[0, 1\)"),
    (lambda: ResNet18(10, shortcut="C"), "shortcut must be one of 'A', 'B'"),
    (lambda: ResNet18(10, widths=(64, 128)), "stage_sizes and widths must have the same length"),
    (lambda: ResNet18(10, stage_sizes=(2, 0, 2, 2)), r"stage_sizes\[1\] must be"),
    (lambda: ResNet20(10, depth=21), r"depth must be 6 \* n \+ 2"),
    (lambda: ResNet20(10, width=0), "width must be an integer >= 1"),
    (lambda: ResNet20(0), "num_classes must be an integer >= 2"),
    (lambda: WideResNet(10, depth=27), r"depth must be 6 \* n \+ 4"),
    (lambda: WideResNet(10, width=0), "width must be an integer >= 1"),
    (lambda: WideResNet(10, dropout_rate=-0.1), r"dropout_rate must be in \[0, 1\)"),
    (lambda: BasicBlock(0), "features must be an integer >= 1"),
    (lambda: BasicBlock(16, strides=0), "strides must be an integer >= 1"),
    (lambda: BasicBlock(16, shortcut="C"), "shortcut must be one of"),
    (lambda: VGG(10, config=(64, "X")), r"config\[1\] \(an int or 'M'\) must be an integer"),
    (lambda: VGG(10, config=(64, 0, "M")), r"config\[1\]"),
    (lambda: VGG(10, config=()), "config must be a non-empty sequence"),
    (lambda: VGG(10, config="vgg11"), "config must be a non-empty sequence"),
    (lambda: VGG(10, batch_norm="yes"), "batch_norm must be a Python bool"),
    (lambda: SalemCNN(10, channels=0), "channels must be an integer >= 1"),
    (lambda: SalemCNN(10, hidden=0), "hidden must be an integer >= 1"),
    (lambda: densenet_layers_per_block(0, True), "depth must be an integer >= 1"),
    (lambda: zero_pad_shortcut(jnp.zeros((1, 2, 2, 4)), 2, 1), "features must be >= the input"),
    (lambda: zero_pad_shortcut(jnp.zeros((1, 2, 2, 4)), 8, 0), "strides must be an integer"),
    (lambda: model_functions(lambda x: x), "module must be a flax.linen.Module"),
    (lambda: count_params({"batch_stats": {}}), "must be a mapping with a 'params'"),
    (lambda: count_params([1, 2]), "must be a mapping with a 'params'"),
]


@pytest.mark.parametrize("make,message", INVALID)
def test_invalid_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "module,shape",
    [
        (DenseNet(10, depth=10), (2, 8, 8)),
        (ResNet18(10), (8, 8, 3)),
        (ResNet20(10), (2, 1, 8, 8, 3)),
        (WideResNet(10), (8, 8, 3)),
        (VGG(10), (8, 8, 3)),
        (SalemCNN(10), (8, 8, 3)),
        (FCNet(10), (2, 3, 4)),
        (FCNet(10), (4,)),
    ],
)
def test_wrong_input_rank_raises(module, shape):
    init_fn, _ = model_functions(module)
    with pytest.raises(ValueError, match=r"x must have shape \[batch, "):
        jax.eval_shape(init_fn, KEY, jax.ShapeDtypeStruct(shape, jnp.float32))


def test_apply_fn_validates_train_flag():
    init_fn, apply_fn = model_functions(FCNet(3, hidden_sizes=(4,)))
    variables = init_fn(KEY, jnp.zeros((1, 2)))
    for bad in (1, None, jnp.array(True), "eval"):
        with pytest.raises(ValueError, match="train must be a Python bool"):
            apply_fn(variables, jnp.zeros((1, 2)), train=bad)


def test_model_fields_are_hashable_for_jit():
    # Flax modules are used as static jit arguments; list arguments are turned into tuples.
    for module in (FCNet(3, hidden_sizes=[4, 2]), ResNet18(3, stage_sizes=[1], widths=[8]),
                   VGG(3, config=[8, "M"])):
        hash(module)
        assert all(
            not isinstance(getattr(module, f.name), list) for f in dataclasses.fields(module)
        )


def test_every_zoo_model_takes_train_keyword_and_num_classes():
    for constructor in MODELS.values():
        module = constructor(num_classes=4)
        assert isinstance(module, nn.Module)
        assert module.num_classes == 4


@pytest.mark.parametrize("kind,shape", [("conv", (5, 5, 2, 4)), ("conv", (1, 1, 8, 4)),
                                        ("dense", (64, 10))])
def test_initializers_equal_flax_variance_scaling_bit_for_bit(kind, shape):
    # The zoo's initializers draw a flat sample (fast to compile on XLA:CPU) and must give
    # exactly Flax's variance_scaling values, eagerly and under jit + vmap over keys.
    from hampjax.models import layers

    ours, flax_init = {
        "conv": (layers.conv_kernel_init, nn.initializers.variance_scaling(2.0, "fan_out", "normal")),
        "dense": (layers.dense_kernel_init,
                  nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")),
    }[kind]
    keys = jax.random.split(jax.random.key(5), 2)
    assert ours(keys[0], shape).dtype == jnp.float32
    np.testing.assert_array_equal(ours(keys[0], shape), flax_init(keys[0], shape))
    batched = [jax.jit(jax.vmap(lambda k, init=init: init(k, shape)))(keys)
               for init in (ours, flax_init)]
    np.testing.assert_array_equal(*batched)
