"""Synthetic non-member sets for the Trust experiments (Hintersdorf et al. 2022, Sec. 4.2).

- ``permute_pixels``: one random permutation of pixel positions per image, shared across the
  channels, applied to normalized images (destroys the content, keeps the pixel statistics).
- ``scale_inputs``: normalized images multiplied by a factor (``255`` in the paper).
- ``uniform_noise_images``: pixels uniform in ``[0, 1]``, normalized like real images.

All are pure JAX, take an explicit key where random, and work under ``jit`` and ``vmap``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation

__all__ = ["permute_pixels", "scale_inputs", "uniform_noise_images"]


@jax.jit
def _permute(key: jax.Array, images: jax.Array) -> jax.Array:
    n, c = images.shape[0], images.shape[-1]
    pixels = images.reshape(n, -1, c)
    perms = jax.vmap(lambda k: jax.random.permutation(k, pixels.shape[1]))(jax.random.split(key, n))
    permuted = jnp.take_along_axis(pixels, perms[:, :, None], axis=1)
    return permuted.reshape(images.shape)


def permute_pixels(key: jax.Array, images: jax.Array) -> jax.Array:
    """Shuffle each image's pixel positions with its own permutation, shared across channels.

    Args:
      key: PRNG key.
      images: ``[N, H, W, C]`` (any ``[N, *spatial, C]`` with rank >= 3), usually normalized.

    Returns:
      array like ``images``: ``out[i].reshape(-1, C) == images[i].reshape(-1, C)[perm_i]``.

    Raises:
      ValueError: if ``key`` is not a key or ``images`` has rank < 3 or no examples.

    Example:
      >>> import jax
      >>> permute_pixels(jax.random.key(0), jnp.zeros((2, 4, 4, 3))).shape
      (2, 4, 4, 3)
    """
    validation.check_key(key)
    validation.check_rank_at_least("images", images, 3)
    validation.check_nonempty("images", images)
    return _permute(key, jnp.asarray(images))


def scale_inputs(images: jax.Array, delta: Any) -> jax.Array:
    """Multiply inputs by ``delta`` (the paper's "Scaled" set uses ``delta = 255``).

    Args:
      images: any array of normalized inputs.
      delta: scalar factor, ``> 0`` and finite (may be traced).

    Returns:
      ``images * delta`` with the dtype of ``images``.

    Raises:
      ValueError: if ``delta`` is not a positive finite scalar.

    Example:
      >>> scale_inputs(jnp.ones((1, 2)), 255.0)
      Array([[255., 255.]], dtype=float32)
    """
    validation.check_scalar("delta", delta, allowed="(0, inf)")
    validation.check_positive("delta", delta)
    images = jnp.asarray(images)
    return images * jnp.asarray(delta, images.dtype)


def uniform_noise_images(
    key: jax.Array,
    num_samples: int,
    image_shape: Sequence[int],
    *,
    mean: Any,
    std: Any,
    dtype: Any = jnp.float32,
) -> jax.Array:
    """Images with i.i.d. pixels uniform in ``[0, 1)``, normalized per channel.

    Args:
      key: PRNG key.
      num_samples: number of images, ``>= 1``.
      image_shape: ``(H, W, C)``, channels last.
      mean: per-channel mean of real inputs scaled to ``[0, 1]``; scalar or ``[C]``.
      std: per-channel standard deviation; scalar or ``[C]``, every entry ``> 0``.
      dtype: float dtype of the result.

    Returns:
      ``[num_samples, *image_shape]`` array ``(u - mean) / std``.

    Raises:
      ValueError: bad key, sizes, or ``mean``/``std`` of the wrong shape, non-finite or ``std <= 0``.

    Example:
      >>> import jax
      >>> uniform_noise_images(jax.random.key(0), 3, (8, 8, 1), mean=0.5, std=0.25).shape
      (3, 8, 8, 1)
    """
    validation.check_key(key)
    num_samples = validation.check_positive_int("num_samples", num_samples)
    image_shape = validation.as_shape("image_shape", image_shape, allow_empty=False)
    channels = image_shape[-1]
    mean_arr, std_arr = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    for name, arr in (("mean", mean_arr), ("std", std_arr)):
        if arr.shape not in ((), (channels,)):
            raise ValueError(f"{name} must be a scalar or have shape ({channels},), got shape {arr.shape}")
    validation.check_in_range("mean", mean_arr, -np.inf, np.inf, low_inclusive=False)
    validation.check_positive("std", std_arr)
    noise = jax.random.uniform(key, (num_samples, *image_shape), dtype=dtype)
    return (noise - jnp.asarray(mean_arr, dtype)) / jnp.asarray(std_arr, dtype)
