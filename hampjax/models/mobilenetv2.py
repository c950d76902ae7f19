"""MobileNetV2 for 32x32 images (Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018), the CIFAR variant of HAMP's Appendix H (Fig. 10).

Layout (paper Table 2, width multiplier 1.0):

* stem: 3x3 conv ``3 -> 32``-BN-ReLU6;
* inverted-residual bottlenecks ``(t, c, n, s)`` = (expansion, channels, repeats, stride of
  the first repeat): (1, 16, 1, 1), (6, 24, 2, **1**), (6, 32, 3, 2), (6, 64, 4, 2),
  (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1). A bottleneck is 1x1 expansion conv to
  ``t * c_in``-BN-ReLU6 (left out when ``t == 1``), 3x3 depthwise conv (stride s)-BN-ReLU6,
  1x1 linear projection conv-BN; the input is added where the stride is 1 and the channels
  match;
* head 1x1 conv ``320 -> 1280``-BN-ReLU6, global average pool, optional dropout, Linear.

CIFAR variant (the usual one, e.g. kuangliu's "pytorch-cifar"): the stem conv has stride 1
(ImageNet: 2) and the second bottleneck stage (24 channels) stride 1 (ImageNet: 2), so a
32x32 image ends as a 4x4 map (total stride 8). Strides do not change the parameter count:
2,236,682 parameters for 10 classes, i.e. torchvision's ``mobilenet_v2`` (3,504,872 with its
1000-class head) less ``1280 * 1000 + 1000`` plus ``1280 * 10 + 10``.

``variant="pytorch_cifar"`` gives instead the blocks of the pytorch-cifar repository
(kuangliu/pytorch-cifar ``models/mobilenetv2.py``), which differ from the paper: ReLU instead
of ReLU6, an expansion conv also when ``t == 1``, and a 1x1 conv + BN projection shortcut
where the stride is 1 but the channels change (and no shortcut at stride 2): 2,296,922
parameters for 10 classes (60,240 more).

Convs have no bias (BatchNorm follows); see :mod:`hampjax.models.layers` for initialization
and BatchNorm settings. Depthwise convs are padded symmetrically by ``(k - 1) // 2`` as in
PyTorch (Flax's ``"SAME"`` pads stride-2 convs asymmetrically).
"""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from hampjax import validation
from hampjax.models import convolution, layers

__all__ = [
    "MobileNetV2",
    "MOBILENETV2_CIFAR_STAGES",
    "MOBILENETV2_VARIANTS",
    "make_divisible",
    "depthwise_conv",
]

# (expansion t, channels c, repeats n, stride s) of the CIFAR variant (stage 2: s = 1).
MOBILENETV2_CIFAR_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENETV2_VARIANTS = ("paper", "pytorch_cifar")
Variant = Literal["paper", "pytorch_cifar"]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` (MobileNet / EfficientNet rule).

    Rounds to the nearest multiple (halves up), at least ``divisor``, and one ``divisor``
    higher if rounding lost more than 10% of ``value``.

    Args:
      value: scaled channel count (e.g. ``32 * width_multiplier``), > 0.
      divisor: integer >= 1.

    Returns:
      The rounded count.

    Example:
      >>> make_divisible(32 * 1.0), make_divisible(32 * 0.35), make_divisible(1280 * 1.4)
      (32, 16, 1792)
    """
    validation.check_positive("value", value)
    divisor = validation.check_positive_int("divisor", divisor)
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def depthwise_conv(
    features: int, kernel_size: int, *, strides: int = 1, name: str | None = None
) -> nn.Conv:
    """Depthwise ``k x k`` conv (one filter per channel, no bias), PyTorch-style padding.

    Pads ``(k - 1) // 2`` on every side, so the output is ``floor((H - 1) / strides) + 1``
    pixels high for odd ``k``, as ``torch.nn.Conv2d(padding=(k - 1) // 2, groups=C)``.

    Args:
      features: channels of the input and the output.
      kernel_size: odd side of the square kernel.
      strides: stride in both spatial directions.
      name: submodule name.

    Returns:
      An ``nn.Conv`` with kernel shape ``[k, k, 1, features]`` (He fan-out initialization).
    """
    pad = (kernel_size - 1) // 2
    return nn.Conv(
        features,
        (kernel_size, kernel_size),
        strides=(strides, strides),
        padding=((pad, pad), (pad, pad)),
        feature_group_count=features,
        use_bias=False,
        kernel_init=layers.conv_kernel_init,
        conv_general_dilated=convolution.conv_general_dilated,
        name=name,
    )


class _InvertedResidual(nn.Module):
    features: int
    expansion: int
    strides: int
    variant: Variant

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        act = nn.relu6 if self.variant == "paper" else nn.relu
        c_in = x.shape[-1]
        hidden = c_in * self.expansion
        y = x
        if self.expansion != 1 or self.variant == "pytorch_cifar":
            y = layers.conv(hidden, 1, name="expand_conv")(y)
            y = act(layers.batch_norm(train, name="expand_bn")(y))
        y = depthwise_conv(hidden, 3, strides=self.strides, name="dw_conv")(y)
        y = act(layers.batch_norm(train, name="dw_bn")(y))
        y = layers.conv(self.features, 1, name="project_conv")(y)
        y = layers.batch_norm(train, name="project_bn")(y)
        if self.strides != 1:
            return y
        if c_in == self.features:
            return y + x
        if self.variant == "pytorch_cifar":
            residual = layers.conv(self.features, 1, name="proj_conv")(x)
            return y + layers.batch_norm(train, name="proj_bn")(residual)
        return y


class MobileNetV2(nn.Module):
    """MobileNetV2, CIFAR variant (stride-1 stem and second stage).

    Attributes:
      num_classes: number of output logits k >= 2.
      width_multiplier: scales every channel count (rounded with :func:`make_divisible`);
        the head keeps ``1280`` channels for multipliers below 1 (as in the paper).
      dropout_rate: dropout before the classifier in train mode, in [0, 1); 0 by default
        (pytorch-cifar has none; torchvision's ImageNet model uses 0.2). A positive rate needs
        a ``"dropout"`` PRNG key in train mode.
      variant: ``"paper"`` (Sandler et al.'s blocks, ReLU6) or ``"pytorch_cifar"`` (see the
        module docstring).

    Call:
      ``model.apply(variables, x, train=...)``, ``x`` float32 ``[batch, H, W, C]`` ->
      logits ``[batch, num_classes]``. ``train=True`` normalizes with batch statistics
      (``mutable=["batch_stats"]`` returns the updated running ones); ``train=False`` uses the
      running statistics.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.mobilenetv2 import MobileNetV2
      >>> shapes = jax.eval_shape(lambda k: MobileNetV2(10).init(
      ...     k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(shapes["params"]))
      2236682
    """

    num_classes: int
    width_multiplier: float = 1.0
    dropout_rate: float = 0.0
    variant: Variant = "paper"

    def __post_init__(self):
        validation.check_num_classes(self.num_classes)
        validation.check_positive("width_multiplier", self.width_multiplier)
        validation.check_in_range("dropout_rate", self.dropout_rate, 0.0, 1.0)
        validation.check_choice("variant", self.variant, MOBILENETV2_VARIANTS)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        act = nn.relu6 if self.variant == "paper" else nn.relu
        w = self.width_multiplier
        x = layers.conv(make_divisible(32 * w), 3, name="stem_conv")(x)
        x = act(layers.batch_norm(train, name="stem_bn")(x))
        for stage, (t, c, n, s) in enumerate(MOBILENETV2_CIFAR_STAGES):
            for i in range(n):
                x = _InvertedResidual(
                    make_divisible(c * w),
                    t,
                    s if i == 0 else 1,
                    self.variant,
                    name=f"stage{stage}_block{i}",
                )(x, train=train)
        x = layers.conv(make_divisible(1280 * max(1.0, w)), 1, name="head_conv")(x)
        x = act(layers.batch_norm(train, name="head_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return layers.dense(self.num_classes, name="classifier")(x)

