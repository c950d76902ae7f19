"""Residual networks for 32x32 images: CIFAR ResNet-18, He et al.'s ResNet-20, WRN-28-2.

* :class:`ResNet18`: the CIFAR variant of ResNet-18 used by "To Trust or Not To Trust"
  (3x3 stem conv to 64, no max-pool, BasicBlocks ``[2, 2, 2, 2]`` with 64/128/256/512 channels,
  1x1 conv + BN projection shortcuts where the shape changes): 11,173,962 parameters for 10
  classes.
* :class:`ResNet20`: He et al. (2016), Sec. 4.2 (RelaxLoss): 16/32/64 channels, 3 BasicBlocks
  per stage; shortcut option A (parameter-free: strided subsampling plus zero channel padding)
  gives 269,722 parameters for 10 classes; option B uses 1x1 conv + BN projections.
* :class:`WideResNet`: Zagoruyko & Komodakis (2016) pre-activation wide basic blocks;
  WRN-28-2 has 1,467,610 parameters for 10 classes.

Convs have no bias (BatchNorm follows); see :mod:`hampjax.models.layers` for initialization and
BatchNorm settings. Every ``__call__`` takes NHWC float32 images and ``train`` by keyword.
"""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from hampjax import validation
from hampjax.models import layers

__all__ = [
    "BasicBlock",
    "ResNet18",
    "ResNet20",
    "WideResNet",
    "SHORTCUTS",
    "zero_pad_shortcut",
]

Shortcut = Literal["A", "B"]
SHORTCUTS = ("A", "B")


def zero_pad_shortcut(x: jax.Array, features: int, strides: int) -> jax.Array:
    """Parameter-free shortcut (He et al. option A): subsample, then zero-pad channels.

    Takes every ``strides``-th pixel (starting at 0) in both spatial directions and pads the
    channel axis with zeros, half before and half after (the extra one after when odd).

    Args:
      x: ``[batch, H, W, C]``.
      features: output channels, ``>= C``.
      strides: spatial subsampling factor >= 1.

    Returns:
      ``[batch, ceil(H / strides), ceil(W / strides), features]``, same dtype as ``x``.

    Raises:
      ValueError: if ``features < C`` or ``strides < 1``.

    Example:
      >>> import jax.numpy as jnp
      >>> zero_pad_shortcut(jnp.ones((1, 4, 4, 2)), 4, 2)[0, :, :, :].sum(axis=(0, 1))
      Array([0., 4., 4., 0.], dtype=float32)
    """
    validation.check_positive_int("strides", strides)
    extra = features - x.shape[-1]
    if extra < 0:
        raise ValueError(
            f"features must be >= the input's {x.shape[-1]} channels for a zero-padding "
            f"shortcut, got {features}"
        )
    x = x[:, ::strides, ::strides, :]
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))


class BasicBlock(nn.Module):
    """Post-activation residual block: conv3x3-BN-ReLU-conv3x3-BN, add shortcut, ReLU.

    Attributes:
      features: output channels.
      strides: stride of the first conv (and of the shortcut).
      shortcut: used only where the shape changes; ``"A"`` = :func:`zero_pad_shortcut`,
        ``"B"`` = 1x1 conv (stride ``strides``, no bias) + BN. Otherwise the identity.
    """

    features: int
    strides: int = 1
    shortcut: Shortcut = "B"

    def __post_init__(self):
        validation.check_positive_int("features", self.features)
        validation.check_positive_int("strides", self.strides)
        validation.check_choice("shortcut", self.shortcut, SHORTCUTS)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        y = layers.conv(self.features, 3, strides=self.strides, name="conv1")(x)
        y = nn.relu(layers.batch_norm(train, name="bn1")(y))
        y = layers.conv(self.features, 3, name="conv2")(y)
        y = layers.batch_norm(train, name="bn2")(y)
        if self.strides == 1 and x.shape[-1] == self.features:
            residual = x
        elif self.shortcut == "A":
            residual = zero_pad_shortcut(x, self.features, self.strides)
        else:
            residual = layers.conv(self.features, 1, strides=self.strides, name="proj_conv")(x)
            residual = layers.batch_norm(train, name="proj_bn")(residual)
        return nn.relu(y + residual)


def _check_common(num_classes: int, shortcut: str) -> None:
    validation.check_num_classes(num_classes)
    validation.check_choice("shortcut", shortcut, SHORTCUTS)


class ResNet18(nn.Module):
    """ResNet-18, CIFAR variant (3x3 stem, no max-pool).

    Attributes:
      num_classes: number of output logits k >= 2.
      stage_sizes: BasicBlocks per stage (``(2, 2, 2, 2)``; ``(3, 4, 6, 3)`` gives ResNet-34).
      widths: channels per stage (``(64, 128, 256, 512)``); stages after the first halve the
        resolution.
      shortcut: ``"B"`` (1x1 conv + BN projection, the usual CIFAR ResNet-18) or ``"A"``.
      head_dropout_rate: dropout before the classifier in train mode, in [0, 1) (default 0;
        RelaxLoss's dropout baseline: 0.5); a positive rate needs a ``"dropout"`` PRNG key.

    Call:
      ``model.apply(variables, x, train=...)``, ``x`` float32 ``[batch, H, W, C]`` ->
      logits ``[batch, num_classes]``. ``train=True`` normalizes with batch statistics
      (``mutable=["batch_stats"]`` returns the updated running ones); ``train=False`` uses the
      running statistics.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.resnet import ResNet18
      >>> shapes = jax.eval_shape(lambda k: ResNet18(10).init(
      ...     k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(shapes["params"]))
      11173962
    """

    num_classes: int
    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    shortcut: Shortcut = "B"
    head_dropout_rate: float = 0.0

    def __post_init__(self):
        _check_common(self.num_classes, self.shortcut)
        stages = layers.check_positive_int_tuple("stage_sizes", self.stage_sizes)
        widths = layers.check_positive_int_tuple("widths", self.widths)
        if len(stages) != len(widths):
            raise ValueError(
                f"stage_sizes and widths must have the same length, got {len(stages)} "
                f"and {len(widths)}"
            )
        object.__setattr__(self, "stage_sizes", stages)
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "head_dropout_rate",
                           layers.check_dropout_rate("head_dropout_rate", self.head_dropout_rate))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        x = layers.conv(self.widths[0], 3, name="stem_conv")(x)
        x = nn.relu(layers.batch_norm(train, name="stem_bn")(x))
        for stage, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
            for i in range(blocks):
                strides = 2 if stage > 0 and i == 0 else 1
                x = BasicBlock(width, strides, self.shortcut, name=f"stage{stage}_block{i}")(
                    x, train=train
                )
        x = jnp.mean(x, axis=(1, 2))
        x = layers.head_dropout(x, self.head_dropout_rate, train)
        return layers.dense(self.num_classes, name="classifier")(x)


class ResNet20(nn.Module):
    """He et al.'s CIFAR ResNet (depth ``6n + 2``; ResNet-20 by default).

    Attributes:
      num_classes: number of output logits k >= 2.
      shortcut: ``"A"`` (the paper's parameter-free shortcut, 269,722 parameters for 10
        classes) or ``"B"`` (1x1 conv + BN projection where the shape changes).
      depth: ``6n + 2`` with n >= 1 BasicBlocks per stage (20, 32, 44, 56, 110).
      width: channels of the first stage (16); the later stages use 2x and 4x.
      head_dropout_rate: dropout before the classifier in train mode, in [0, 1) (default 0;
        RelaxLoss's dropout baseline: 0.5); a positive rate needs a ``"dropout"`` PRNG key.

    Call:
      ``model.apply(variables, x, train=...)``, ``x`` float32 ``[batch, H, W, C]`` ->
      logits ``[batch, num_classes]``; BatchNorm as in :class:`ResNet18`.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.resnet import ResNet20
      >>> shapes = jax.eval_shape(lambda k: ResNet20(10).init(
      ...     k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(shapes["params"]))
      269722
    """

    num_classes: int
    shortcut: Shortcut = "A"
    depth: int = 20
    width: int = 16
    head_dropout_rate: float = 0.0

    def __post_init__(self):
        _check_common(self.num_classes, self.shortcut)
        validation.check_positive_int("width", self.width)
        validation.check_positive_int("depth", self.depth)
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError(f"depth must be 6 * n + 2 for an integer n >= 1, got {self.depth}")
        object.__setattr__(self, "head_dropout_rate",
                           layers.check_dropout_rate("head_dropout_rate", self.head_dropout_rate))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        n = (self.depth - 2) // 6
        x = layers.conv(self.width, 3, name="stem_conv")(x)
        x = nn.relu(layers.batch_norm(train, name="stem_bn")(x))
        for stage in range(3):
            for i in range(n):
                strides = 2 if stage > 0 and i == 0 else 1
                x = BasicBlock(
                    self.width * 2**stage, strides, self.shortcut, name=f"stage{stage}_block{i}"
                )(x, train=train)
        x = jnp.mean(x, axis=(1, 2))
        x = layers.head_dropout(x, self.head_dropout_rate, train)
        return layers.dense(self.num_classes, name="classifier")(x)


class _WideBlock(nn.Module):
    features: int
    strides: int
    dropout_rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        o = nn.relu(layers.batch_norm(train, name="bn1")(x))
        if self.strides == 1 and x.shape[-1] == self.features:
            residual = x
        else:
            residual = layers.conv(self.features, 1, strides=self.strides, name="proj_conv")(o)
        y = layers.conv(self.features, 3, strides=self.strides, name="conv1")(o)
        y = nn.relu(layers.batch_norm(train, name="bn2")(y))
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        y = layers.conv(self.features, 3, name="conv2")(y)
        return y + residual


class WideResNet(nn.Module):
    """Wide ResNet WRN-depth-width with pre-activation wide basic blocks.

    Block: BN-ReLU-conv3x3(stride)-BN-ReLU-dropout-conv3x3, plus the input, or a 1x1 conv
    (no BN) of the pre-activated input where the shape changes. Stem 3x3 conv to 16; stages of
    ``16 * width``, ``32 * width``, ``64 * width`` channels with ``(depth - 4) / 6`` blocks;
    head BN-ReLU-global average pool-Linear.

    Attributes:
      num_classes: number of output logits k >= 2.
      depth: ``6n + 4`` with n >= 1 (28).
      width: widening factor k (2).
      dropout_rate: dropout between the two convs of each block in train mode, in [0, 1);
        a positive rate needs a ``"dropout"`` PRNG key in train mode.

    Call:
      ``model.apply(variables, x, train=...)``, ``x`` float32 ``[batch, H, W, C]`` ->
      logits ``[batch, num_classes]``; BatchNorm as in :class:`ResNet18`.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.resnet import WideResNet
      >>> shapes = jax.eval_shape(lambda k: WideResNet(10).init(
      ...     k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(shapes["params"]))
      1467610
    """

    num_classes: int
    depth: int = 28
    width: int = 2
    dropout_rate: float = 0.0

    def __post_init__(self):
        validation.check_num_classes(self.num_classes)
        validation.check_positive_int("width", self.width)
        validation.check_positive_int("depth", self.depth)
        if self.depth < 10 or (self.depth - 4) % 6:
            raise ValueError(f"depth must be 6 * n + 4 for an integer n >= 1, got {self.depth}")
        validation.check_in_range("dropout_rate", self.dropout_rate, 0.0, 1.0)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        n = (self.depth - 4) // 6
        x = layers.conv(16, 3, name="stem_conv")(x)
        for stage in range(3):
            for i in range(n):
                strides = 2 if stage > 0 and i == 0 else 1
                x = _WideBlock(
                    16 * self.width * 2**stage,
                    strides,
                    self.dropout_rate,
                    name=f"stage{stage}_block{i}",
                )(x, train=train)
        x = nn.relu(layers.batch_norm(train, name="head_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        return layers.dense(self.num_classes, name="classifier")(x)
