"""A 2-D convolution whose gradients XLA compiles the same way inside and outside loops.

:func:`conv_general_dilated` is a drop-in for ``lax.conv_general_dilated`` (the
``conv_general_dilated`` attribute of ``flax.linen.Conv``) for the zoo's NHWC/HWIO
convolutions. Its forward pass is ``lax.conv_general_dilated`` itself; its backward pass is
written out with a ``jax.custom_vjp``:

* the input gradient is a forward convolution of the stride-dilated output gradient with the
  flipped, input/output-swapped kernel (plain NHWC/HWIO dimension numbers);
* the kernel gradient is one matrix product per kernel offset, contracting the batch and
  spatial axes of the shifted input with the output gradient.

Why not JAX's own transpose rule: it emits convolutions with transposed dimension labels
(e.g. ``f01b_i01o->01bf`` for the kernel gradient) or input dilation, which XLA:CPU rewrites into
a fast canonical form only outside while loops. Inside a ``lax.scan`` the same step then runs a
different, ~30x slower convolution and rounds differently, so a model trained by a scanned epoch
and by host-driven steps would differ in the last bits. Written with forward convolutions and
dots only, the backward pass compiles to the same kernels in every context: training is
bit-identical across the engine's loop strategies, and scanned epochs run at full speed on CPU.
The forward pass and the input gradient at stride 1 are exactly JAX's; the kernel gradient
differs from JAX's only by float32 summation order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["conv_general_dilated", "conv2d"]

_NHWC = ("NHWC", "HWIO", "NHWC")
Pads = tuple[tuple[int, int], tuple[int, int]]


def _conv(x, w, strides, pads, groups, precision=None):
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC,
                                    feature_group_count=groups, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: Pads,
           groups: int) -> jax.Array:
    """NHWC input ``x``, HWIO kernel ``w``, explicit ``pads`` ``((lo, hi), (lo, hi))``.

    Args:
      x: ``[N, H, W, C_in]``.
      w: ``[kh, kw, C_in / groups, C_out]``.
      strides: ``(sh, sw)``.
      pads: low/high zero padding of the two spatial axes.
      groups: ``feature_group_count`` (``C_in`` for a depthwise convolution).

    Returns:
      ``[N, H_out, W_out, C_out]``, equal to ``lax.conv_general_dilated``.
    """
    return _conv(x, w, strides, pads, groups)


def _conv2d_fwd(x, w, strides, pads, groups):
    return _conv(x, w, strides, pads, groups), (x, w)


def _conv2d_bwd(strides, pads, groups, residuals, g):
    x, w = residuals
    n, h, wd, ci = x.shape
    kh, kw, cig, co = w.shape
    _, ho, wo, _ = g.shape
    sh, sw = strides
    (plh, phh), (plw, phw) = pads
    zero = jnp.zeros((), g.dtype)
    # Input gradient. Output row i reads padded input rows i*s .. i*s + k - 1, so the padded
    # input gradient is the correlation of the stride-dilated g with the flipped kernel.
    gd = lax.pad(g, zero, ((0, 0, 0), (0, 0, sh - 1), (0, 0, sw - 1), (0, 0, 0)))
    cog = co // groups
    wt = jnp.flip(w, (0, 1)).reshape(kh, kw, cig, groups, cog)
    wt = jnp.transpose(wt, (0, 1, 4, 3, 2)).reshape(kh, kw, cog, groups * cig)
    hp, wp = h + plh + phh, wd + plw + phw
    full = _conv(gd, wt, (1, 1), ((kh - 1, hp - gd.shape[1]), (kw - 1, wp - gd.shape[2])),
                 groups)
    dx = full[:, plh:plh + h, plw:plw + wd, :]
    # Kernel gradient: one product per kernel offset over the N * H_out * W_out positions.
    xp = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (plh, phh, 0), (plw, phw, 0), (0, 0, 0)))
    gg = g.reshape(n * ho * wo, groups, cog)
    offsets = []
    for a in range(kh):
        for b in range(kw):
            xs = lax.slice(xp, (0, a, b, 0), (n, a + (ho - 1) * sh + 1, b + (wo - 1) * sw + 1, ci),
                           (1, sh, sw, 1)).reshape(n * ho * wo, groups, cig)
            if cig == 1 and cog == 1:  # Depthwise: a product and a sum per channel.
                d = jnp.sum(xs[:, :, 0] * gg[:, :, 0], axis=0)[None, :]
            else:
                d = jnp.einsum("mgi,mgo->igo", xs, gg).reshape(cig, co)
            offsets.append(d)
    dw = jnp.stack(offsets).reshape(kh, kw, cig, co).astype(w.dtype)
    return dx.astype(x.dtype), dw


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def _spec(dimension_numbers: Any) -> bool:
    """Whether ``dimension_numbers`` is NHWC/HWIO/NHWC (as a tuple of strings or the
    ``ConvDimensionNumbers`` flax passes)."""
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, tuple) and all(isinstance(d, str) for d in dimension_numbers):
        return tuple(dimension_numbers) == _NHWC
    want = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC)
    return tuple(dimension_numbers) == tuple(want)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: str | Sequence[tuple[int, int]], lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision=None,
                         preferred_element_type=None) -> jax.Array:
    """``lax.conv_general_dilated`` for 2-D NHWC/HWIO convolutions, with :func:`conv2d`'s
    loop-independent gradients (see the module docstring).

    Only what the zoo uses is accepted: two spatial dimensions, NHWC/HWIO/NHWC dimension
    numbers, no dilation, ``batch_group_count=1``, default precision.

    Raises:
      ValueError: for any other use, naming the argument.
    """
    if lhs.ndim != 4:
        raise ValueError(f"lhs must be a rank-4 NHWC batch, got shape {lhs.shape}")
    if not _spec(dimension_numbers):
        raise ValueError(f"dimension_numbers must be NHWC/HWIO/NHWC, got {dimension_numbers!r}")
    for name, value in (("lhs_dilation", lhs_dilation), ("rhs_dilation", rhs_dilation)):
        if value is not None and tuple(value) != (1, 1):
            raise ValueError(f"{name} must be None or (1, 1), got {value!r}")
    if batch_group_count != 1:
        raise ValueError(f"batch_group_count must be 1, got {batch_group_count}")
    if precision is not None or preferred_element_type is not None:
        raise ValueError("precision and preferred_element_type must be None")
    strides = tuple(int(s) for s in window_strides)
    if isinstance(padding, str):
        pads = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
    else:
        pads = padding
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    return conv2d(lhs, rhs, strides, pads, int(feature_group_count))
