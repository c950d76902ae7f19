"""GAN generators and discriminators for DMP's synthetic reference sets (Flax).

* :class:`DCGenerator` / :class:`DCDiscriminator`: the DC-GAN of Radford et al. 2016 as the
  HAMP authors' DMP code uses it for CIFAR: noise ``nz`` (100) -> 4x4 with ``8 ngf``
  channels -> transposed convolutions (kernel 4, stride 2) halving the channels and doubling
  the side up to ``image_size`` (64) -> Tanh output in [-1, 1]; BatchNorm + ReLU in the
  generator, LeakyReLU(0.2) (BatchNorm from the second layer) in the discriminator, one logit
  out. Weights ``N(0, 0.02)``, BatchNorm scales ``N(1, 0.02)`` (the DC-GAN initialization).
* :class:`TabularGenerator` / :class:`TabularDiscriminator`: a small GAN for the binary
  tabular datasets (Texas100, Location30), standing in for CTGAN (which has no JAX port): an
  MLP generator with BatchNorm + ReLU and sigmoid outputs in [0, 1] (every column treated as
  continuous, as the authors ran CTGAN), an MLP discriminator with LeakyReLU(0.2) and no
  BatchNorm. CTGAN's mode-specific normalization, conditional vectors, PacGAN and WGAN-GP loss
  are not reproduced: with all columns continuous in [0, 1] they reduce to an ordinary GAN.

Every module has ``__call__(x, *, train)``; generators map ``[B, noise_dim]`` noise to
``[B, S, S, C]`` images / ``[B, d]`` rows, discriminators return logits ``[B]``. In train mode
BatchNorm uses the batch's statistics (``mutable=["batch_stats"]``), in eval mode the running
ones. The GAN trainer is :mod:`hampjax.training.gan`.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from hampjax import validation
from hampjax.models import layers

__all__ = ["DCGenerator", "DCDiscriminator", "TabularGenerator", "TabularDiscriminator",
           "dcgan_init", "LEAKY_SLOPE"]

LEAKY_SLOPE = 0.2
dcgan_init = nn.initializers.normal(0.02)
"""Weights ``N(0, 0.02)`` (DC-GAN)."""


def _bn_scale_init(key, shape, dtype=jnp.float32):
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def _bn(train: bool, name: str) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=layers.BN_MOMENTUM,
                        epsilon=layers.BN_EPSILON, scale_init=_bn_scale_init, name=name)


def _doublings(image_size: int) -> int:
    validation.check_positive_int("image_size", image_size, minimum=8)
    n = int(math.log2(image_size))
    if 2 ** n != image_size:
        raise ValueError(f"image_size must be a power of 2 >= 8, got {image_size}")
    return n - 2


class DCGenerator(nn.Module):
    """DC-GAN generator: noise ``[B, nz]`` -> images ``[B, S, S, channels]`` in [-1, 1].

    Attributes:
      channels: image channels (3 for CIFAR).
      image_size: side ``S``, a power of 2 >= 8 (DMP: 64).
      filters: ``ngf``: channels of the last hidden layer (64); the 4x4 layer has
        ``ngf * S / 8``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> g = DCGenerator(channels=3, image_size=8, filters=4)
      >>> v = g.init(jax.random.key(0), jnp.zeros((2, 5)), train=False)
      >>> g.apply(v, jnp.ones((2, 5)), train=False).shape
      (2, 8, 8, 3)
    """

    channels: int
    image_size: int = 64
    filters: int = 64

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
        validation.check_ndim("z", z, 2)
        n = _doublings(self.image_size)
        width = self.filters * 2 ** (n - 1)
        x = nn.Dense(4 * 4 * width, use_bias=False, kernel_init=dcgan_init, name="project")(z)
        x = nn.relu(_bn(train, "bn0")(x.reshape(z.shape[0], 4, 4, width)))
        for i in range(1, n):
            width //= 2
            x = nn.ConvTranspose(width, (4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                                 kernel_init=dcgan_init, name=f"up{i}")(x)
            x = nn.relu(_bn(train, f"bn{i}")(x))
        x = nn.ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding="SAME",
                             use_bias=False, kernel_init=dcgan_init, name="out")(x)
        return jnp.tanh(x)


class DCDiscriminator(nn.Module):
    """DC-GAN discriminator: images ``[B, S, S, C]`` in [-1, 1] -> logits ``[B]``.

    Attributes:
      image_size: side ``S`` (as the generator's).
      filters: ``ndf``: channels of the first layer (64), doubled per halving down to 4x4.
    """

    image_size: int = 64
    filters: int = 64

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        layers.check_image_batch(x)
        n = _doublings(self.image_size)
        if x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f"x must be {self.image_size}x{self.image_size} images, got shape "
                             f"{x.shape}")
        width = self.filters
        for i in range(n):
            x = nn.Conv(width, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                        use_bias=False, kernel_init=dcgan_init, name=f"down{i}")(x)
            if i:
                x = _bn(train, f"bn{i}")(x)
            x = nn.leaky_relu(x, LEAKY_SLOPE)
            width *= 2
        # The last 4x4 "VALID" convolution to one channel, written as the equal dense layer on
        # the flattened 4x4 map (vmapped over models, a one-channel convolution's gradient
        # becomes a grouped convolution XLA rejects).
        x = nn.Dense(1, use_bias=False, kernel_init=dcgan_init, name="out")(
            x.reshape(x.shape[0], -1))
        return x.reshape(x.shape[0])


class TabularGenerator(nn.Module):
    """MLP generator: noise ``[B, nz]`` -> rows ``[B, features]`` in [0, 1] (sigmoid).

    Attributes:
      features: columns ``d``.
      hidden: hidden widths (Dense + BatchNorm + ReLU each).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> g = TabularGenerator(features=6, hidden=(8,))
      >>> v = g.init(jax.random.key(0), jnp.zeros((3, 4)), train=False)
      >>> out = g.apply(v, jnp.ones((3, 4)), train=False)
      >>> out.shape, bool(((out > 0) & (out < 1)).all())
      ((3, 6), True)
    """

    features: int
    hidden: tuple[int, ...] = (256, 256)

    @nn.compact
    def __call__(self, z: jax.Array, *, train: bool) -> jax.Array:
        validation.check_ndim("z", z, 2)
        x = z
        for i, width in enumerate(self.hidden):
            # No bias: BatchNorm's shift replaces it (a bias there has a zero gradient, which
            # Adam would turn into steps of float noise).
            x = nn.Dense(width, use_bias=False, kernel_init=layers.dense_kernel_init,
                         name=f"hidden{i}")(x)
            x = nn.relu(_bn(train, f"bn{i}")(x))
        x = nn.Dense(self.features, kernel_init=layers.dense_kernel_init, name="out")(x)
        return jax.nn.sigmoid(x)


class TabularDiscriminator(nn.Module):
    """MLP discriminator: rows ``[B, d]`` -> logits ``[B]`` (LeakyReLU(0.2), no BatchNorm).

    Attributes:
      hidden: hidden widths.
    """

    hidden: tuple[int, ...] = (256, 256)

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # no BatchNorm or dropout
        validation.check_ndim("x", x, 2)
        for i, width in enumerate(self.hidden):
            x = nn.leaky_relu(nn.Dense(width, kernel_init=layers.dense_kernel_init,
                                       name=f"hidden{i}")(x), LEAKY_SLOPE)
        return nn.Dense(1, kernel_init=layers.dense_kernel_init, name="out")(x).reshape(
            x.shape[0])
