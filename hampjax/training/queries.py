"""Test-time query augmentations for multi-query membership inference (LiRA, RMIA).

An attack scores each example on several *queries*: deterministic augmentations of the input
that the model saw (or might have seen) during training. The LiRA reference uses 2 queries
(the image and its horizontal mirror); the RMIA research code uses 18 (mirror in {no, yes}
times the 3x3 grid of +/-1 pixel shifts with reflect padding); tabular data has 1 (the input
itself). These are the query sets of LiRA (Carlini et al. 2022) and RMIA.

Images are NHWC batches ``x [N, H, W, C]``. Every function here is pure JAX and works under
``jit`` and ``vmap``:

* :func:`identity`, :func:`mirror` (reverse the W axis) and :func:`shift` (reflect-pad, then
  crop: the content moves ``dy`` pixels down and ``dx`` pixels right);
* :class:`Query` - one augmentation as data (``mirrored``, ``dy``, ``dx``), hashable;
* :class:`QuerySet` - an ordered, hashable tuple of queries with the named constructors
  :meth:`QuerySet.none` (1 query), :meth:`QuerySet.mirror` (2) and
  :meth:`QuerySet.mirror_shifts` (18), and :meth:`QuerySet.apply` ``x [N, ...] ->
  [Q, N, ...]``. Query 0 is always the identity in the named sets, and the first two queries
  of the 18-query set are the 2-query set.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation

__all__ = ["identity", "mirror", "shift", "Query", "QuerySet"]

_H_AXIS, _W_AXIS = 1, 2


def _check_image(name: str, x: Any) -> tuple[int, ...]:
    shape = validation.shape_of(x)
    if len(shape) != 4:
        raise ValueError(
            f"{name} must be 4-D [N, H, W, C] (NHWC images) for image queries (mirror, shift), "
            f"got shape {shape}; tabular data supports only QuerySet.none()"
        )
    return shape


def _check_shift_amount(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer number of pixels, got {value!r}")
    return int(value)


def identity(x: jax.Array) -> jax.Array:
    """The unchanged input (the query every set starts with).

    Args:
      x: any array.

    Returns:
      ``x`` as a JAX array.

    Example:
      >>> import jax.numpy as jnp
      >>> identity(jnp.arange(3)).tolist()
      [0, 1, 2]
    """
    return jnp.asarray(x)


def mirror(x: jax.Array) -> jax.Array:
    """Horizontal flip of NHWC images: reverse the width axis.

    Args:
      x: images ``[N, H, W, C]``, any dtype.

    Returns:
      ``x[:, :, ::-1, :]``, same shape and dtype.

    Raises:
      ValueError: if ``x`` is not 4-D.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(3).reshape(1, 1, 3, 1)
      >>> mirror(x).ravel().tolist()
      [2, 1, 0]
    """
    _check_image("x", x)
    return jnp.flip(jnp.asarray(x), axis=_W_AXIS)


def shift(x: jax.Array, dy: int, dx: int) -> jax.Array:
    """Translate NHWC images by whole pixels with reflect padding (no new values appear).

    The image is padded by ``|dy|`` rows and ``|dx|`` columns on each side with
    ``mode="reflect"`` (mirror about the edge pixel, which is not repeated, as NumPy's
    ``np.pad(..., mode="reflect")``), then cropped back to ``H x W`` so that the content moves
    ``dy`` pixels down and ``dx`` pixels right:
    ``out[:, i, j] = x_reflected[:, i - dy, j - dx]``. ``shift(x, 0, 0)`` is ``x``.

    Args:
      x: images ``[N, H, W, C]``, any dtype.
      dy: rows to move down (negative: up), a static integer with ``|dy| <= H - 1``.
      dx: columns to move right (negative: left), a static integer with ``|dx| <= W - 1``.

    Returns:
      Shifted images, same shape and dtype as ``x``.

    Raises:
      ValueError: if ``x`` is not 4-D, or ``dy`` / ``dx`` is not an integer or too large for
        reflect padding.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(4).reshape(1, 1, 4, 1)
      >>> shift(x, 0, 1).ravel().tolist()  # content moves right; column 0 reflects column 1
      [1, 0, 1, 2]
      >>> shift(x, 0, -1).ravel().tolist()
      [1, 2, 3, 2]
    """
    _, height, width, _ = _check_image("x", x)
    dy = _check_shift_amount("dy", dy)
    dx = _check_shift_amount("dx", dx)
    if abs(dy) > height - 1:
        raise ValueError(
            f"dy must be in [-{height - 1}, {height - 1}] for images of height {height} "
            f"(reflect padding), got {dy}"
        )
    if abs(dx) > width - 1:
        raise ValueError(
            f"dx must be in [-{width - 1}, {width - 1}] for images of width {width} "
            f"(reflect padding), got {dx}"
        )
    x = jnp.asarray(x)
    if dy == 0 and dx == 0:
        return x
    py, px = abs(dy), abs(dx)
    padded = jnp.pad(x, ((0, 0), (py, py), (px, px), (0, 0)), mode="reflect")
    # out[i] = x_reflected[i - dy] = padded[i - dy + py].
    start = (0, py - dy, px - dx, 0)
    limit = (x.shape[0], py - dy + height, px - dx + width, x.shape[3])
    return jax.lax.slice(padded, start, limit)


@dataclasses.dataclass(frozen=True)
class Query:
    """One test-time augmentation: an optional mirror, then a pixel shift.

    ``Query(mirrored, dy, dx)(x) = shift(mirror(x) if mirrored else x, dy, dx)``.
    ``Query()`` is the identity and accepts inputs of any rank; every other query needs NHWC
    images. Instances are immutable and hashable (usable as static ``jit`` arguments).

    Attributes:
      mirrored: flip the width axis first.
      dy: rows to shift down (see :func:`shift`).
      dx: columns to shift right.

    Raises:
      ValueError: if ``mirrored`` is not a bool or ``dy`` / ``dx`` not integers.

    Example:
      >>> Query(mirrored=True, dy=-1, dx=1).name
      'mirror+shift(-1,+1)'
      >>> Query().is_identity
      True
    """

    mirrored: bool = False
    dy: int = 0
    dx: int = 0

    def __post_init__(self):
        if not isinstance(self.mirrored, bool):
            raise ValueError(f"mirrored must be a bool, got {self.mirrored!r}")
        object.__setattr__(self, "dy", _check_shift_amount("dy", self.dy))
        object.__setattr__(self, "dx", _check_shift_amount("dx", self.dx))

    @property
    def is_identity(self) -> bool:
        """True when the query leaves its input unchanged."""
        return not self.mirrored and self.dy == 0 and self.dx == 0

    @property
    def name(self) -> str:
        """Readable name: "identity", "mirror", "shift(-1,+1)", "mirror+shift(+1,+0)"."""
        if self.is_identity:
            return "identity"
        parts = ["mirror"] if self.mirrored else []
        if self.dy or self.dx:
            parts.append(f"shift({self.dy:+d},{self.dx:+d})")
        return "+".join(parts)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the query to ``x`` (``[N, H, W, C]``; any shape for the identity)."""
        if self.is_identity:
            return identity(x)
        _check_image("x", x)
        if self.mirrored:
            x = mirror(x)
        return shift(x, self.dy, self.dx)


def _shift_grid() -> list[tuple[int, int]]:
    grid = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    return [(0, 0)] + grid


@dataclasses.dataclass(frozen=True)
class QuerySet:
    """An ordered, non-empty tuple of :class:`Query` applied together to a batch.

    Build one with :meth:`none` (tabular data, or no augmentation), :meth:`mirror` (the LiRA
    reference's 2 queries) or :meth:`mirror_shifts` (the RMIA research code's 18), or directly
    from queries: ``QuerySet((Query(), Query(dy=1)))``. Hashable, so it can be a static
    ``jit`` argument.

    Attributes:
      queries: the queries, in order; query ``q`` gives slice ``q`` of :meth:`apply`.

    Raises:
      ValueError: if ``queries`` is empty or holds something other than :class:`Query`.

    Example:
      >>> import jax.numpy as jnp
      >>> qs = QuerySet.mirror()
      >>> qs.size, qs.names
      (2, ('identity', 'mirror'))
      >>> qs.apply(jnp.zeros((5, 8, 8, 3))).shape
      (2, 5, 8, 8, 3)
      >>> QuerySet.mirror_shifts().size
      18
      >>> QuerySet.mirror().apply(jnp.zeros((5, 3)))
      Traceback (most recent call last):
      ...
      ValueError: x must be 4-D [N, H, W, C] (NHWC images) for image queries ...
    """

    queries: tuple[Query, ...]

    def __post_init__(self):
        queries = tuple(self.queries) if isinstance(self.queries, (list, tuple)) else None
        if not queries:
            raise ValueError(f"queries must be a non-empty tuple of Query, got {self.queries!r}")
        for q in queries:
            if not isinstance(q, Query):
                raise ValueError(f"queries must hold only Query instances, got {q!r}")
        object.__setattr__(self, "queries", queries)

    @classmethod
    def none(cls) -> QuerySet:
        """One identity query (the only choice for tabular ``[N, D]`` data)."""
        return cls((Query(),))

    @classmethod
    def mirror(cls) -> QuerySet:
        """Identity and horizontal mirror (2 queries; the LiRA reference)."""
        return cls((Query(), Query(mirrored=True)))

    @classmethod
    def mirror_shifts(cls) -> QuerySet:
        """Mirror in {no, yes} times the 3x3 grid of +/-1 pixel shifts (18 queries).

        Order: shift (0, 0) first, then the other 8 shifts row-major over
        ``dy, dx in (-1, 0, 1)``; for each shift the plain query comes before the mirrored
        one. Hence query 0 is the identity, query 1 the mirror, and the first two queries
        equal :meth:`mirror`.
        """
        return cls(
            tuple(
                Query(mirrored=m, dy=dy, dx=dx) for dy, dx in _shift_grid() for m in (False, True)
            )
        )

    @property
    def size(self) -> int:
        """Number of queries Q."""
        return len(self.queries)

    @property
    def names(self) -> tuple[str, ...]:
        """Query names, in order (see :attr:`Query.name`)."""
        return tuple(q.name for q in self.queries)

    @property
    def needs_images(self) -> bool:
        """True if any query is not the identity (inputs must then be NHWC images)."""
        return any(not q.is_identity for q in self.queries)

    def check_input(self, x: Any, *, name: str = "x") -> None:
        """Raise ValueError (naming ``name``) unless ``x`` suits every query.

        Inputs need at least one axis (the examples); image queries need 4-D NHWC input with
        each shift smaller than the image side.
        """
        shape = validation.shape_of(x)
        if not shape:
            raise ValueError(f"{name} must have a leading example axis, got shape {shape}")
        if not self.needs_images:
            return
        _, height, width, _ = _check_image(name, x)
        for q in self.queries:
            if abs(q.dy) > height - 1 or abs(q.dx) > width - 1:
                raise ValueError(
                    f"{name} images of size {height}x{width} are too small for query {q.name} "
                    "(reflect padding needs |dy| <= H - 1 and |dx| <= W - 1)"
                )

    def apply(self, x: jax.Array) -> jax.Array:
        """All queries of a batch, stacked on a new leading axis.

        Args:
          x: ``[N, ...]``; ``[N, H, W, C]`` images unless every query is the identity.

        Returns:
          ``[Q, N, ...]`` with slice ``q`` equal to ``queries[q](x)``; dtype of ``x``.

        Raises:
          ValueError: if ``x`` does not suit the queries (see :meth:`check_input`).
        """
        self.check_input(x)
        return jnp.stack([q(x) for q in self.queries])
