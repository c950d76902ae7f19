"""ShuffleNetV2 for 32x32 images (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient
CNN Architecture Design", ECCV 2018), the CIFAR variant of HAMP's Appendix H (Fig. 10).

Layout (paper Table 5):

* stem: 3x3 conv ``3 -> 24``-BN-ReLU;
* three stages, each one down-sampling unit followed by 3, 7 and 3 basic units, with
  ``SHUFFLENETV2_WIDTHS[width_multiplier][:3]`` output channels (116, 232, 464 at 1.0x);
* head 1x1 conv to ``SHUFFLENETV2_WIDTHS[width_multiplier][3]`` (1024)-BN-ReLU, global
  average pool, Linear.

Basic unit (stride 1): the channels are split in halves; the first half passes through, the
second goes through 1x1 conv-BN-ReLU, 3x3 depthwise conv-BN, 1x1 conv-BN-ReLU; the halves are
concatenated and the channels shuffled in two groups. Down-sampling unit (stride 2): both
branches see the whole input; left 3x3 depthwise conv (stride 2)-BN, 1x1 conv to
``c_out / 2``-BN-ReLU; right 1x1 conv to ``c_out / 2``-BN-ReLU, 3x3 depthwise conv
(stride 2)-BN, 1x1 conv-BN-ReLU; concatenate, shuffle.

CIFAR variant (the usual one, e.g. kuangliu's "pytorch-cifar"): the stem conv has stride 1
(ImageNet: 2) and there is no 3x3 max-pool after it, so a 32x32 image ends as a 4x4 map
(total stride 8). Neither change alters the parameter count: 1.0x has 1,263,854 parameters for
10 classes, i.e. torchvision's ``shufflenet_v2_x1_0`` (2,278,604 with its 1000-class head)
less ``1024 * 1000 + 1000`` plus ``1024 * 10 + 10``. The other widths follow the paper's
Table 5 (0.5x, 1.5x, 2.0x; pytorch-cifar's 2.0x uses 224 instead of the paper's 244 channels in
the first stage).

Convs have no bias (BatchNorm follows); see :mod:`hampjax.models.layers` for initialization
and BatchNorm settings; depthwise convs are padded as in PyTorch
(:func:`hampjax.models.mobilenetv2.depthwise_conv`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hampjax import validation
from hampjax.models import layers
from hampjax.models.mobilenetv2 import depthwise_conv

__all__ = ["ShuffleNetV2", "SHUFFLENETV2_WIDTHS", "SHUFFLENETV2_REPEATS", "channel_shuffle"]

# Output channels of the three stages and of the head conv, per width multiplier (Table 5).
SHUFFLENETV2_WIDTHS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
# Basic (stride-1) units after each stage's down-sampling unit.
SHUFFLENETV2_REPEATS = (3, 7, 3)
STEM_CHANNELS = 24


def channel_shuffle(x: jax.Array, groups: int) -> jax.Array:
    """Interleave the channels of ``groups`` equal groups (ShuffleNet's channel shuffle).

    Output channel ``j * groups + i`` is input channel ``i * (C / groups) + j``: the
    ``[N, H, W, C]`` version of PyTorch's ``view(N, g, C/g, H, W).transpose(1, 2)``.

    Args:
      x: ``[..., C]`` with ``C`` divisible by ``groups``.
      groups: number of groups >= 1.

    Returns:
      An array of the shape and dtype of ``x``.

    Raises:
      ValueError: if ``C`` is not divisible by ``groups``.

    Example:
      >>> import jax.numpy as jnp
      >>> channel_shuffle(jnp.arange(6), 2)
      Array([0, 3, 1, 4, 2, 5], dtype=int32)
    """
    groups = validation.check_positive_int("groups", groups)
    c = x.shape[-1]
    if c % groups:
        raise ValueError(f"channels ({c}) must be divisible by groups ({groups})")
    x = x.reshape(x.shape[:-1] + (groups, c // groups))
    return jnp.swapaxes(x, -1, -2).reshape(x.shape[:-2] + (c,))


def _check_repeats(values) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != 3:
        raise ValueError(f"stage_repeats must be a sequence of 3 integers >= 0, got {values!r}")
    return tuple(
        validation.check_positive_int(f"stage_repeats[{i}]", v, minimum=0)
        for i, v in enumerate(values)
    )


class _BasicUnit(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        half = x.shape[-1] // 2
        keep, y = x[..., :half], x[..., half:]
        c = y.shape[-1]
        y = nn.relu(layers.batch_norm(train, name="bn1")(layers.conv(c, 1, name="conv1")(y)))
        y = layers.batch_norm(train, name="bn2")(depthwise_conv(c, 3, name="dw_conv")(y))
        y = nn.relu(layers.batch_norm(train, name="bn3")(layers.conv(c, 1, name="conv3")(y)))
        return channel_shuffle(jnp.concatenate([keep, y], axis=-1), 2)


class _DownUnit(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c_in, mid = x.shape[-1], self.features // 2
        left = depthwise_conv(c_in, 3, strides=2, name="left_dw_conv")(x)
        left = layers.batch_norm(train, name="left_bn1")(left)
        left = layers.conv(mid, 1, name="left_conv")(left)
        left = nn.relu(layers.batch_norm(train, name="left_bn2")(left))
        right = layers.conv(mid, 1, name="right_conv1")(x)
        right = nn.relu(layers.batch_norm(train, name="right_bn1")(right))
        right = depthwise_conv(mid, 3, strides=2, name="right_dw_conv")(right)
        right = layers.batch_norm(train, name="right_bn2")(right)
        right = layers.conv(mid, 1, name="right_conv3")(right)
        right = nn.relu(layers.batch_norm(train, name="right_bn3")(right))
        return channel_shuffle(jnp.concatenate([left, right], axis=-1), 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2, CIFAR variant (stride-1 stem, no max-pool).

    Attributes:
      num_classes: number of output logits k >= 2.
      width_multiplier: one of ``SHUFFLENETV2_WIDTHS``: 0.5, 1.0 (default), 1.5, 2.0.
      stage_repeats: basic units after each of the three down-sampling units
        (``(3, 7, 3)``, the paper's; fewer make small test models).

    Call:
      ``model.apply(variables, x, train=...)``, ``x`` float32 ``[batch, H, W, C]`` ->
      logits ``[batch, num_classes]``. ``train=True`` normalizes with batch statistics
      (``mutable=["batch_stats"]`` returns the updated running ones); ``train=False`` uses the
      running statistics.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.shufflenetv2 import ShuffleNetV2
      >>> shapes = jax.eval_shape(lambda k: ShuffleNetV2(10).init(
      ...     k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(shapes["params"]))
      1263854
    """

    num_classes: int
    width_multiplier: float = 1.0
    stage_repeats: tuple[int, ...] = SHUFFLENETV2_REPEATS

    def __post_init__(self):
        validation.check_num_classes(self.num_classes)
        validation.check_choice("width_multiplier", self.width_multiplier, SHUFFLENETV2_WIDTHS)
        object.__setattr__(self, "stage_repeats", _check_repeats(self.stage_repeats))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        widths = SHUFFLENETV2_WIDTHS[self.width_multiplier]
        x = layers.conv(STEM_CHANNELS, 3, name="stem_conv")(x)
        x = nn.relu(layers.batch_norm(train, name="stem_bn")(x))
        for stage, (width, repeats) in enumerate(zip(widths[:3], self.stage_repeats)):
            x = _DownUnit(width, name=f"stage{stage}_down")(x, train=train)
            for i in range(repeats):
                x = _BasicUnit(name=f"stage{stage}_block{i}")(x, train=train)
        x = layers.conv(widths[3], 1, name="head_conv")(x)
        x = nn.relu(layers.batch_norm(train, name="head_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        return layers.dense(self.num_classes, name="classifier")(x)
