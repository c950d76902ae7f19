"""Argument validation shared by every public hampjax function.

All user-facing checks live here so that error messages have one shape:

    ValueError: entropy_threshold must be in [0, 1), got 1.0

Each message names the argument and the allowed range. Checks run eagerly, in Python,
before anything is traced. Values that are JAX tracers (because the caller wrapped a
hampjax function in ``jit`` or ``vmap``) cannot be inspected without a device sync, so
value checks skip them; shape and dtype checks still run because shapes are static.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Sequence
from typing import Any

import jax
import numpy as np

__all__ = [
    "is_concrete",
    "check_choice",
    "check_in_range",
    "check_nonnegative",
    "check_positive",
    "check_positive_int",
    "check_num_classes",
    "check_labels",
    "check_last_dim",
    "check_same_shape",
    "check_rank_at_least",
    "check_ndim",
    "check_nonempty",
    "check_binary_labels",
    "check_finite",
    "check_logits_labels",
    "check_mask",
    "check_shape",
    "check_scalar",
    "check_epoch",
    "check_key",
    "shape_of",
    "check_floating",
    "check_bool",
    "check_int_in_range",
    "as_shape",
    "dtype_of",
]


def is_concrete(x: Any) -> bool:
    """True if ``x`` holds concrete values (not a tracer inside jit/vmap/grad)."""
    leaves = jax.tree_util.tree_leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return repr(value)


def check_choice(name: str, value: Any, allowed: Collection[Any]) -> None:
    """Raise unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")


def check_in_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
) -> None:
    """Raise unless ``low <= value < high`` (bracket types set by the flags).

    Works on scalars and arrays (every element is checked). NaN is always rejected.
    Tracers are skipped.
    """
    if not is_concrete(value):
        return
    arr = np.asarray(value, dtype=np.float64)
    lo_ok = arr >= low if low_inclusive else arr > low
    hi_ok = arr <= high if high_inclusive else arr < high
    ok = lo_ok & hi_ok  # NaN compares False and is rejected.
    if not np.all(ok):
        bad = arr[~ok] if arr.ndim else arr
        first = bad.ravel()[0] if arr.ndim else float(arr)
        interval = (
            ("[" if low_inclusive else "(")
            + f"{low:g}, {high:g}"
            + ("]" if high_inclusive else ")")
        )
        if arr.ndim == 0:
            raise ValueError(f"{name} must be in {interval}, got {_fmt(first)}")
        raise ValueError(
            f"{name} must be in {interval} element-wise; {int((~ok).sum())} element(s) are not, "
            f"e.g. {_fmt(first)}"
        )


def check_nonnegative(name: str, value: Any) -> None:
    """Raise unless ``value >= 0`` and finite."""
    check_in_range(name, value, 0.0, math.inf, low_inclusive=True, high_inclusive=False)


def check_positive(name: str, value: Any) -> None:
    """Raise unless ``value > 0`` and finite."""
    check_in_range(name, value, 0.0, math.inf, low_inclusive=False, high_inclusive=False)


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Raise unless ``value`` is a Python/NumPy integer >= ``minimum``; return it as int."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_num_classes(value: Any, *, name: str = "num_classes") -> int:
    """Raise unless the number of classes is a static integer >= 2."""
    return check_positive_int(name, value, minimum=2)


def check_labels(labels: Any, num_classes: int, *, name: str = "labels") -> None:
    """Raise unless integer labels lie in [0, num_classes).

    The dtype check always runs; the range check runs when ``labels`` is concrete.
    """
    dtype = np.asarray(labels).dtype if is_concrete(labels) else labels.dtype
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"{name} must be integer class indices in [0, {num_classes}), got dtype {dtype}")
    if not is_concrete(labels):
        return
    arr = np.asarray(labels)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        bad = arr[(arr < 0) | (arr >= num_classes)].ravel()[0]
        raise ValueError(f"{name} must be in [0, {num_classes}), got {int(bad)}")


def shape_of(x: Any) -> tuple[int, ...]:
    """Static shape of an array, a tracer or a nested list."""
    return tuple(x.shape) if hasattr(x, "shape") else tuple(np.shape(x))


def dtype_of(x: Any) -> np.dtype:
    """dtype of an array, a tracer or a Python scalar/list."""
    return np.dtype(x.dtype) if hasattr(x, "dtype") else np.asarray(x).dtype


_shape = shape_of


def check_rank_at_least(name: str, x: Any, rank: int) -> None:
    """Raise unless ``x`` has at least ``rank`` dimensions."""
    shape = _shape(x)
    if len(shape) < rank:
        raise ValueError(f"{name} must have at least {rank} dimension(s), got shape {shape}")


def check_ndim(name: str, x: Any, ndim: int) -> None:
    """Raise unless ``x`` has exactly ``ndim`` dimensions."""
    shape = _shape(x)
    if len(shape) != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {shape}")


def check_nonempty(name: str, x: Any) -> None:
    """Raise if ``x`` has no elements along its first axis."""
    shape = _shape(x)
    if not shape or shape[0] == 0:
        raise ValueError(f"{name} must contain at least 1 example, got shape {shape}")


def check_last_dim(name: str, x: Any, size: int, *, what: str = "num_classes") -> None:
    """Raise unless the trailing axis of ``x`` has length ``size``."""
    shape = _shape(x)
    if not shape or shape[-1] != size:
        raise ValueError(f"{name} must have a last axis of size {what}={size}, got shape {shape}")


def check_same_shape(names: Sequence[str], *arrays: Any) -> None:
    """Raise unless all arrays share one shape."""
    shapes = [_shape(a) for a in arrays]
    if any(s != shapes[0] for s in shapes[1:]):
        desc = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{' and '.join(names)} must have the same shape, got {desc}")


def check_binary_labels(labels: Any, *, name: str = "labels") -> None:
    """Raise unless ``labels`` is a 1-D array of 0/1 (or bool) with both classes present."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must contain both members (1) and non-members (0), got an empty array")
    if arr.dtype == bool:
        arr = arr.astype(np.int8)
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must contain only 0 (non-member) and 1 (member)")
    if arr.min() == arr.max():
        raise ValueError(f"{name} must contain both members (1) and non-members (0)")


def check_finite(name: str, x: Any) -> None:
    """Raise if a concrete array contains NaN or +-inf."""
    if not is_concrete(x):
        return
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, found {int((~np.isfinite(arr)).sum())} NaN/inf values")


def check_shape(name: str, x: Any, shape: tuple[int, ...], *, what: str | None = None) -> None:
    """Raise unless ``x`` has exactly ``shape`` (``what`` names where the shape comes from)."""
    if shape_of(x) != tuple(shape):
        expected = f"{what}={tuple(shape)}" if what else f"{tuple(shape)}"
        raise ValueError(f"{name} must have shape {expected}, got {shape_of(x)}")


def check_scalar(name: str, x: Any, *, allowed: str) -> None:
    """Raise unless ``x`` is a scalar; ``allowed`` describes the range for the message."""
    if shape_of(x) != ():
        raise ValueError(f"{name} must be a scalar in {allowed}, got shape {shape_of(x)}")


def check_logits_labels(logits: Any, labels: Any, *, min_rank: int = 1) -> int:
    """Check ``logits [..., C]`` (C >= 2) and integer ``labels`` of shape ``logits.shape[:-1]``
    with values in [0, C); return C."""
    check_rank_at_least("logits", logits, min_rank)
    num_classes = check_num_classes(shape_of(logits)[-1], name="logits.shape[-1]")
    if shape_of(labels) != shape_of(logits)[:-1]:
        raise ValueError(
            f"labels must have shape logits.shape[:-1]={shape_of(logits)[:-1]}, "
            f"got {shape_of(labels)}"
        )
    check_labels(labels, num_classes)
    return num_classes


def check_mask(name: str, mask: Any, shape: tuple[int, ...]) -> None:
    """Raise unless ``mask`` is a boolean array of the given shape."""
    what = f"{name} must be a boolean mask of shape {tuple(shape)}"
    if shape_of(mask) != tuple(shape):
        raise ValueError(f"{what}, got shape {shape_of(mask)}")
    if dtype_of(mask) != np.bool_:
        raise ValueError(f"{what}, got dtype {dtype_of(mask)}")


def check_epoch(epoch: Any, *, name: str = "epoch") -> None:
    """Raise unless ``epoch`` is an integer scalar >= 0 (value checked only when concrete)."""
    integer = np.issubdtype(dtype_of(epoch), np.integer)
    if isinstance(epoch, bool) or shape_of(epoch) != () or not integer:
        raise ValueError(f"{name} must be an integer scalar >= 0, got {epoch!r}")
    if is_concrete(epoch) and int(np.asarray(epoch)) < 0:
        raise ValueError(f"{name} must be an integer scalar >= 0, got {int(np.asarray(epoch))}")


def check_key(key: Any, *, name: str = "key") -> None:
    """Raise unless ``key`` is one jax.random key (typed key, or a raw uint32 [2] key)."""
    if key is None or not hasattr(key, "dtype"):
        raise ValueError(f"{name} must be a jax.random key (e.g. jax.random.key(0)), got {key!r}")
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if shape_of(key) != ():
            raise ValueError(f"{name} must be a single jax.random key, got shape {shape_of(key)}")
        return
    if dtype_of(key) != np.uint32 or shape_of(key) != (2,):
        raise ValueError(
            f"{name} must be a jax.random key (e.g. jax.random.key(0)), got dtype "
            f"{dtype_of(key)} shape {shape_of(key)}"
        )


def check_floating(name: str, x: Any) -> None:
    """Raise unless ``x`` has a floating dtype of 16, 32 or 64 bits."""
    dtype = dtype_of(x)
    if not np.issubdtype(dtype, np.floating) and dtype.name != "bfloat16" or dtype.itemsize not in (2, 4, 8):
        raise ValueError(f"{name} must have a float16, bfloat16, float32 or float64 dtype, got {dtype}")


def check_int_in_range(name: str, value: Any, low: int, high: int) -> int:
    """Raise unless ``value`` is an integer in ``[low, high]``; return it as int."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)) or not (
        low <= value <= high
    ):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def as_shape(name: str, shape: Any, *, allow_empty: bool, minimum: int = 1) -> tuple[int, ...]:
    """Normalize an int or a sequence of ints ``>= minimum`` to a shape tuple."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise ValueError(f"{name} must be an int or a sequence of ints, got {shape!r}")
    shape = tuple(check_positive_int(f"{name}[{i}]", d, minimum=minimum) for i, d in enumerate(shape))
    if not shape and not allow_empty:
        raise ValueError(f"{name} must have at least 1 dimension, got ()")
    return shape


def check_bool(name: str, value: Any) -> bool:
    """Raise unless ``value`` is a Python or NumPy bool (True or False); return it as bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a Python bool (True or False), got {value!r}")
    return bool(value)
