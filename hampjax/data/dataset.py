"""The in-memory dataset container every loader returns.

Raw data stays compact (``uint8`` pixels or ``uint8`` 0/1 features) and is converted to float
only on request (``normalized()`` / ``flat()``), ideally per batch, so that Purchase100 and
Texas100 fit in memory (as float64 they would need 0.95 GB and 3.3 GB).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from hampjax import validation
from hampjax.data.random_inputs import random_binary_inputs, random_image_inputs

__all__ = ["Dataset"]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled dataset in compact raw form.

    Attributes:
      x: raw inputs, ``uint8``. Images: ``[N, H, W, C]`` pixels in ``[0, 255]``; binary tabular
        data: ``[N, d]`` of 0/1.
      y: ``int32 [N]`` labels, 0-indexed, in ``[0, num_classes)``.
      num_classes: number of classes.
      name: dataset name (e.g. ``"purchase100"``).
      image_shape: ``(H, W, C)`` for images, ``None`` for tabular data.
      binary_features: ``True`` for 0/1 tabular features (no normalization).
      mean: per-channel mean of ``x / 255`` (images; length ``C``), ``None`` for tabular data.
      std: per-channel standard deviation of ``x / 255`` (images), ``None`` for tabular data.

    Example:
      >>> ds = Dataset(np.zeros((2, 3), np.uint8), np.array([0, 1], np.int32), 2, "toy",
      ...              None, True, None, None)
      >>> ds.flat().shape
      (2, 3)
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    name: str
    image_shape: tuple[int, ...] | None
    binary_features: bool
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x), np.asarray(self.y)
        if x.dtype != np.uint8:
            raise ValueError(f"x must have dtype uint8 (raw pixels or 0/1 features), got {x.dtype}")
        validation.check_rank_at_least("x", x, 2)
        validation.check_ndim("y", y, 1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
        num_classes = validation.check_num_classes(self.num_classes)
        validation.check_labels(y, num_classes, name="y")
        if self.image_shape is not None:
            shape = validation.as_shape("image_shape", self.image_shape, allow_empty=False)
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"x must have shape [N, *image_shape]={shape}, got {x.shape}")
            for stat in ("mean", "std"):
                value = getattr(self, stat)
                if value is None or np.shape(value) != (shape[-1],):
                    raise ValueError(f"{stat} must have one value per channel ({shape[-1]}), got {value!r}")
            validation.check_positive("std", np.asarray(self.std))
            object.__setattr__(self, "image_shape", shape)
            object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
            object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        elif not self.binary_features:
            raise ValueError("image_shape is required unless binary_features=True")
        if self.binary_features and x.size and x.max() > 1:
            raise ValueError(f"binary_features=True requires x in {{0, 1}}, found {int(x.max())}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y.astype(np.int32, copy=False))
        object.__setattr__(self, "num_classes", num_classes)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        """Number of input features per example (``H * W * C`` for images)."""
        return math.prod(self.x.shape[1:])

    def normalized(self, dtype: Any = np.float32) -> np.ndarray:
        """Model inputs in their natural shape.

        Images: ``(x / 255 - mean) / std`` per channel, ``[N, H, W, C]``. Binary tabular data: the
        0/1 features as float, ``[N, d]``.

        Returns:
          float array (``dtype``) with the shape of ``x``.
        """
        if self.binary_features:
            return self.x.astype(dtype)
        scaled = self.x.astype(dtype) / np.asarray(255.0, dtype)
        return (scaled - np.asarray(self.mean, dtype)) / np.asarray(self.std, dtype)

    def flat(self, dtype: Any = np.float32) -> np.ndarray:
        """``normalized()`` reshaped to ``[N, num_features]`` (input of an MLP)."""
        return self.normalized(dtype).reshape(len(self), self.num_features)

    def random_inputs(self, key: jax.Array, num_samples: int, *, flat: bool = False) -> jax.Array:
        """HAMP random inputs shaped like this dataset's model inputs.

        Images: uniform integer pixels in ``[0, 255]`` normalized with this dataset's mean/std
        (``random_image_inputs``); binary tabular data: independent fair 0/1 features
        (``random_binary_inputs``).

        Args:
          key: PRNG key.
          num_samples: number of inputs, ``>= 1``.
          flat: return ``[num_samples, num_features]`` instead of ``[num_samples, *input_shape]``.

        Returns:
          float32 array of random inputs.

        Raises:
          ValueError: if ``key`` is not a key or ``num_samples`` is not a positive integer.
        """
        validation.check_key(key)
        flat = validation.check_bool("flat", flat)
        if self.binary_features:
            return random_binary_inputs(key, num_samples, self.num_features)
        out = random_image_inputs(key, num_samples, self.image_shape, mean=self.mean, std=self.std)
        return out.reshape(out.shape[0], self.num_features) if flat else out
