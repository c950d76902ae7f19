"""EfficientNet-B0 for 32x32 images (Tan & Le, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", ICML 2019), the non-ReLU model of "To Trust or Not To Trust".

Layout (paper Table 1), every activation SiLU (swish):

* stem: 3x3 conv ``3 -> 32``-BN-SiLU;
* MBConv stages ``(t, k, s, c, n)`` = (expansion, depthwise kernel, stride of the first
  repeat, channels, repeats): (1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2),
  (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1). An MBConv block
  is 1x1 expansion conv to ``t * c_in``-BN-SiLU (left out when ``t == 1``), ``k x k``
  depthwise conv (stride s)-BN-SiLU, squeeze-and-excitation (global average pool, 1x1 conv
  with bias to ``max(1, c_in // 4)``, SiLU, 1x1 conv with bias back, sigmoid gate), 1x1
  linear projection conv-BN. Where the stride is 1 and the channels match the input is added
  after stochastic depth ("drop connect": in train mode the block's branch is dropped for a
  whole example with probability ``stochastic_depth_rate * i / 16`` for the i-th of the 16
  blocks, counted from 0, and rescaled by ``1 / (1 - p)`` otherwise);
* head 1x1 conv ``320 -> 1280``-BN-SiLU, global average pool, dropout (0.2), Linear.

CIFAR variant: the stem conv has stride 1 (ImageNet: 2); the stage strides are the paper's,
so a 32x32 image ends as a 2x2 map (total stride 16). This is the adaptation of the common
CIFAR ports (e.g. kuangliu's "pytorch-cifar", whose blocks however differ from the paper); the
Trust paper does not state its choice. The stride does not change the parameter count:
4,020,358 parameters for 10 classes, i.e. torchvision's ``efficientnet_b0`` (5,288,548 with
its 1000-class head) less ``1280 * 1000 + 1000`` plus ``1280 * 10 + 10``.

``width_multiplier`` / ``depth_multiplier`` scale channels (:func:`make_divisible`) and
repeats (rounded up) as the paper's compound scaling (B1: 1.0 / 1.1, ..., at larger inputs).
Convs have no bias where BatchNorm follows; see :mod:`hampjax.models.layers` for
initialization and BatchNorm settings.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from hampjax import validation
from hampjax.models import layers
from hampjax.models.mobilenetv2 import depthwise_conv, make_divisible

__all__ = ["EfficientNet", "EFFICIENTNET_B0_STAGES", "SE_RATIO"]

# (expansion t, kernel k, stride s, channels c, repeats n) of EfficientNet-B0.
EFFICIENTNET_B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
SE_RATIO = 0.25  # squeeze channels = max(1, int(block input channels * SE_RATIO))


class _SqueezeExcite(nn.Module):
    squeeze: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = nn.silu(layers.conv(self.squeeze, 1, use_bias=True, name="reduce")(s))
        s = nn.sigmoid(layers.conv(x.shape[-1], 1, use_bias=True, name="expand")(s))
        return x * s


class _MBConv(nn.Module):
    features: int
    expansion: int
    kernel_size: int
    strides: int
    stochastic_depth: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c_in = x.shape[-1]
        hidden = c_in * self.expansion
        y = x
        if self.expansion != 1:
            y = layers.conv(hidden, 1, name="expand_conv")(y)
            y = nn.silu(layers.batch_norm(train, name="expand_bn")(y))
        y = depthwise_conv(hidden, self.kernel_size, strides=self.strides, name="dw_conv")(y)
        y = nn.silu(layers.batch_norm(train, name="dw_bn")(y))
        y = _SqueezeExcite(max(1, int(c_in * SE_RATIO)), name="se")(y)
        y = layers.conv(self.features, 1, name="project_conv")(y)
        y = layers.batch_norm(train, name="project_bn")(y)
        if self.strides == 1 and c_in == self.features:
            # Per-example drop of the whole branch: a dropout mask broadcast over H, W, C.
            y = nn.Dropout(self.stochastic_depth, broadcast_dims=(1, 2, 3),
                           deterministic=not train, name="stochastic_depth")(y)
            y = y + x
        return y


class EfficientNet(nn.Module):
    """EfficientNet (B0 by default), CIFAR variant (stride-1 stem).

    Attributes:
      num_classes: number of output logits k >= 2.
      dropout_rate: dropout before the classifier in train mode, in [0, 1) (0.2 for B0).
      stochastic_depth_rate: drop probability of the last MBConv block in train mode, in
        [0, 1) (0.2); block i of B drops with ``stochastic_depth_rate * i / B``.
      width_multiplier: channel scale (1.0 for B0), > 0.
      depth_multiplier: repeat scale (1.0 for B0), > 0.

    Either positive rate needs a ``"dropout"`` PRNG key in train mode (both draw from that
    stream); eval mode is deterministic.

    Call:
      ``model.apply(variables, x, train=...)``, ``x`` float32 ``[batch, H, W, C]`` ->
      logits ``[batch, num_classes]``. ``train=True`` normalizes with batch statistics
      (``mutable=["batch_stats"]`` returns the updated running ones); ``train=False`` uses the
      running statistics.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.efficientnet import EfficientNet
      >>> shapes = jax.eval_shape(lambda k: EfficientNet(10).init(
      ...     k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(shapes["params"]))
      4020358
    """

    num_classes: int
    dropout_rate: float = 0.2
    stochastic_depth_rate: float = 0.2
    width_multiplier: float = 1.0
    depth_multiplier: float = 1.0

    def __post_init__(self):
        validation.check_num_classes(self.num_classes)
        validation.check_in_range("dropout_rate", self.dropout_rate, 0.0, 1.0)
        validation.check_in_range("stochastic_depth_rate", self.stochastic_depth_rate, 0.0, 1.0)
        validation.check_positive("width_multiplier", self.width_multiplier)
        validation.check_positive("depth_multiplier", self.depth_multiplier)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        w, d = self.width_multiplier, self.depth_multiplier
        x = layers.conv(make_divisible(32 * w), 3, name="stem_conv")(x)
        x = nn.silu(layers.batch_norm(train, name="stem_bn")(x))
        repeats = [math.ceil(n * d) for *_, n in EFFICIENTNET_B0_STAGES]
        total, index = sum(repeats), 0
        for stage, ((t, k, s, c, _), n) in enumerate(zip(EFFICIENTNET_B0_STAGES, repeats)):
            for i in range(n):
                x = _MBConv(
                    make_divisible(c * w),
                    t,
                    k,
                    s if i == 0 else 1,
                    self.stochastic_depth_rate * index / total,
                    name=f"stage{stage}_block{i}",
                )(x, train=train)
                index += 1
        x = layers.conv(make_divisible(1280 * w), 1, name="head_conv")(x)
        x = nn.silu(layers.batch_norm(train, name="head_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return layers.dense(self.num_classes, name="classifier")(x)
