"""VGG with BatchNorm for 32x32 images (the common CIFAR variant; RelaxLoss's VGG11-BN).

Each number in the configuration is a 3x3 conv (with bias) -BN-ReLU with that many channels,
each ``"M"`` a 2x2 max-pool with stride 2; the features are flattened (512 values for a 32x32
input after five pools) into a single Linear layer. VGG11-BN has 9,231,114 parameters for 10
classes.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from hampjax import validation
from hampjax.models import layers

__all__ = ["VGG", "VGG_CONFIGS"]

VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (
        64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
        512, 512, 512, "M", 512, 512, 512, "M",
    ),  # fmt: skip
}


class VGG(nn.Module):
    """VGG for CIFAR: conv3x3(bias)-[BN]-ReLU stacks with max-pools and one Linear head.

    Attributes:
      num_classes: number of output logits k >= 2.
      config: layer plan, integers (conv channels) and ``"M"`` (max-pool); default VGG11
        ``(64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M)``. See ``VGG_CONFIGS``.
      batch_norm: BatchNorm after every conv (True for VGG11-BN).
      head_dropout_rate: dropout before the classifier in train mode, in [0, 1) (default 0;
        RelaxLoss's dropout baseline: 0.5); a positive rate needs a ``"dropout"`` PRNG key.

    Call:
      ``model.apply(variables, x, train=...)``, ``x`` float32 ``[batch, H, W, C]`` ->
      logits ``[batch, num_classes]``. The head's input size (and so the parameter count)
      depends on H and W; 32x32 gives 512 features. ``train=True`` normalizes with batch
      statistics (``mutable=["batch_stats"]`` returns the updated running ones);
      ``train=False`` uses the running statistics.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.vgg import VGG
      >>> shapes = jax.eval_shape(lambda k: VGG(10).init(
      ...     k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(shapes["params"]))
      9231114
    """

    num_classes: int
    config: tuple[int | str, ...] = VGG_CONFIGS["vgg11"]
    batch_norm: bool = True
    head_dropout_rate: float = 0.0

    def __post_init__(self):
        validation.check_num_classes(self.num_classes)
        layers.check_bool("batch_norm", self.batch_norm)
        if isinstance(self.config, (str, bytes)) or not self.config:
            raise ValueError(
                f"config must be a non-empty sequence of positive integers and 'M', "
                f"got {self.config!r}"
            )
        for i, item in enumerate(self.config):
            if item != "M":
                validation.check_positive_int(f"config[{i}] (an int or 'M')", item)
        object.__setattr__(self, "config", tuple(self.config))
        object.__setattr__(self, "head_dropout_rate",
                           layers.check_dropout_rate("head_dropout_rate", self.head_dropout_rate))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        conv_index = 0
        for item in self.config:
            if item == "M":
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
                continue
            x = layers.conv(item, 3, use_bias=True, name=f"conv{conv_index}")(x)
            if self.batch_norm:
                x = layers.batch_norm(train, name=f"bn{conv_index}")(x)
            x = nn.relu(x)
            conv_index += 1
        x = x.reshape((x.shape[0], -1))
        x = layers.head_dropout(x, self.head_dropout_rate, train)
        return layers.dense(self.num_classes, name="classifier")(x)
