"""Argument validation shared by every public hampjax function.

All user-facing checks live here so that error messages have one shape:

    ValueError: entropy_threshold must be in [0, 1), got 1.0

Each message names the argument and the allowed range. Checks run eagerly, in Python,
before anything is traced. Values that are JAX tracers (because the caller wrapped a
hampjax function in ``jit`` or ``vmap``) cannot be inspected without a device sync, so
value checks skip them; shape and dtype checks still run because shapes are static.

The policy for bad values (README, "Errors and checked mode"):

* Concrete inputs (NumPy or JAX arrays, Python numbers) are checked once per call, on the host,
  before anything is traced: :func:`check_finite`, :func:`check_labels`,
  :func:`check_probabilities`, :func:`check_in_range`. Messages name the argument, the allowed
  range and the first offending index.
* Traced values (under ``jit``, ``vmap``, ``scan``) cannot be inspected. Hyperparameters that
  may be traced go through :func:`traced_in_range`, which returns a validity flag that the
  function turns into a NaN output (:func:`nan_unless`), so a vmapped sweep over an invalid
  value fails loudly instead of silently using another value; and which also emits a
  ``checkify`` check with the message the concrete path raises. :func:`checked` runs a
  function under ``jax.experimental.checkify`` so that those checks raise inside jitted code.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

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
    "check_probabilities",
    "first_index",
    "PROBABILITY_ATOL",
    "traced_check",
    "traced_in_range",
    "nan_unless",
    "checked",
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
        first = float(arr[first_index(~ok)]) if arr.ndim else float(arr)
        interval = (
            ("[" if low_inclusive else "(")
            + f"{low:g}, {high:g}"
            + ("]" if high_inclusive else ")")
        )
        if arr.ndim == 0:
            raise ValueError(f"{name} must be in {interval}, got {_fmt(first)}")
        raise ValueError(
            f"{name} must be in {interval} element-wise; {int((~ok).sum())} element(s) are not, "
            f"e.g. {_fmt(first)} at index {first_index(~ok)}"
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
        index = first_index((arr < 0) | (arr >= num_classes))
        raise ValueError(f"{name} must be in [0, {num_classes}), got {int(arr[index])} at index "
                         f"{index}")


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


def first_index(bad: Any) -> tuple[int, ...]:
    """Index (a tuple, C order) of the first True entry of a boolean array; ``()`` for 0-d."""
    bad = np.asarray(bad)
    if bad.ndim == 0:
        return ()
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))


def _is_float(dtype: Any) -> bool:
    return jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)


def check_finite(name: str, x: Any, *, where: Any = None) -> None:
    """Raise if a concrete array contains NaN or +-inf (integer arrays always pass).

    Args:
      name: the argument's name, for the message.
      x: array-like; skipped when it is a tracer.
      where: optional boolean mask broadcastable to the leading axes of ``x``
        (``x.shape[:where.ndim]``): only those entries (rows) are checked, e.g. valid,
        non-padding rows.

    Raises:
      ValueError: ``"logits must be finite (no NaN or inf); found nan at index (3, 1)
        (2 of 40 values are not finite)"``.

    An accelerator array is reduced on its device (one scalar comes back); NumPy and CPU
    arrays on the host, without a copy.
    """
    if not is_concrete(x) or (where is not None and not is_concrete(where)):
        return
    dtype = dtype_of(x)
    if not _is_float(dtype):
        return
    if isinstance(x, jax.Array) and any(d.platform != "cpu" for d in x.devices()):
        # An accelerator array: one reduction on its device, one scalar back.
        with jax.ensure_compile_time_eval():  # also when called while tracing another function
            if bool(_all_finite(x)):
                return
    arr = np.asarray(x)  # NumPy or a CPU array (no copy); memmaps are read block by block
    mask = None if where is None else np.asarray(where, bool)
    if mask is not None:
        mask = mask.reshape(mask.shape + (1,) * (arr.ndim - mask.ndim))
    row_size = math.prod(arr.shape[1:]) if arr.ndim else 1
    rows = max(1, _FINITE_BLOCK // max(1, row_size))
    first, count = None, 0
    for start in range(0, max(1, arr.shape[0] if arr.ndim else 1), rows):
        block = arr[start:start + rows] if arr.ndim else arr
        bad = ~np.isfinite(block)
        if mask is not None:
            bad &= mask[start:start + rows] if mask.ndim else mask
        if bad.any():
            count += int(bad.sum())
            if first is None:
                local = first_index(bad)
                first = (local[0] + start,) + local[1:] if arr.ndim else ()
    if first is None:
        return
    raise ValueError(
        f"{name} must be finite (no NaN or inf); found {_fmt(arr[first].item())} at index {first} "
        f"({count} of {arr.size} values are not finite)"
    )


_FINITE_BLOCK = 1 << 24  # elements per block of check_finite (bounds its temporary memory)


@jax.jit
def _all_finite(x: jax.Array) -> jax.Array:
    return jnp.isfinite(x).all()


PROBABILITY_ATOL = 1e-3
"""Tolerance of :func:`check_probabilities` on each row's sum (float32 softmax rows of 1000
classes sum to 1 within about 1e-6; half-precision ones within about 1e-3)."""


def check_probabilities(name: str, p: Any, *, atol: float = PROBABILITY_ATOL) -> None:
    """Raise unless every row (last axis) of a concrete ``p`` is a probability vector.

    Entries must be finite and in [0, 1], and each row must sum to 1 within ``atol``.

    Raises:
      ValueError: ``"probs must have rows that sum to 1 (within 0.001); row (2,) sums to 2.0"``.
    """
    if not is_concrete(p):
        return
    arr = np.asarray(p, dtype=np.float64)
    check_finite(name, arr)
    check_in_range(name, arr, 0.0, 1.0, high_inclusive=True)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a last axis of classes, got a scalar")
    sums = arr.sum(axis=-1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        index = first_index(bad)
        raise ValueError(
            f"{name} must have rows that sum to 1 (within {atol:g}); row {index} sums to "
            f"{float(sums[index])!r} ({int(bad.sum())} of {bad.size} rows do not)"
        )


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
    """Check float ``logits [..., C]`` (C >= 2) and integer ``labels`` of shape
    ``logits.shape[:-1]`` with values in [0, C); return C."""
    check_rank_at_least("logits", logits, min_rank)
    check_floating("logits", logits)
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


# --------------------------------------------------------------------------------------------
# Traced values: the NaN rule and the checked mode.


def _interval(low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> str:
    return (("[" if low_inclusive else "(") + f"{low:g}, {high:g}"
            + ("]" if high_inclusive else ")"))


def traced_check(pred: Any, msg: str, *fmt_args: Any) -> None:
    """A check that raises only in checked mode (:func:`checked`); dropped otherwise.

    ``jax.experimental.checkify.debug_check``: costs nothing in a program that is not
    checkified. ``msg`` is formatted with ``fmt_args`` (``"{}"`` placeholders) at run time.
    """
    checkify.debug_check(pred, msg, *fmt_args)


def traced_in_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
) -> jax.Array:
    """Validity of a possibly traced scalar hyperparameter: a bool scalar (NaN is invalid).

    Also emits a :func:`traced_check` whose message is the one :func:`check_in_range` raises
    on a concrete value (``"entropy_threshold must be in [0, 1), got 1.2"``), so that
    :func:`checked` raises it inside ``jit``/``vmap``. Pair it with :func:`nan_unless`.
    Non-scalar values are checked element-wise (all must be valid).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> f = lambda g: nan_unless(traced_in_range("g", g, 0.0, 1.0), 2 * g)
      >>> jax.vmap(f)(jnp.array([0.5, 1.5])).tolist()
      [1.0, nan]
    """
    value = jnp.asarray(value)
    lo_ok = value >= low if low_inclusive else value > low
    hi_ok = value <= high if high_inclusive else value < high
    ok = jnp.all(lo_ok & hi_ok)
    interval = _interval(low, high, low_inclusive, high_inclusive)
    shown = value if value.ndim == 0 else value.ravel()[jnp.argmin(lo_ok & hi_ok)]
    traced_check(ok, f"{name} must be in {interval}, got {{}}", shown)
    return ok


def nan_unless(ok: Any, x: Any) -> Any:
    """``x`` where ``ok`` holds, NaN elsewhere (every floating leaf of a pytree).

    ``ok`` broadcasts against the leading axes of each leaf. Integer leaves are returned
    unchanged (they cannot hold NaN).
    """
    ok = jnp.asarray(ok)

    def one(leaf):
        leaf = jnp.asarray(leaf)
        if not _is_float(leaf.dtype):
            return leaf
        mask = ok.reshape(ok.shape + (1,) * (leaf.ndim - ok.ndim)) if ok.ndim else ok
        return jnp.where(mask, leaf, jnp.asarray(jnp.nan, leaf.dtype))

    return jax.tree_util.tree_map(one, x)


_CHECK_SUFFIX = " (`check` failed)"


def checked(fn: Any, *, errors: Any = None) -> Any:
    """Checked mode: ``fn`` under ``jax.experimental.checkify``, raising on a failed check.

    The returned function runs ``checkify.checkify(fn, errors=checkify.user_checks)`` and
    raises ``ValueError`` with the message of a failed check, the same message the concrete
    path raises (when several fail, which one is reported is up to ``checkify``). ``checked``
    must be the outermost transform (the error is read on the host): put ``jit`` and ``vmap``
    inside it, ``checked(jax.jit(jax.vmap(f)))``. Wrap the
    jitted function (``checked(jax.jit(f))``): the checks run inside the compiled program and
    the error is raised on the host after it returns. Without ``checked`` the same program
    carries no checks (invalid traced hyperparameters then give NaN outputs).

    Args:
      fn: any JAX-traceable function (jitted or not) calling hampjax functions.
      errors: the ``checkify`` error set (default ``checkify.user_checks``: hampjax's checks;
        e.g. ``checkify.user_checks | checkify.float_checks`` also reports the first
        primitive that produces a NaN, with its own message).

    Returns:
      A function with ``fn``'s signature and outputs.

    Raises (from the returned function):
      ValueError: the first failed check's message.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from hampjax.defenses import hamp_soft_labels
      >>> f = jax.jit(lambda g: hamp_soft_labels(jnp.array([0]), 4, g))
      >>> bool(jnp.isnan(f(1.2)).all())
      True
      >>> checked(f)(1.2)
      Traceback (most recent call last):
        ...
      ValueError: entropy_threshold must be in [0, 1), got 1.2000000476837158
    """
    checkified = checkify.checkify(fn, errors=checkify.user_checks if errors is None else errors)

    def run(*args: Any, **kwargs: Any) -> Any:
        error, out = checkified(*args, **kwargs)
        message = error.get()
        if message is not None:
            message = message.replace(_CHECK_SUFFIX, "")
            raise ValueError(message)
        return out

    run.__wrapped__ = fn
    run.__doc__ = getattr(fn, "__doc__", None)
    return run
