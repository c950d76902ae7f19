"""HAMP's random inputs: data-domain samples whose model outputs replace the real ones.

HAMP's test-time output modification (:mod:`hampjax.defenses.output_modification`) releases, for
each query, the values of the model's output on a *random input* drawn from the data's domain:
independent fair bits for binary tabular data, uniform integer pixels (normalized like real
inputs) for images. They live in the data layer because they describe the data's domain; the
defenses re-export them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation

__all__ = ["random_binary_inputs", "random_image_inputs"]


def random_binary_inputs(
    key: jax.Array, num_samples: int, num_features: int, *, dtype: Any = jnp.float32
) -> jax.Array:
    """HAMP random inputs for binary tabular data (Purchase, Texas, Location).

    Every feature is 0 or 1 with probability 1/2, independently.

    Args:
      key: PRNG key.
      num_samples: number of inputs, ``>= 1``.
      num_features: input dimension ``d`` (600 Purchase, 6169 Texas, 446 Location), ``>= 1``.
      dtype: dtype of the result.

    Returns:
      ``[num_samples, num_features]`` array of 0/1 values with dtype ``dtype``.

    Raises:
      ValueError: if ``num_samples`` or ``num_features`` is not a positive integer.

    Example:
      >>> import jax
      >>> random_binary_inputs(jax.random.key(0), 4, 600).shape
      (4, 600)
    """
    num_samples = validation.check_positive_int("num_samples", num_samples)
    num_features = validation.check_positive_int("num_features", num_features)
    return jax.random.bernoulli(key, 0.5, (num_samples, num_features)).astype(dtype)


def random_image_inputs(
    key: jax.Array,
    num_samples: int,
    image_shape: Sequence[int],
    *,
    mean: Any,
    std: Any,
    max_pixel: int = 255,
    dtype: Any = jnp.float32,
) -> jax.Array:
    """HAMP random inputs for images: uniform integer pixels, normalized like real inputs.

    Each pixel value is an integer drawn uniformly from ``[0, max_pixel]`` (inclusive),
    scaled by ``1/255`` and normalized per channel with ``(x - mean) / std``.
    ``max_pixel=255`` is the paper's description (the full pixel range);
    ``max_pixel=254`` reproduces the authors' code, which draws 0..254 by an off-by-one.

    Args:
      key: PRNG key.
      num_samples: number of images, ``>= 1``.
      image_shape: ``(H, W, C)``, channels last (any shape whose last entry is the channel
        count works).
      mean: per-channel mean of real inputs after scaling to ``[0, 1]``; scalar or ``[C]``.
      std: per-channel standard deviation; scalar or ``[C]``; every entry ``> 0``.
      max_pixel: largest pixel value drawn, an integer in ``[1, 255]``.
      dtype: float dtype of the result.

    Returns:
      ``[num_samples, *image_shape]`` normalized images.

    Raises:
      ValueError: if a size is not a positive integer, ``max_pixel`` is outside ``[1, 255]``,
        ``mean``/``std`` are neither scalars nor ``[C]``, ``mean`` is not finite or ``std`` is
        not positive.

    Example:
      >>> import jax
      >>> x = random_image_inputs(jax.random.key(0), 2, (32, 32, 3),
      ...                         mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26))
      >>> x.shape
      (2, 32, 32, 3)
    """
    num_samples = validation.check_positive_int("num_samples", num_samples)
    image_shape = validation.as_shape("image_shape", image_shape, allow_empty=False)
    max_pixel = validation.check_int_in_range("max_pixel", max_pixel, 1, 255)
    channels = image_shape[-1]
    mean_arr = np.asarray(mean, dtype=np.float64)
    std_arr = np.asarray(std, dtype=np.float64)
    for name, arr in (("mean", mean_arr), ("std", std_arr)):
        if arr.shape not in ((), (channels,)):
            raise ValueError(
                f"{name} must be a scalar or have shape ({channels},) (one value per channel), "
                f"got shape {arr.shape}"
            )
    validation.check_finite("mean", mean_arr)
    validation.check_positive("std", std_arr)
    pixels = jax.random.randint(key, (num_samples, *image_shape), 0, max_pixel + 1)
    scaled = pixels.astype(dtype) / jnp.asarray(255.0, dtype)
    return (scaled - jnp.asarray(mean_arr, dtype)) / jnp.asarray(std_arr, dtype)
