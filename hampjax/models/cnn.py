"""SalemCNN: the small CNN of Salem et al. (ML-Leaks), used by "To Trust or Not To Trust".

conv5x5(32, SAME)-ReLU-maxpool 2, twice; flatten (2048 values for 32x32x3 inputs);
Linear 128-ReLU; Linear k. 291,626 parameters for 32x32x3 inputs and 10 classes.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from hampjax import validation
from hampjax.models import layers

__all__ = ["SalemCNN"]


class SalemCNN(nn.Module):
    """Two conv5x5-ReLU-maxpool stages, a hidden Linear layer and a Linear head.

    Convs carry biases (no BatchNorm); initialization as in :mod:`hampjax.models.layers`.

    Attributes:
      num_classes: number of output logits k >= 2.
      channels: channels of both convs (32).
      hidden: width of the hidden Linear layer (128).
      head_dropout_rate: dropout before the classifier in train mode, in [0, 1) (default 0;
        RelaxLoss's dropout baseline: 0.5); a positive rate needs a ``"dropout"`` PRNG key.

    Call:
      ``model.apply(variables, x, train=...)``, ``x`` float32 ``[batch, H, W, C]`` ->
      logits ``[batch, num_classes]``; ``train`` switches the head dropout (if any) on. The
      flattened size (and the parameter count) depends on H and W.

    Raises:
      ValueError: on an invalid attribute or an input that is not rank 4.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.cnn import SalemCNN
      >>> model = SalemCNN(10)
      >>> variables = jax.eval_shape(
      ...     lambda k: model.init(k, jnp.zeros((1, 32, 32, 3)), train=False), jax.random.key(0))
      >>> sum(p.size for p in jax.tree.leaves(variables["params"]))
      291626
      >>> jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
      ...                variables, jnp.zeros((2, 32, 32, 3))).shape
      (2, 10)
    """

    num_classes: int
    channels: int = 32
    hidden: int = 128
    head_dropout_rate: float = 0.0

    def __post_init__(self):
        validation.check_num_classes(self.num_classes)
        validation.check_positive_int("channels", self.channels)
        validation.check_positive_int("hidden", self.hidden)
        object.__setattr__(self, "head_dropout_rate",
                           layers.check_dropout_rate("head_dropout_rate", self.head_dropout_rate))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        for i in range(2):
            x = layers.conv(self.channels, 5, use_bias=True, name=f"conv{i}")(x)
            x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(layers.dense(self.hidden, name="hidden")(x))
        x = layers.head_dropout(x, self.head_dropout_rate, train)
        return layers.dense(self.num_classes, name="classifier")(x)
