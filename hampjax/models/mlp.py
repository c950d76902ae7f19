"""Fully connected classifier for the tabular benchmarks (Purchase100, Texas100, Location30).

HAMP and RelaxLoss both use ``d -> 1024 -> 512 -> 256 -> 128 -> k`` with Tanh, no dropout and
no BatchNorm (d = 600 / 6169 / 446, k = 100 / 100 / 30).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax

from hampjax import validation
from hampjax.models import layers

__all__ = ["FCNet", "DEFAULT_HIDDEN_SIZES"]

DEFAULT_HIDDEN_SIZES = (1024, 512, 256, 128)


class FCNet(nn.Module):
    """Multilayer perceptron ``d -> hidden_sizes... -> num_classes``.

    The input width ``d`` is taken from the data at ``init``. Dense kernels use PyTorch's
    ``nn.Linear`` default initialization, biases start at zero.

    Attributes:
      num_classes: number of output logits k >= 2.
      hidden_sizes: widths of the hidden layers (default ``(1024, 512, 256, 128)``).
      activation: elementwise nonlinearity after each hidden layer (default ``nn.tanh``).
      head_dropout_rate: dropout before the classifier in train mode, in [0, 1) (default 0;
        RelaxLoss's dropout baseline: 0.5); a positive rate needs a ``"dropout"`` PRNG key.

    Call:
      ``model.apply(variables, x, train=...)`` with ``x`` float ``[batch, d]`` returns logits
      ``[batch, num_classes]``; ``train`` switches the head dropout (if any) on.

    Raises:
      ValueError: on ``num_classes < 2``, a non-positive hidden size, a non-callable
        activation, or an input of rank other than 2.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.models.mlp import FCNet
      >>> model = FCNet(num_classes=100)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 600)), train=False)
      >>> sum(p.size for p in jax.tree.leaves(variables["params"]))
      1317348
      >>> model.apply(variables, jnp.zeros((4, 600)), train=False).shape
      (4, 100)
    """

    num_classes: int
    hidden_sizes: tuple[int, ...] = DEFAULT_HIDDEN_SIZES
    activation: Callable[[jax.Array], jax.Array] = nn.tanh
    head_dropout_rate: float = 0.0

    def __post_init__(self):
        validation.check_num_classes(self.num_classes)
        sizes = layers.check_positive_int_tuple("hidden_sizes", self.hidden_sizes)
        object.__setattr__(self, "hidden_sizes", sizes)  # Lists become hashable tuples.
        if not callable(self.activation):
            raise ValueError(f"activation must be callable, got {self.activation!r}")
        object.__setattr__(self, "head_dropout_rate",
                           layers.check_dropout_rate("head_dropout_rate", self.head_dropout_rate))
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        if x.ndim != 2:
            raise ValueError(f"x must have shape [batch, features] (rank 2), got shape {x.shape}")
        for i, width in enumerate(self.hidden_sizes):
            x = self.activation(layers.dense(width, name=f"hidden{i}")(x))
        x = layers.head_dropout(x, self.head_dropout_rate, train)
        return layers.dense(self.num_classes, name="classifier")(x)
