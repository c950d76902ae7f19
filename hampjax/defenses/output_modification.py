"""HAMP's testing-time defense: output modification.

The defended model answers each query with the *values* of its own output on a random input,
rearranged so that the ranking of the classes is the ranking of the real output (HAMP paper,
Sec. III-D, Algorithm 1 line 13, and Appendix F, and the authors' code):

    out[argsort(z)] = sort(r)

``z`` is the real output (logits or probabilities), ``r`` the output on a random input. Every
top-k label survives, so accuracy is unchanged, while the confidence profile is that of a
random, low-confidence input.

This module provides:

* :func:`modify_output`, the sort-and-scatter itself (fast, jit/vmap-compatible);
* random inputs as HAMP draws them: :func:`random_binary_inputs` (tabular data) and
  :func:`random_image_inputs` (images, integer pixels, normalized);
* the model outputs on random inputs, either precomputed once as a pool
  (:func:`make_random_output_pool`, :func:`sample_from_pool`; the paper's Appendix F scheme) or
  drawn afresh for each query batch (:func:`fresh_random_outputs`; the authors' code);
* :class:`OutputModifier`, the one object-level API: a model's pool (or fresh draws), the
  draw and the modification, ``modifier(outputs, key)``. A stack of per-model modifiers
  (:meth:`OutputModifier.from_pools`) is what :func:`hampjax.training.predict_many` takes
  as ``output_modifier``.

Randomness always comes from an explicit ``key``.

Differences from the authors' code, on purpose: the authors locate positions by value equality,
so tied logits collapse and a random value is lost; here an argsort scatter with a
deterministic tie order (see :func:`modify_output`) is used. The authors draw unseeded random
inputs; here every draw is keyed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from hampjax import validation
from hampjax.data.random_inputs import random_binary_inputs, random_image_inputs  # re-exported

__all__ = [
    "modify_output",
    "random_binary_inputs",
    "random_image_inputs",
    "make_random_output_pool",
    "sample_from_pool",
    "fresh_random_outputs",
    "OutputModifier",
]

# Up to this many classes the CPU formulation counts ranks by pairwise comparison (C^2 work,
# one vectorized pass); beyond it, sorting is cheaper. Measured on a 2-core x86 CPU: counting
# is faster than XLA's stable multi-operand sort by 6x to 27x for C in [128, 512] and slower
# at C = 1024.
_COUNTING_MAX_CLASSES = 512
# The CPU sorting network works on blocks of this many rows (a block stays in cache), and
# fuses this many consecutive half-cleaner layers into one pass over memory (fewer passes,
# more recomputation; 2 and 3 measured fastest).
_NETWORK_BLOCK_ROWS = 64
_FUSED_LAYERS = 3


def _check_outputs(name: str, x: jax.Array) -> None:
    """Raise unless ``x`` is a float array ``[..., C]`` with ``C >= 2``."""
    validation.check_rank_at_least(name, x, 1)
    validation.check_num_classes(x.shape[-1], name=f"{name}.shape[-1] (number of classes)")
    validation.check_floating(name, x)


# --------------------------------------------------------------------------------------------
# Sort-and-scatter core.
# --------------------------------------------------------------------------------------------

_INT_OF_WIDTH = {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}


def _smallest_normal_bits(dtype: Any) -> int:
    itype = _INT_OF_WIDTH[np.dtype(dtype).itemsize]
    return int(np.asarray(jnp.finfo(dtype).smallest_normal, dtype).view(itype))


def _to_sort_keys(x: jax.Array) -> jax.Array:
    """Floats -> signed ints in the order of ``jnp.sort``; consecutive floats, consecutive ints.

    Zeros of either sign and subnormal numbers all map to key 0 (XLA flushes float32 and
    bfloat16 subnormals to zero on CPU and GPU, so ``jnp.argsort`` treats them as zero too),
    every NaN maps to one canonical NaN above ``+inf``, and otherwise ``key + 1`` is the next
    normal float. So adding whole keys moves a value to the next float that compares
    greater.
    """
    itype = _INT_OF_WIDTH[x.dtype.itemsize]
    x = jnp.where(jnp.isnan(x), jnp.array(jnp.nan, x.dtype), x)
    bits = lax.bitcast_convert_type(x, itype)
    magnitude = bits & jnp.array(jnp.iinfo(itype).max, itype)
    offset = jnp.array(_smallest_normal_bits(x.dtype) - 1, itype)
    magnitude = jnp.where(magnitude > offset, magnitude - offset, jnp.zeros_like(magnitude))
    return jnp.where(bits < 0, -magnitude, magnitude)


def _from_sort_keys(keys: jax.Array, dtype: Any) -> jax.Array:
    """Inverse of :func:`_to_sort_keys` (key 0 comes back as ``+0.0``)."""
    offset = jnp.array(_smallest_normal_bits(dtype) - 1, keys.dtype)
    magnitude = jnp.abs(keys)
    magnitude = jnp.where(magnitude > 0, magnitude + offset, magnitude)
    bits = jnp.where(keys < 0, magnitude | jnp.array(jnp.iinfo(keys.dtype).min, keys.dtype), magnitude)
    return lax.bitcast_convert_type(bits, dtype)


def _stable_ranks_by_counting(keys: jax.Array) -> jax.Array:
    """Rank of each entry in the stable ascending order of its row: ``[N, C] -> int32 [N, C]``.

    Entry ``j`` precedes entry ``i`` iff ``key_j < key_i``, or ``key_j == key_i`` and
    ``j < i``; the rank of ``i`` counts its predecessors. Written as ``C`` unrolled
    compare-and-add steps that XLA fuses into one vectorized loop.
    """
    num_classes = keys.shape[-1]
    lane = lax.broadcasted_iota(jnp.int32, (1, num_classes), 1)
    # For j < i the test is key_j <= key_i, i.e. key_j < key_i + 1. No overflow: the largest
    # key is the canonical NaN, far below the integer maximum.
    keys_plus_one = keys + 1
    ranks = jnp.zeros(keys.shape, jnp.int32)
    for j in range(num_classes):
        threshold = jnp.where(j < lane, keys_plus_one, keys)
        ranks = ranks + (keys[:, j : j + 1] < threshold).astype(jnp.int32)
    return ranks


def _half_cleaner_layers(x: jax.Array, distance: int, num_layers: int) -> jax.Array:
    """Compare-exchange layers at distances ``distance, distance/2, ...`` in one pass.

    The ``2**num_layers`` entries ``distance / 2**(num_layers-1)`` apart within each group
    of ``2 * distance`` rows only interact with one another, so the layers are applied to
    those slices together and written back once.
    """
    length, shape = x.shape[0], x.shape
    stride = distance >> (num_layers - 1)
    groups = x.reshape(length // (2 * distance), *([2] * num_layers), stride, *shape[1:])
    parts = [groups[(slice(None), *bits)] for bits in itertools.product((0, 1), repeat=num_layers)]
    for layer in range(num_layers):
        step = 1 << (num_layers - 1 - layer)
        for low in range(len(parts)):
            if not low & step:
                a, b = parts[low], parts[low | step]
                parts[low], parts[low | step] = jnp.minimum(a, b), jnp.maximum(a, b)
    return jnp.stack(parts, axis=1).reshape(shape)


def _bitonic_sort_axis0(x: jax.Array) -> jax.Array:
    """Sort along axis 0 (a power of two long) with a bitonic network, vectorized over axis 1.

    This is the variant without direction flags: each merge of size ``m`` starts by
    comparing mirrored positions, then applies half-cleaners at distances ``m/4, ..., 1``,
    ``_FUSED_LAYERS`` of them per pass over memory.
    """
    length, shape = x.shape[0], x.shape
    size = 2
    while size <= length:
        blocks = x.reshape(length // size, 2, size // 2, *shape[1:])
        low, high = blocks[:, 0], jnp.flip(blocks[:, 1], axis=1)
        merged = [jnp.minimum(low, high), jnp.flip(jnp.maximum(low, high), axis=1)]
        x = jnp.stack(merged, axis=1).reshape(shape)
        distance = size // 4
        while distance >= 1:
            num_layers = min(_FUSED_LAYERS, distance.bit_length())
            x = _half_cleaner_layers(x, distance, num_layers)
            distance >>= num_layers
        size *= 2
    return x


def _sort_rows_by_network(values: jax.Array, break_ties: bool) -> jax.Array:
    """Sort keys of each row of floats ``values [N, C]`` ascending: ``-> int keys [N, C]``.

    Works on blocks of ``_NETWORK_BLOCK_ROWS`` rows (``lax.map``), so that a block stays in
    cache across the network's layers and temporary buffers stay small. Within a block the
    keys are transposed and padded to a power of two with the largest integer, so that every
    compare-exchange is an elementwise ``minimum`` / ``maximum`` of contiguous rows. With
    ``break_ties`` the sorted block goes through :func:`_separate_ties`.
    """
    num_rows, num_classes = values.shape
    width = 1 << (num_classes - 1).bit_length()
    block = min(_NETWORK_BLOCK_ROWS, num_rows)
    extra_rows = -num_rows % block
    if extra_rows:
        values = jnp.pad(values, ((0, extra_rows), (0, 0)))

    def sort_block(block_values: jax.Array) -> jax.Array:
        columns = _to_sort_keys(block_values).T
        fill = jnp.iinfo(columns.dtype).max
        columns = jnp.pad(columns, ((0, width - num_classes), (0, 0)), constant_values=fill)
        columns = _bitonic_sort_axis0(columns)[:num_classes]
        if break_ties:
            columns = _separate_ties(columns, axis=0)
        return columns.T

    sorted_keys = lax.map(sort_block, values.reshape(-1, block, num_classes))
    return sorted_keys.reshape(-1, num_classes)[:num_rows]


def _cummax(x: jax.Array, axis: int) -> jax.Array:
    """Inclusive running maximum along ``axis`` in ``log2(n)`` shifted passes.

    (``lax.cummax`` lowers to an O(n^2) reduce-window on CPU.)
    """
    length = x.shape[axis]
    lowest = jnp.iinfo(x.dtype).min
    shift = 1
    while shift < length:
        pad = [(0, 0)] * x.ndim
        pad[axis] = (shift, 0)
        kept = lax.slice_in_dim(x, 0, length - shift, axis=axis)
        x = jnp.maximum(x, jnp.pad(kept, pad, constant_values=lowest))
        shift *= 2
    return x


def _separate_ties(sorted_keys: jax.Array, axis: int) -> jax.Array:
    """Make sorted integer keys strictly increasing along ``axis`` by moving ties up.

    ``out[p] = max(key[p], out[p-1] + 1)`` (the fewest whole floats), computed as
    ``cummax(key - p) + p``. Lines that are already strictly increasing come back unchanged;
    the work is skipped when no line has a tie.
    """

    def separate(keys: jax.Array) -> jax.Array:
        wide = jnp.int64 if keys.dtype.itemsize == 8 else jnp.int32
        position = lax.broadcasted_iota(wide, keys.shape, axis)
        return (_cummax(keys.astype(wide) - position, axis) + position).astype(keys.dtype)

    length = sorted_keys.shape[axis]
    has_ties = jnp.any(
        lax.slice_in_dim(sorted_keys, 1, length, axis=axis)
        == lax.slice_in_dim(sorted_keys, 0, length - 1, axis=axis)
    )
    return lax.cond(has_ties, separate, lambda keys: keys, sorted_keys)


def _modify_by_counting(outputs: jax.Array, random_outputs: jax.Array, break_ties: bool) -> jax.Array:
    """CPU formulation, ``[N, C] -> int keys [N, C]``.

    Ranks of ``outputs`` by counting, sorted random values by a blocked sorting network, then
    one gather. Each piece is a handful of large vectorized passes; a single sort of the
    same data is several times slower on CPU.
    """
    sorted_r = _sort_rows_by_network(random_outputs, break_ties)
    ranks = _stable_ranks_by_counting(_to_sort_keys(outputs))
    return jnp.take_along_axis(sorted_r, ranks, axis=-1)


def _modify_by_sorting(outputs: jax.Array, random_outputs: jax.Array, break_ties: bool) -> jax.Array:
    """Sort-based formulation (accelerators, and many classes), ``[N, C] -> int keys [N, C]``."""
    z_keys, r_keys = _to_sort_keys(outputs), _to_sort_keys(random_outputs)
    lane = lax.broadcasted_iota(jnp.int32, z_keys.shape, 1)
    _, order = lax.sort((z_keys, lane), dimension=1, num_keys=1, is_stable=True)
    sorted_r = lax.sort(r_keys, dimension=1)
    if break_ties:
        sorted_r = _separate_ties(sorted_r, axis=1)
    rows = lax.broadcasted_iota(jnp.int32, z_keys.shape, 0)
    return jnp.zeros_like(sorted_r).at[rows, order].set(sorted_r, unique_indices=True)


def _modify_output_impl(outputs: jax.Array, random_outputs: jax.Array, break_ties: bool) -> jax.Array:
    shape = random_outputs.shape
    num_classes = shape[-1]
    if math.prod(shape) == 0:
        return jnp.zeros(shape, random_outputs.dtype)
    z = outputs.reshape(-1, num_classes)
    r = random_outputs.reshape(-1, num_classes)
    if num_classes <= _COUNTING_MAX_CLASSES:
        out_keys = lax.platform_dependent(
            z,
            r,
            cpu=lambda z, r: _modify_by_counting(z, r, break_ties),
            default=lambda z, r: _modify_by_sorting(z, r, break_ties),
        )
    else:
        out_keys = _modify_by_sorting(z, r, break_ties)
    return _from_sort_keys(out_keys, random_outputs.dtype).reshape(shape)


def _modify_finite_rows(outputs: jax.Array, random_outputs: jax.Array, break_ties: bool) -> jax.Array:
    """:func:`_modify_output_impl`, with NaN rows where either input row is not finite.

    A row with a NaN or inf has no meaningful ranking (or random values). Concrete inputs are
    rejected by :func:`modify_output`; this covers traced ones (e.g. inside predict_many).
    """
    out = _modify_output_impl(outputs, random_outputs, break_ties)
    if out.size == 0:
        return out
    finite = jnp.isfinite(outputs).all(axis=-1) & jnp.isfinite(random_outputs).all(axis=-1)
    validation.traced_check(finite.all(), "outputs and random_outputs must be finite (no NaN "
                            "or inf); flat row {} is not", jnp.argmin(finite.ravel()))
    return validation.nan_unless(finite, out)


_modify_output_jit = jax.jit(_modify_finite_rows, static_argnames=("break_ties",))


def modify_output(outputs: jax.Array, random_outputs: jax.Array, *, break_ties: bool = True) -> jax.Array:
    """HAMP output modification: the values of ``random_outputs`` in the ranking of ``outputs``.

    Per row, ``out[argsort(outputs)] = sort(random_outputs)``: the entry of ``outputs`` with
    the k-th smallest value receives the k-th smallest random value. Ties in ``outputs`` are
    ordered as a stable sort orders them (the lower class index ranks lower) and
    ``-0.0 == +0.0``, exactly as ``jnp.argsort(outputs, stable=True)``. Both inputs must be
    finite: concrete NaN/inf raise ``ValueError`` (naming the first index); traced ones (under
    ``jit``/``vmap``) give a NaN row, never a finite top-1 for a NaN class.
    Subnormal numbers count as zero, as XLA treats float32 and bfloat16 subnormals on CPU
    and GPU (subnormal random values come back as ``+0.0``).

    With tied maxima in ``outputs`` the stable order ranks the *last* tied class highest,
    so ``argmax(result)`` is that class while ``argmax(outputs)`` returns the first one;
    with a unique maximum the top-1 label is unchanged.

    Tied values in ``random_outputs``: two equal random values cannot reproduce a strict
    ranking (e.g. ``outputs = [1, 0]``, ``random_outputs = [5, 5]``), so with
    ``break_ties=True`` (default) the sorted random values of such a row are made strictly
    increasing by moving each repeated value up to the next float that compares greater
    (``v[p] = max(v[p], next_float_above(v[p-1]))``, subnormals skipped). Then, for finite
    ``random_outputs``, ``jnp.argsort(result, stable=True) == jnp.argsort(outputs,
    stable=True)`` always holds, so every top-k set is that of ``outputs``. Rows without
    tied random values get exactly the values of ``random_outputs`` (as a multiset; zeros
    come back as ``+0.0``). With ``break_ties=False`` every row gets exactly those values
    and the ranking holds weakly (``outputs[i] < outputs[j]`` implies
    ``result[i] <= result[j]``).

    The computation is jitted (static ``break_ties``); it also works inside ``jit`` and
    ``vmap``. On CPU it counts ranks with pairwise comparisons and sorts the random values
    with a sorting network (about 1 microsecond per row at 100 classes on 2 cores); on other
    platforms, and beyond 512 classes, it uses XLA's sort.

    Args:
      outputs: ``[..., C]`` float logits or probabilities of the real query (any float dtype);
        only their ranking is used. ``C >= 2``.
      random_outputs: ``[..., C]`` float outputs of the model on random inputs, same shape.
        Logits and probabilities work alike (softmax commutes with the rearrangement); pass
        the same kind as ``outputs`` if the result replaces them.
      break_ties: separate tied random values so that the ranking is reproduced exactly.

    Returns:
      ``[..., C]`` array with the dtype of ``random_outputs``.

    Raises:
      ValueError: if the shapes differ, are scalars, have fewer than 2 classes, a dtype is
        not floating, or a concrete input holds NaN/inf.

    Example:
      >>> import jax.numpy as jnp
      >>> modify_output(jnp.array([2.0, 9.0, 1.0]), jnp.array([0.3, 0.1, 0.2]))
      Array([0.2, 0.3, 0.1], dtype=float32)
    """
    outputs, random_outputs = jnp.asarray(outputs), jnp.asarray(random_outputs)
    _check_outputs("outputs", outputs)
    _check_outputs("random_outputs", random_outputs)
    validation.check_same_shape(("outputs", "random_outputs"), outputs, random_outputs)
    validation.check_finite("outputs", outputs)
    validation.check_finite("random_outputs", random_outputs)
    return _modify_output_jit(outputs, random_outputs, break_ties=bool(break_ties))


# --------------------------------------------------------------------------------------------
# Random outputs: a precomputed pool, or fresh draws.
# --------------------------------------------------------------------------------------------

ApplyFn = Callable[[jax.Array], jax.Array]
SampleInputsFn = Callable[[jax.Array, int], jax.Array]


def _check_apply_output(apply_fn: ApplyFn, sample_inputs: SampleInputsFn, key: jax.Array, num: int) -> None:
    """Raise unless ``apply_fn(sample_inputs(key, num))`` has shape ``[num, C]``, ``C >= 2``."""
    out = jax.eval_shape(lambda k: apply_fn(sample_inputs(k, num)), key)
    shape = tuple(out.shape)
    if len(shape) != 2 or shape[0] != num:
        raise ValueError(f"apply_fn(sample_inputs(key, {num})) must have shape [{num}, C], got {shape}")
    validation.check_num_classes(shape[1], name="apply_fn output classes C")
    validation.check_floating("apply_fn output", out)


def fresh_random_outputs(
    apply_fn: ApplyFn, sample_inputs: SampleInputsFn, key: jax.Array, num: int
) -> jax.Array:
    """Model outputs on ``num`` fresh random inputs (the authors' per-query-batch draw, keyed).

    Args:
      apply_fn: ``inputs -> [n, C]`` float outputs; close over the model parameters and run
        the model in eval mode (BatchNorm running statistics, no dropout).
      sample_inputs: ``(key, n) -> inputs`` random inputs, e.g.
        ``functools.partial(random_binary_inputs, num_features=600)``, or a lambda around
        :func:`random_image_inputs`.
      key: PRNG key.
      num: number of random outputs, ``>= 1``.

    Returns:
      ``[num, C]`` outputs, ``apply_fn(sample_inputs(key, num))``.

    Raises:
      ValueError: if ``num`` is not a positive integer or ``apply_fn`` does not return
        ``[num, C]`` floats with ``C >= 2``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> w = jnp.ones((600, 100)) / 600
      >>> sample = lambda k, n: random_binary_inputs(k, n, 600)
      >>> fresh_random_outputs(lambda x: x @ w, sample, jax.random.key(0), 8).shape
      (8, 100)
    """
    num = validation.check_positive_int("num", num)
    _check_apply_output(apply_fn, sample_inputs, key, num)
    return apply_fn(sample_inputs(key, num))


def make_random_output_pool(
    apply_fn: ApplyFn,
    sample_inputs: SampleInputsFn,
    key: jax.Array,
    pool_size: int,
    *,
    batch_size: int = 1024,
) -> jax.Array:
    """Precompute the model's outputs on ``pool_size`` random inputs (paper, Appendix F).

    Inputs are drawn in ``num_chunks = ceil(pool_size / chunk)`` chunks of
    ``chunk = min(batch_size, pool_size)`` inputs; chunk ``i`` is
    ``apply_fn(sample_inputs(jax.random.split(key, num_chunks)[i], chunk))``. The pool is
    the chunks concatenated and truncated to ``pool_size`` rows, a deterministic function of
    ``key``, ``pool_size`` and ``batch_size`` (changing ``batch_size`` changes the draw).

    Args:
      apply_fn: ``inputs -> [n, C]`` float outputs; close over the model parameters and run
        the model in eval mode (BatchNorm running statistics, no dropout).
      sample_inputs: ``(key, n) -> inputs`` random inputs (see :func:`fresh_random_outputs`).
      key: PRNG key.
      pool_size: number of rows of the pool, ``>= 1``.
      batch_size: inputs per model call, ``>= 1`` (a performance setting).

    Returns:
      ``[pool_size, C]`` the pool of random outputs.

    Raises:
      ValueError: if a size is not a positive integer or ``apply_fn`` does not return
        ``[batch_size, C]`` floats with ``C >= 2``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> w = jnp.ones((600, 100)) / 600
      >>> sample = lambda k, n: random_binary_inputs(k, n, 600)
      >>> make_random_output_pool(lambda x: x @ w, sample, jax.random.key(0), 1000,
      ...                         batch_size=256).shape
      (1000, 100)
    """
    pool_size = validation.check_positive_int("pool_size", pool_size)
    chunk = min(validation.check_positive_int("batch_size", batch_size), pool_size)
    _check_apply_output(apply_fn, sample_inputs, key, chunk)
    num_chunks = -(-pool_size // chunk)
    keys = jax.random.split(key, num_chunks)
    one_chunk = lambda k: apply_fn(sample_inputs(k, chunk))
    # No while loop where it can be avoided (XLA:CPU runs convolutions inside one ~30x
    # slower): outside jit, one jitted chunk program driven from Python; under a trace, the
    # chunks written out when few, else lax.map.
    if validation.is_concrete(keys):
        program = jax.jit(one_chunk)
        chunks = jnp.stack([program(keys[i]) for i in range(num_chunks)])
    elif num_chunks <= _MAX_UNROLLED_CHUNKS:
        chunks = jnp.stack([one_chunk(keys[i]) for i in range(num_chunks)])
    else:
        chunks = lax.map(one_chunk, keys)
    return chunks.reshape(num_chunks * chunk, -1)[:pool_size]


_MAX_UNROLLED_CHUNKS = 8


def _check_pool(pool: Any) -> None:
    shape = tuple(np.shape(pool)) if validation.is_concrete(pool) else tuple(pool.shape)
    if len(shape) != 2:
        raise ValueError(f"pool must have 2 dimensions [pool_size, C], got shape {shape}")
    validation.check_positive_int("pool.shape[0] (pool_size)", shape[0])
    validation.check_num_classes(shape[1], name="pool.shape[1] (number of classes)")
    validation.check_floating("pool", pool)
    validation.check_finite("pool", pool)


def sample_from_pool(pool: jax.Array, key: jax.Array, batch_shape: int | Sequence[int]) -> jax.Array:
    """Draw rows of a random-output pool uniformly with replacement.

    Args:
      pool: ``[pool_size, C]`` from :func:`make_random_output_pool`.
      key: PRNG key.
      batch_shape: leading shape of the result (an int or a sequence of non-negative ints;
        ``()`` gives a single row).

    Returns:
      ``[*batch_shape, C]`` rows of ``pool``.

    Raises:
      ValueError: if ``pool`` is not ``[pool_size >= 1, C >= 2]`` floats or ``batch_shape``
        has a negative entry.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> sample_from_pool(jnp.zeros((10, 5)), jax.random.key(0), (3, 4)).shape
      (3, 4, 5)
    """
    _check_pool(pool)
    batch_shape = validation.as_shape("batch_shape", batch_shape, allow_empty=True, minimum=0)
    rows = jax.random.randint(key, batch_shape, 0, pool.shape[0])
    return jnp.asarray(pool)[rows]


# --------------------------------------------------------------------------------------------
# The defense as one object.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OutputModifier:
    """HAMP's testing-time defense as a pure function ``(outputs, key) -> modified outputs``.

    Two modes:

    * pool (:meth:`from_pool`): each query row gets a row drawn uniformly with replacement
      from a precomputed pool of random outputs (paper, Appendix F); only the
      sort-and-scatter runs at query time.
    * fresh (:meth:`fresh`): each call draws new random inputs and runs the model on them
      (the authors' code, seeded through the key).

    The object holds no state besides its fields and is a pytree (``pool`` is its only
    array leaf; the callables are static), so it can be passed through ``jit``. Use a new
    key for every query batch.

    Attributes:
      pool: ``[pool_size, C]`` random outputs (pool mode) or ``None`` (fresh mode).
      apply_fn: ``inputs -> [n, C]`` eval-mode model outputs (fresh mode) or ``None``.
      sample_inputs: ``(key, n) -> inputs`` random inputs (fresh mode) or ``None``.
      break_ties: forwarded to :func:`modify_output`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> pool = jax.random.normal(jax.random.key(0), (1000, 10))
      >>> defense = OutputModifier.from_pool(pool)
      >>> logits = jax.random.normal(jax.random.key(1), (4, 10))
      >>> defended = defense(logits, jax.random.key(2))
      >>> bool((defended.argmax(-1) == logits.argmax(-1)).all())
      True
    """

    pool: jax.Array | None = None
    apply_fn: ApplyFn | None = None
    sample_inputs: SampleInputsFn | None = None
    break_ties: bool = True

    @classmethod
    def from_pool(cls, pool: jax.Array, *, break_ties: bool = True) -> OutputModifier:
        """Pool mode. Raises ValueError unless ``pool`` is ``[pool_size >= 1, C >= 2]`` floats."""
        _check_pool(pool)
        return cls(pool=jnp.asarray(pool), break_ties=bool(break_ties))

    @classmethod
    def from_pools(cls, pools: jax.Array, *, break_ties: bool = True) -> OutputModifier:
        """One pool-mode modifier per model, stacked on a leading model axis.

        ``pools`` is ``[M, pool_size, C]``: model ``m``'s outputs on its random inputs. The
        stack is the ``output_modifier`` of :func:`hampjax.training.predict_many`, which gives
        model ``m`` the modifier ``OutputModifier.from_pool(pools[m])``; it cannot be called
        directly.

        Raises:
          ValueError: unless ``pools`` is ``[M >= 1, pool_size >= 1, C >= 2]`` floats.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> from hampjax.models.registry import get_model, model_functions
          >>> from hampjax.training import predict_many
          >>> init_fn, apply_fn = model_functions(get_model("fc", 3, hidden_sizes=(8,)))
          >>> variables = jax.vmap(init_fn, in_axes=(0, None))(
          ...     jax.random.split(jax.random.key(0), 2), jnp.zeros((1, 4)))
          >>> pools = predict_many(apply_fn, variables, jnp.zeros((5, 4)))[:, :, 0]  # [M, P, C]
          >>> out = predict_many(apply_fn, variables, jnp.ones((6, 4)),
          ...                    output_modifier=OutputModifier.from_pools(pools),
          ...                    output_key=jax.random.key(1))
          >>> out.shape
          (2, 6, 1, 3)
        """
        shape = tuple(np.shape(pools))
        if len(shape) != 3 or shape[0] < 1:
            raise ValueError(f"pools must have 3 dimensions [M, pool_size, C] with M >= 1, got "
                             f"shape {shape}")
        _check_pool(jnp.asarray(pools)[0])
        return cls(pool=jnp.asarray(pools), break_ties=bool(break_ties))

    @classmethod
    def fresh(
        cls, apply_fn: ApplyFn, sample_inputs: SampleInputsFn, *, break_ties: bool = True
    ) -> OutputModifier:
        """Fresh mode. Raises ValueError unless both arguments are callable."""
        for name, fn in (("apply_fn", apply_fn), ("sample_inputs", sample_inputs)):
            if not callable(fn):
                raise ValueError(f"{name} must be callable, got {fn!r}")
        return cls(apply_fn=apply_fn, sample_inputs=sample_inputs, break_ties=bool(break_ties))

    @property
    def mode(self) -> str:
        """``"pool"`` or ``"fresh"``."""
        return "pool" if self.pool is not None else "fresh"

    def random_outputs(self, key: jax.Array, batch_shape: int | Sequence[int]) -> jax.Array:
        """The random outputs that a query batch of leading shape ``batch_shape`` receives.

        Returns ``[*batch_shape, C]``. Raises ValueError if the modifier is misconfigured (or,
        in fresh mode, if ``batch_shape`` is empty of rows).
        """
        batch_shape = validation.as_shape("batch_shape", batch_shape, allow_empty=True, minimum=0)
        if self.pool is not None and self.pool.ndim == 3:
            raise ValueError(
                "this OutputModifier stacks one pool per model (from_pools, pool shape "
                f"{tuple(self.pool.shape)}): pass it to predict_many(output_modifier=...), or "
                "call OutputModifier.from_pool(pools[m]) for model m")
        if self.pool is not None:
            return sample_from_pool(self.pool, key, batch_shape)
        if self.apply_fn is None or self.sample_inputs is None:
            raise ValueError("OutputModifier needs a pool, or both apply_fn and sample_inputs")
        num = math.prod(batch_shape)
        fresh = fresh_random_outputs(self.apply_fn, self.sample_inputs, key, num)
        return fresh.reshape(*batch_shape, fresh.shape[-1])

    def __call__(self, outputs: jax.Array, key: jax.Array) -> jax.Array:
        """Defend a batch of outputs.

        Args:
          outputs: ``[..., C]`` logits or probabilities of the real queries (the same kind
            as the random outputs).
          key: PRNG key; use a new one per query batch.

        Returns:
          ``[..., C]`` modified outputs, as :func:`modify_output`.

        Raises:
          ValueError: if ``outputs`` is not ``[..., C]`` floats with ``C >= 2``, or ``C``
            differs from the random outputs' number of classes.
        """
        outputs = jnp.asarray(outputs)
        _check_outputs("outputs", outputs)
        if self.pool is not None and self.pool.ndim == 2:
            validation.check_last_dim("outputs", outputs, self.pool.shape[-1])
        random_outputs = self.random_outputs(key, tuple(outputs.shape[:-1]))
        validation.check_same_shape(("outputs", "random outputs"), outputs, random_outputs)
        return modify_output(outputs, random_outputs, break_ties=self.break_ties)


jax.tree_util.register_dataclass(
    OutputModifier,
    data_fields=["pool"],
    meta_fields=["apply_fn", "sample_inputs", "break_ties"],
)
