"""DenseNet for 32x32 images (Huang et al., "Densely Connected Convolutional Networks", 2017).

HAMP's "DenseNet-12" is DenseNet-BC with depth 100, growth rate 12, compression 0.5 and no
dropout (769,162 parameters for 10 classes, 800,032 for 100); Weighted Smoothing uses the same
design at depth 22. Layout (BC variant, depth 100):

* stem: 3x3 conv ``3 -> 2 * growth_rate`` (24), no bias;
* three dense blocks of ``(depth - 4) / 6`` bottleneck layers (16), each
  BN-ReLU-1x1 conv to ``4 * growth_rate``-BN-ReLU-3x3 conv to ``growth_rate``, whose output is
  concatenated to its input;
* between blocks a transition BN-ReLU-1x1 conv to ``floor(compression * channels)``-avgpool 2;
* head BN-ReLU-global average pool-Linear.

Channels at depth 100: 24 -> 216 -> 108 -> 300 -> 150 -> 342. Without the bottleneck a layer is
BN-ReLU-3x3 conv and a block has ``(depth - 4) / 3`` layers. Convs have no bias (BatchNorm
follows); see :mod:`hampjax.models.layers` for initialization and BatchNorm settings.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from hampjax import validation
from hampjax.models import layers

__all__ = ["DenseNet", "densenet_layers_per_block", "densenet_channels"]

NUM_BLOCKS = 3


def densenet_layers_per_block(depth: int, bottleneck: bool) -> int:
    """Number of dense layers in each of the three blocks.

    Depth counts the stem conv, the two transition convs, the classifier, and 2 (bottleneck)
    or 1 conv per dense layer: ``depth = 4 + 3 * layers * (2 if bottleneck else 1)``.

    Args:
      depth: total depth; ``depth - 4`` must be a positive multiple of 6 (bottleneck) or 3.
      bottleneck: whether each dense layer has the 1x1 bottleneck conv.

    Returns:
      Layers per block (16 for depth 100 BC, 3 for depth 22 BC).

    Raises:
      ValueError: if ``depth`` does not fit the formula.

    Example:
      >>> densenet_layers_per_block(100, True), densenet_layers_per_block(22, True)
      (16, 3)
    """
    validation.check_positive_int("depth", depth)
    layers.check_bool("bottleneck", bottleneck)
    step = 3 * (2 if bottleneck else 1)
    if depth <= 4 or (depth - 4) % step:
        raise ValueError(
            f"depth must be 4 + {step} * n for an integer n >= 1 "
            f"({'with' if bottleneck else 'without'} bottleneck), got {depth}"
        )
    return (depth - 4) // step


def densenet_channels(
    depth: int, growth_rate: int, compression: float, bottleneck: bool
) -> tuple[int, ...]:
    """Channel counts after the stem, each block and each transition.

    Args:
      depth: total depth (see :func:`densenet_layers_per_block`).
      growth_rate: channels each dense layer adds.
      compression: transition output fraction in (0, 1]; the count is floored.
      bottleneck: whether dense layers have the 1x1 bottleneck conv.

    Returns:
      ``(stem, block1, transition1, block2, transition2, block3)``.

    Example:
      >>> densenet_channels(100, 12, 0.5, True)
      (24, 216, 108, 300, 150, 342)
    """
    n = densenet_layers_per_block(depth, bottleneck)
    c = 2 * growth_rate
    channels = [c]
    for block in range(NUM_BLOCKS):
        c += n * growth_rate
        channels.append(c)
        if block < NUM_BLOCKS - 1:
            c = int(c * compression)
            channels.append(c)
    return tuple(channels)


class _DenseLayer(nn.Module):
    growth_rate: int
    bottleneck: bool
    dropout_rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        y = x
        if self.bottleneck:
            y = nn.relu(layers.batch_norm(train, name="bn1")(y))
            y = layers.conv(4 * self.growth_rate, 1, name="conv1")(y)
            y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        y = nn.relu(layers.batch_norm(train, name="bn2")(y))
        y = layers.conv(self.growth_rate, 3, name="conv2")(y)
        y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
        return jnp.concatenate([x, y], axis=-1)


class _Transition(nn.Module):
    features: int
    dropout_rate: float

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        x = nn.relu(layers.batch_norm(train, name="bn")(x))
        x = layers.conv(self.features, 1, name="conv")(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.avg_pool(x, (2, 2), strides=(2, 2))


class DenseNet(nn.Module):
    """DenseNet(-BC) for CIFAR-sized NHWC images.

    Attributes:
      num_classes: number of output logits k >= 2.
      depth: total depth, ``4 + 6n`` with bottleneck (100 for HAMP, 22 for Weighted Smoothing)
        or ``4 + 3n`` without.
      growth_rate: channels added per dense layer (12).
      compression: transition output fraction in (0, 1] (0.5 for BC); channel counts floored.
      bottleneck: use BN-ReLU-1x1 conv to ``4 * growth_rate`` before each 3x3 conv.
      dropout_rate: dropout after each conv in train mode, in [0, 1); 0 (the default) adds
        no randomness. A positive rate needs a ``"dropout"`` PRNG key in train mode.

    Call:
      ``model.apply(variables, x, train=...)`` with ``x`` float32 ``[batch, H, W, C]``
      (H, W multiples of 4) returns logits ``[batch, num_classes]``. With ``train=True``
      BatchNorm uses batch statistics; pass ``mutable=["batch_stats"]`` to get the updated
      running statistics. With ``train=False`` it uses the running statistics.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.densenet import DenseNet
      >>> model = DenseNet(num_classes=10, depth=100)
      >>> shapes = jax.eval_shape(
      ...     lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(shapes["params"]))
      769162
    """

    num_classes: int
    depth: int = 100
    growth_rate: int = 12
    compression: float = 0.5
    bottleneck: bool = True
    dropout_rate: float = 0.0

    def __post_init__(self):
        validation.check_num_classes(self.num_classes)
        validation.check_positive_int("growth_rate", self.growth_rate)
        validation.check_in_range(
            "compression", self.compression, 0.0, 1.0, low_inclusive=False, high_inclusive=True
        )
        validation.check_in_range("dropout_rate", self.dropout_rate, 0.0, 1.0)
        channels = densenet_channels(
            self.depth, self.growth_rate, self.compression, self.bottleneck
        )
        if min(channels) < 1:
            raise ValueError(
                f"compression={self.compression} leaves a transition with no channels "
                f"(channels {channels}); compression must be in (0, 1] and large enough"
            )
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        n = densenet_layers_per_block(self.depth, self.bottleneck)
        x = layers.conv(2 * self.growth_rate, 3, name="stem")(x)
        for block in range(NUM_BLOCKS):
            for i in range(n):
                x = _DenseLayer(
                    self.growth_rate,
                    self.bottleneck,
                    self.dropout_rate,
                    name=f"block{block}_layer{i}",
                )(x, train=train)
            if block < NUM_BLOCKS - 1:
                features = int(x.shape[-1] * self.compression)
                x = _Transition(features, self.dropout_rate, name=f"transition{block}")(
                    x, train=train
                )
        x = nn.relu(layers.batch_norm(train, name="head_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        return layers.dense(self.num_classes, name="classifier")(x)
