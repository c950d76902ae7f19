"""Label-only membership inference attacks (Choquette-Choo et al., 2021; Li & Zhang, 2021).

A label-only attacker sees only the label the (defended) target predicts. Members tend to be
classified correctly and robustly: their label survives input noise, translations and flips,
and it takes a larger perturbation to move them across the decision boundary. Every function
here returns a per-example score where **higher means "more likely a member"**, ready for
:mod:`hampjax.metrics` (``roc_curve``, ``tpr_at_fpr``, ...):

- :func:`gap_attack_scores`: 1 if correctly classified, else 0 (the gap attack).
- :func:`noise_robustness_scores`: fraction of random bit-flip variants still classified
  correctly (tabular data with binary features; HAMP's "boundary" attack for tabular data).
- :func:`augmentation_scores`: fraction of translations / horizontal flips still classified
  correctly (images); :func:`augmentation_correct` gives the per-augmentation matrix for an
  attack model.
- :func:`hop_skip_jump_distance`: decision-based L2 boundary distance (HopSkipJump, Chen et al.
  2020), queries labels only.
- :func:`cw_l2_distance`: white-box Carlini-Wagner L2 boundary distance (needs logits and
  gradients; HAMP's "boundary" attack for images).
- :func:`distance_to_score`: makes distances with ``+inf`` (attack failed) usable by the metrics.

The target. The black-box attacks take ``predict_labels(x) -> labels``: a JAX-traceable
function mapping a batch ``x [M, *feature_shape]`` to integer labels ``[M]`` (it is called
inside ``lax.map`` / ``lax.fori_loop``, so it must be written in ``jax.numpy``). Build one from
a logits (or probabilities) function with :func:`labels_from_logits`. For a defended target,
pass the labels of the *defended* output, e.g. after HAMP's output modification. CW-L2 takes
``logits_fn(x) -> logits [M, C]``, differentiable in JAX.

Randomness comes only from explicit ``key`` arguments. All functions work under ``jit`` (wrap a
``functools.partial`` that fixes the target function and the keyword settings) and ``vmap``
(e.g. over a stack of target models or over keys). Each call of an attack compiles its whole
computation once (the target function is closed over, so nothing is cached between calls);
to attack many batches of one shape, jit such a ``functools.partial`` once and reuse it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hampjax.validation import (
    check_bool,
    check_choice,
    check_finite,
    check_in_range,
    check_int_in_range,
    check_key,
    check_labels,
    check_ndim,
    check_nonempty,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_shape,
    dtype_of,
    is_concrete,
    shape_of,
)

__all__ = [
    "labels_from_logits",
    "gap_attack_scores",
    "noise_robustness_scores",
    "augmentation_correct",
    "augmentation_scores",
    "hop_skip_jump_distance",
    "cw_l2_distance",
    "distance_to_score",
]

PredictLabels = Callable[[jax.Array], jax.Array]
LogitsFn = Callable[[jax.Array], jax.Array]
Box = tuple[float, float]


# --------------------------------------------------------------------------------------------
# Validation helpers (generic ones could move to hampjax.validation).
# --------------------------------------------------------------------------------------------


def _check_callable(name: str, fn: Any) -> None:
    if not callable(fn):
        raise ValueError(f"{name} must be a callable mapping a batch x [M, ...] to an array, got {fn!r}")


def _check_examples_labels(x: Any, labels: Any) -> int:
    """``x [N, ...]`` non-empty and finite, ``labels [N]`` integer >= 0; return N."""
    check_nonempty("x", x)
    check_finite("x", x)
    n = shape_of(x)[0]
    check_shape("labels", labels, (n,), what="(x.shape[0],)")
    check_labels(labels, np.iinfo(np.int32).max)
    return n


def _check_predict_labels(predict_labels: Any, x: Any) -> None:
    """``predict_labels`` must map ``x [M, ...]`` to integer ``[M]`` (checked abstractly)."""
    _check_callable("predict_labels", predict_labels)
    spec = jax.ShapeDtypeStruct(shape_of(x), dtype_of(x))
    out = jax.eval_shape(predict_labels, spec)
    if not hasattr(out, "shape") or tuple(out.shape) != shape_of(x)[:1]:
        raise ValueError(
            f"predict_labels must return labels of shape (x.shape[0],)={shape_of(x)[:1]}, "
            f"got {getattr(out, 'shape', out)}"
        )
    if not np.issubdtype(np.dtype(out.dtype), np.integer):
        raise ValueError(f"predict_labels must return integer labels, got dtype {out.dtype}")


def _check_box(box: Any, x: Any) -> Box | None:
    """``box`` is None or ``(lo, hi)`` with finite ``lo < hi``; ``x`` must lie inside it."""
    if box is None:
        return None
    if not isinstance(box, (tuple, list)) or len(box) != 2:
        raise ValueError(f"box must be None or a pair (lo, hi) with lo < hi, got {box!r}")
    lo, hi = float(box[0]), float(box[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"box must be None or a pair (lo, hi) of finite floats with lo < hi, got {box!r}")
    check_in_range(f"x (inside box={box!r})", x, lo, hi, high_inclusive=True)
    return lo, hi




# --------------------------------------------------------------------------------------------
# Small array helpers.
# --------------------------------------------------------------------------------------------


def _expand(v: jax.Array, ndim: int) -> jax.Array:
    """Reshape ``v [N]`` to ``[N, 1, ..., 1]`` with ``ndim`` dimensions."""
    return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def _l2(v: jax.Array, start: int = 1) -> jax.Array:
    """L2 norm over all axes from ``start`` on."""
    return jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(start, v.ndim))))


def _flat_random(sample: Callable, key: jax.Array, shape: tuple[int, ...], *args: Any) -> jax.Array:
    """``sample(key, (prod(shape),), *args).reshape(shape)``.

    Drawing a 1-D vector and reshaping compiles much faster on XLA:CPU than drawing a
    multi-dimensional shape directly with partitionable threefry (seconds vs ~0.2 s).
    """
    return sample(key, (math.prod(shape),), *args).reshape(shape)


def _predict_chunked(predict_labels: PredictLabels, xs: jax.Array, batch_size: int | None) -> jax.Array:
    """``predict_labels`` on ``xs [M, ...]`` in static chunks of ``batch_size`` (None: one call)."""
    m = xs.shape[0]
    if batch_size is None or batch_size >= m:
        return predict_labels(xs)
    num = -(-m // batch_size)
    pad = jnp.zeros((num * batch_size - m,) + xs.shape[1:], xs.dtype)
    chunks = jnp.concatenate([xs, pad]).reshape((num, batch_size) + xs.shape[1:])
    return jax.lax.map(predict_labels, chunks).reshape(-1)[:m]


def labels_from_logits(logits_fn: LogitsFn) -> PredictLabels:
    """Turn ``logits_fn(x) -> [M, C]`` (logits or probabilities) into ``predict_labels``.

    Args:
      logits_fn: JAX-traceable function mapping ``x [M, ...]`` to scores ``[M, C]``.

    Returns:
      A function ``x -> argmax(logits_fn(x), axis=-1)``, int32 ``[M]``.

    Raises:
      ValueError: if ``logits_fn`` is not callable.

    Example:
        >>> import jax.numpy as jnp
        >>> predict = labels_from_logits(lambda x: jnp.stack([-x[:, 0], x[:, 0]], axis=-1))
        >>> predict(jnp.array([[1.0], [-2.0]])).tolist()
        [1, 0]
    """
    _check_callable("logits_fn", logits_fn)

    def predict_labels(x: jax.Array) -> jax.Array:
        return jnp.argmax(logits_fn(x), axis=-1).astype(jnp.int32)

    return predict_labels


# --------------------------------------------------------------------------------------------
# Gap attack.
# --------------------------------------------------------------------------------------------


def gap_attack_scores(pred_labels: jax.Array, labels: jax.Array) -> jax.Array:
    """Gap (correctness) attack of Yeom et al.: score 1 if correctly classified, else 0.

    Args:
      pred_labels: ``[...]`` integer labels predicted by the target.
      labels: ``[...]`` integer true labels, same shape.

    Returns:
      float32 ``[...]``: 1.0 where ``pred_labels == labels``, else 0.0 (higher = member).

    Raises:
      ValueError: on shape mismatch or non-integer inputs.

    Example:
        >>> import jax.numpy as jnp
        >>> gap_attack_scores(jnp.array([0, 2, 1]), jnp.array([0, 1, 1])).tolist()
        [1.0, 0.0, 1.0]
    """
    if shape_of(pred_labels) != shape_of(labels):
        raise ValueError(
            f"pred_labels and labels must have the same shape, got {shape_of(pred_labels)} "
            f"and {shape_of(labels)}"
        )
    for name, arr in (("pred_labels", pred_labels), ("labels", labels)):
        if not np.issubdtype(dtype_of(arr), np.integer):
            raise ValueError(f"{name} must be integer class indices, got dtype {dtype_of(arr)}")
    return (jnp.asarray(pred_labels) == jnp.asarray(labels)).astype(jnp.float32)


# --------------------------------------------------------------------------------------------
# Noise robustness (binary features).
# --------------------------------------------------------------------------------------------


def noise_robustness_scores(
    predict_labels: PredictLabels,
    x: jax.Array,
    labels: jax.Array,
    key: jax.Array,
    *,
    flip_rate: float,
    num_variants: int,
    batch_size: int,
) -> jax.Array:
    """Fraction of random bit-flip variants of each example that stay correctly classified.

    Choquette-Choo et al.'s noise-robustness attack for binary features (HAMP's boundary attack
    on tabular data). Variant ``v`` of example ``n`` flips each feature independently with
    probability ``flip_rate``; its noise is drawn from ``fold_in(key, n * num_variants + v)``, so
    the result does not depend on ``batch_size``. The ``N * num_variants`` queries are made in
    ``ceil(N * num_variants / batch_size)`` calls of static size ``batch_size`` (the last one
    padded); noisy copies are built per batch, never all at once.

    Args:
      predict_labels: target, ``x [batch_size, *F] -> int [batch_size]`` (JAX-traceable).
      x: ``[N, *F]`` features in {0, 1} (any numeric dtype; the variants keep it).
      labels: ``[N]`` integer true labels.
      key: a jax.random key.
      flip_rate: probability of flipping each feature, in [0, 1].
      num_variants: noisy copies per example, >= 1.
      batch_size: queries per call of ``predict_labels`` (a performance setting), >= 1.

    Returns:
      float32 ``[N]`` in [0, 1], a multiple of ``1 / num_variants`` (higher = member).

    Raises:
      ValueError: on a bad argument (non-binary ``x``, rates, sizes, key, target output).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> predict = lambda x: (x.sum(-1) > 2).astype(jnp.int32)  # "at least 3 ones"
        >>> x = jnp.array([[1, 1, 1, 0], [1, 1, 1, 1]])
        >>> s = noise_robustness_scores(predict, x, jnp.array([1, 1]), jax.random.key(0),
        ...                             flip_rate=0.2, num_variants=200, batch_size=64)
        >>> bool(s[1] > s[0])  # the example with more margin is more robust
        True
    """
    n = _check_examples_labels(x, labels)
    _check_predict_labels(predict_labels, x)
    check_key(key)
    if is_concrete(x) and not np.all(np.isin(np.asarray(x), (0, 1))):
        raise ValueError("x must contain only binary features (0 or 1)")
    check_in_range("flip_rate", flip_rate, 0.0, 1.0, high_inclusive=True)
    num_variants = check_positive_int("num_variants", num_variants)
    batch_size = check_positive_int("batch_size", batch_size)

    def run(x: jax.Array, labels: jax.Array, key: jax.Array) -> jax.Array:
        total = n * num_variants
        num_batches = -(-total // batch_size)
        ids = jnp.arange(num_batches * batch_size, dtype=jnp.int32).reshape(num_batches, batch_size)
        feat = x.shape[1:]

        def one_batch(batch_ids: jax.Array) -> jax.Array:
            example = jnp.minimum(batch_ids // num_variants, n - 1)  # padded ids reuse the last one
            keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, batch_ids)
            bits = lambda k, shape: jax.random.bernoulli(k, flip_rate, shape)  # noqa: E731
            flips = jax.vmap(lambda k: _flat_random(bits, k, feat))(keys)
            clean = x[example]
            noisy = jnp.where(flips, (1 - clean).astype(x.dtype), clean)
            return predict_labels(noisy) == labels[example]

        correct = jax.lax.map(one_batch, ids).reshape(-1)[:total].reshape(n, num_variants)
        return jnp.mean(correct.astype(jnp.float32), axis=1)

    return jax.jit(run)(jnp.asarray(x), jnp.asarray(labels), key)


# --------------------------------------------------------------------------------------------
# Augmentation (translations and flips).
# --------------------------------------------------------------------------------------------

_PAD_MODES = {"zeros": "constant", "reflect": "reflect"}


def _augmentation_list(max_shift: int, flips: bool) -> np.ndarray:
    """Rows ``(flip, dy, dx)``; flip-major, then dy, then dx, each ascending."""
    rng = range(-max_shift, max_shift + 1)
    return np.array(
        [(f, dy, dx) for f in ((0, 1) if flips else (0,)) for dy in rng for dx in rng], np.int32
    )


def augmentation_correct(
    predict_labels: PredictLabels,
    x: jax.Array,
    labels: jax.Array,
    *,
    max_shift: int = 1,
    flips: bool = True,
    padding: str = "zeros",
    batch_size: int | None = None,
) -> jax.Array:
    """Per-augmentation correctness for the augmentation attack (Choquette-Choo et al.).

    The augmentations are every translation by ``(dy, dx)`` with ``|dy|, |dx| <= max_shift``
    (a ``(2 d + 1)^2`` grid, identity included), each with and without a horizontal flip when
    ``flips``: ``K = (2 d + 1)^2 * (2 if flips else 1)`` augmentations, ordered flip-major (no
    flip first), then ``dy``, then ``dx`` ascending. A translation moves the content by ``dy``
    rows down and ``dx`` columns right: ``aug[i, j] = x[i - dy, j - dx]``; pixels that come
    from outside the image are 0 (``padding="zeros"``: for normalized images that is the
    normalization mean) or mirrored without repeating the edge (``"reflect"``, NumPy's
    ``np.pad(mode="reflect")``). The flip is applied before the translation.

    Args:
      predict_labels: target, ``x [M, H, W, C] -> int [M]`` (JAX-traceable).
      x: ``[N, H, W, C]`` float images (NHWC).
      labels: ``[N]`` integer true labels.
      max_shift: largest translation ``d`` in pixels, in ``[0, min(H, W) - 1]``.
      flips: also use horizontally flipped images.
      padding: ``"zeros"`` or ``"reflect"``.
      batch_size: examples per call of ``predict_labels`` (performance setting; None = all N).

    Returns:
      bool ``[N, K]``: whether augmentation ``k`` of example ``n`` is classified correctly.

    Raises:
      ValueError: on a bad argument.

    Example:
        >>> import jax.numpy as jnp
        >>> predict = lambda x: (x[:, 1, 1, 0] > 0.5).astype(jnp.int32)  # looks at one pixel
        >>> x = jnp.zeros((1, 4, 4, 1)).at[0, 1, 1, 0].set(1.0)
        >>> augmentation_correct(predict, x, jnp.array([1]), flips=False).astype(int).tolist()
        [[0, 0, 0, 0, 1, 0, 0, 0, 0]]
    """
    check_ndim("x", x, 4)
    _check_examples_labels(x, labels)
    _check_predict_labels(predict_labels, x)
    _, h, w, _ = shape_of(x)
    max_shift = check_int_in_range("max_shift", max_shift, 0, min(h, w) - 1)
    check_bool("flips", flips)
    check_choice("padding", padding, tuple(_PAD_MODES))
    if batch_size is not None:
        batch_size = check_positive_int("batch_size", batch_size)

    def run(x: jax.Array, labels: jax.Array) -> jax.Array:
        d = max_shift
        pads = ((0, 0), (d, d), (d, d), (0, 0))
        padded = jnp.stack([
            jnp.pad(x, pads, mode=_PAD_MODES[padding]),
            jnp.pad(x[:, :, ::-1, :], pads, mode=_PAD_MODES[padding]),
        ])
        augs = jnp.asarray(_augmentation_list(d, bool(flips)))

        def one_aug(aug: jax.Array) -> jax.Array:
            src = jax.lax.dynamic_index_in_dim(padded, aug[0], keepdims=False)
            zero = jnp.zeros((), jnp.int32)
            img = jax.lax.dynamic_slice(src, (zero, d - aug[1], d - aug[2], zero), x.shape)
            return _predict_chunked(predict_labels, img, batch_size) == labels

        return jax.lax.map(one_aug, augs).T

    return jax.jit(run)(jnp.asarray(x), jnp.asarray(labels))


def augmentation_scores(
    predict_labels: PredictLabels,
    x: jax.Array,
    labels: jax.Array,
    *,
    max_shift: int = 1,
    flips: bool = True,
    padding: str = "zeros",
    batch_size: int | None = None,
) -> jax.Array:
    """Fraction of translated / flipped copies classified correctly (augmentation attack).

    Deterministic (no key). The augmentations, their order and the padding are those of
    :func:`augmentation_correct`; the score is the mean of its rows. HAMP evaluates
    translations only (``flips=False``); Choquette-Choo et al. also use flips.

    Args:
      predict_labels: target, ``x [M, H, W, C] -> int [M]`` (JAX-traceable).
      x: ``[N, H, W, C]`` float images (NHWC).
      labels: ``[N]`` integer true labels.
      max_shift: largest translation ``d`` in pixels, in ``[0, min(H, W) - 1]``.
      flips: also use horizontally flipped images.
      padding: ``"zeros"`` or ``"reflect"``.
      batch_size: examples per call of ``predict_labels`` (performance setting; None = all N).

    Returns:
      float32 ``[N]`` in [0, 1] (higher = member).

    Raises:
      ValueError: on a bad argument.

    Example:
        >>> import jax.numpy as jnp
        >>> predict = lambda x: (x[:, 1, 1, 0] > 0.5).astype(jnp.int32)
        >>> x = jnp.zeros((1, 4, 4, 1)).at[0, 1, 1, 0].set(1.0)
        >>> augmentation_scores(predict, x, jnp.array([1]), flips=False).tolist()  # 1 of 9
        [0.111...]
    """
    correct = augmentation_correct(
        predict_labels, x, labels, max_shift=max_shift, flips=flips, padding=padding,
        batch_size=batch_size,
    )
    return jnp.mean(correct.astype(jnp.float32), axis=1)


# --------------------------------------------------------------------------------------------
# HopSkipJump (decision-based boundary distance).
# --------------------------------------------------------------------------------------------


def hop_skip_jump_distance(
    predict_labels: PredictLabels,
    x: jax.Array,
    labels: jax.Array,
    key: jax.Array,
    *,
    num_iterations: int,
    num_evals: int = 100,
    gamma: float = 1.0,
    step_search_steps: int = 10,
    binary_search_steps: int | None = None,
    init_trials: int = 10,
    init_scale: float = 1.0,
    box: Box | None = None,
) -> jax.Array:
    """L2 distance to the decision boundary found by untargeted HopSkipJump (Chen et al. 2020).

    Uses only predicted labels. Per example, batched over all N examples at once:

    1. Initialization: ``init_trials`` random points, all queried at once; the first that is
       misclassified is kept. With ``box=(lo, hi)`` they are uniform in the box (as in HSJA);
       with ``box=None`` (normalized inputs without a fixed range) trial ``t`` is
       ``x + init_scale * 2**t * N(0, I)``. A binary search on the segment from ``x`` to that
       point moves it to the boundary.
    2. Each iteration ``t = 1..num_iterations``: estimate the boundary normal at the current
       boundary point ``x_b`` from ``num_evals`` random unit directions ``u`` probed at radius
       ``delta = sqrt(D) * theta * ||x_b - x||``, as ``mean((phi - mean phi) u)`` with
       ``phi = +1`` if adversarial else ``-1`` (no baseline when all ``phi`` agree); geometric
       step search: the largest ``eps = ||x_b - x|| / sqrt(t) / 2**k``, ``k < step_search_steps``,
       for which ``x_b + eps * grad`` is adversarial (stay at ``x_b`` if none is); binary search
       from ``x`` to that point gives the next ``x_b``.
    3. Return the smallest ``||x_b - x||`` over the boundary points visited (each one is
       verified misclassified, so every value is an upper bound on the true distance).

    ``theta = gamma / D**1.5`` (HSJA's L2 setting, ``D`` = number of features); the binary
    searches run a fixed ``binary_search_steps`` halvings (default ``ceil(log2(1 / theta))``,
    HSJA's tolerance) and return the adversarial end of the bracket. Deviations from HSJA,
    made for static shapes: a fixed ``num_evals`` per iteration (HSJA grows it as
    ``100 sqrt(t)``), ``delta`` from the distance also at ``t = 1`` (HSJA uses
    ``0.1 * (hi - lo)`` there), the step search probes all ``step_search_steps`` sizes at once
    and may give up, and there is no early stopping. Queries per example:
    ``init_trials + S + num_iterations * (num_evals + step_search_steps + S)`` with ``S`` the
    binary-search steps (plus one query of ``x`` itself); each call of ``predict_labels``
    receives ``N * init_trials``, ``N * num_evals``, ``N * step_search_steps`` or ``N`` points.

    Args:
      predict_labels: target, ``x [M, *F] -> int [M]`` (JAX-traceable).
      x: ``[N, *F]`` float inputs.
      labels: ``[N]`` integer true labels.
      key: a jax.random key.
      num_iterations: gradient-estimation iterations, >= 1.
      num_evals: random directions per gradient estimate, >= 1.
      gamma: HSJA's ``gamma`` (> 0), sets ``theta``.
      step_search_steps: step sizes tried per iteration, >= 1.
      binary_search_steps: halvings per binary search, >= 1, or None for HSJA's tolerance.
      init_trials: random starting points tried per example, >= 1.
      init_scale: noise scale of the first starting point when ``box`` is None, > 0.
      box: None (unbounded inputs, no clipping) or ``(lo, hi)``: inputs and all queries lie in
        ``[lo, hi]`` (queries are clipped).

    Returns:
      float32 ``[N]``: the L2 distance (higher = member); 0 for examples the target already
      misclassifies; ``+inf`` where no misclassified starting point was found (see
      :func:`distance_to_score`).

    Raises:
      ValueError: on a bad argument.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> predict = lambda x: (x[:, 0] > 0).astype(jnp.int32)  # boundary x_0 = 0
        >>> x = jnp.array([[2.0, 0.0], [0.5, 1.0]])
        >>> d = hop_skip_jump_distance(predict, x, jnp.array([1, 1]), jax.random.key(0),
        ...                            num_iterations=10, num_evals=50, gamma=0.01)
        >>> [round(float(v), 1) for v in d]
        [2.0, 0.5]
    """
    n = _check_examples_labels(x, labels)
    if not np.issubdtype(dtype_of(x), np.floating):
        raise ValueError(f"x must have a floating dtype, got {dtype_of(x)}")
    _check_predict_labels(predict_labels, x)
    check_key(key)
    num_iterations = check_positive_int("num_iterations", num_iterations)
    num_evals = check_positive_int("num_evals", num_evals)
    check_positive("gamma", gamma)
    step_search_steps = check_positive_int("step_search_steps", step_search_steps)
    if binary_search_steps is not None:
        binary_search_steps = check_positive_int("binary_search_steps", binary_search_steps)
    init_trials = check_positive_int("init_trials", init_trials)
    check_positive("init_scale", init_scale)
    box = _check_box(box, x)

    feat = shape_of(x)[1:]
    dim = int(np.prod(feat))
    theta = gamma / dim**1.5
    if binary_search_steps is None:
        binary_search_steps = max(1, math.ceil(math.log2(1.0 / theta)))

    def run(x: jax.Array, labels: jax.Array, key: jax.Array) -> jax.Array:
        clip = (lambda v: jnp.clip(v, box[0], box[1])) if box is not None else (lambda v: v)

        def adversarial(points: jax.Array) -> jax.Array:
            """``points [N, M, *F] -> bool [N, M]``: label differs from the true one."""
            m = points.shape[1]
            pred = predict_labels(points.reshape((n * m,) + feat)).reshape(n, m)
            return pred != labels[:, None]

        def binary_search(adv_points: jax.Array) -> jax.Array:
            """Move ``adv_points [N, *F]`` towards ``x`` while staying adversarial."""

            def body(_, bracket):
                lo, hi = bracket
                mid = 0.5 * (lo + hi)
                m = _expand(mid, x.ndim)
                is_adv = adversarial(((1 - m) * x + m * adv_points)[:, None])[:, 0]
                return jnp.where(is_adv, lo, mid), jnp.where(is_adv, mid, hi)

            lo, hi = jnp.zeros(n, x.dtype), jnp.ones(n, x.dtype)
            _, hi = jax.lax.fori_loop(0, binary_search_steps, body, (lo, hi))
            h = _expand(hi, x.ndim)
            return (1 - h) * x + h * adv_points

        init_key, loop_key = jax.random.split(key)
        trial_shape = (n, init_trials) + feat
        if box is not None:
            trials = _flat_random(jax.random.uniform, init_key, trial_shape, x.dtype, box[0], box[1])
        else:
            scales = init_scale * 2.0 ** jnp.arange(init_trials, dtype=x.dtype)
            noise = _flat_random(jax.random.normal, init_key, trial_shape, x.dtype)
            trials = x[:, None] + _expand(scales, noise.ndim - 1)[None] * noise
        trial_adv = adversarial(trials)
        found = jnp.any(trial_adv, axis=1)
        first = jnp.argmax(trial_adv, axis=1)
        start = jnp.take_along_axis(trials, _expand(first, trials.ndim)[:, :1], axis=1)[:, 0]
        start = jnp.where(_expand(found, x.ndim), start, x)
        boundary = binary_search(start)
        dist = _l2(boundary - x)
        step_scales = 2.0 ** -jnp.arange(step_search_steps, dtype=x.dtype)

        def iteration(t, state):
            boundary, dist, best = state
            k_dir = jax.random.fold_in(loop_key, t)
            # Gradient-direction estimate from sign queries around the boundary point.
            delta = jnp.sqrt(jnp.asarray(dim, x.dtype)) * theta * dist
            safe_delta = jnp.where(delta > 0, delta, 1.0)
            u = _flat_random(jax.random.normal, k_dir, (n, num_evals) + feat, x.dtype)
            u = u / jnp.maximum(_expand(_l2(u, 2), u.ndim), 1e-12)
            probes = clip(boundary[:, None] + _expand(safe_delta, u.ndim) * u)
            u = (probes - boundary[:, None]) / _expand(safe_delta, u.ndim)
            phi = jnp.where(adversarial(probes), 1.0, -1.0).astype(x.dtype)
            mean_phi = jnp.mean(phi, axis=1, keepdims=True)
            centred = jnp.where(jnp.abs(mean_phi) == 1.0, phi, phi - mean_phi)
            grad = jnp.mean(_expand(centred, u.ndim) * u, axis=1)
            grad = grad / jnp.maximum(_expand(_l2(grad), grad.ndim), 1e-12)
            # Geometric step search: the largest step that stays adversarial.
            eps = dist[:, None] / jnp.sqrt(t.astype(x.dtype)) * step_scales[None]  # [N, S]
            cands = clip(boundary[:, None] + _expand(eps, u.ndim) * grad[:, None])
            ok = adversarial(cands)
            pick = jnp.argmax(ok, axis=1)
            moved = jnp.take_along_axis(cands, _expand(pick, cands.ndim)[:, :1], axis=1)[:, 0]
            moved = jnp.where(_expand(jnp.any(ok, axis=1), x.ndim), moved, boundary)
            boundary = binary_search(moved)
            dist = _l2(boundary - x)
            return boundary, dist, jnp.minimum(best, dist)

        _, _, best = jax.lax.fori_loop(1, num_iterations + 1, iteration, (boundary, dist, dist))
        misclassified = predict_labels(x) != labels
        inf = jnp.asarray(jnp.inf, best.dtype)
        return jnp.where(misclassified, 0.0, jnp.where(found, best, inf)).astype(jnp.float32)

    return jax.jit(run)(jnp.asarray(x), jnp.asarray(labels), key)


# --------------------------------------------------------------------------------------------
# Carlini-Wagner L2 (white-box boundary distance).
# --------------------------------------------------------------------------------------------


def _margin(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``z_y - max_{i != y} z_i`` per row."""
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
    z_y = jnp.sum(jnp.where(onehot, logits, 0.0), axis=-1)
    return z_y - jnp.max(jnp.where(onehot, -jnp.inf, logits), axis=-1)


def cw_l2_distance(
    logits_fn: LogitsFn,
    x: jax.Array,
    labels: jax.Array,
    *,
    steps: int,
    lr: float,
    c: float = 1e-2,
    binary_search_steps: int = 5,
    kappa: float = 0.0,
    box: Box | None = None,
) -> jax.Array:
    """Smallest L2 perturbation found by untargeted Carlini-Wagner L2 (white-box).

    Minimizes ``||x' - x||^2 + c * max(z_y(x') - max_{i != y} z_i(x'), -kappa)`` per example
    with optax Adam (learning rate ``lr``, ``steps`` steps, restarted from ``x`` in each
    binary-search round). With ``box=(lo, hi)`` the variable is ``w`` with
    ``x' = lo + (hi - lo) (tanh(w) + 1) / 2`` (CW's change of variables); with ``box=None``
    (normalized inputs without a fixed range) the variable is ``x'`` itself. ``c`` starts at
    ``c`` and follows CW's per-example binary search over ``binary_search_steps`` rounds: after
    a round that succeeded, ``upper = min(upper, c)``; otherwise ``lower = max(lower, c)``;
    then ``c = (lower + upper) / 2`` if an upper bound is known, else ``c * 10``. An iterate
    succeeds when ``max_{i != y} z_i - z_y > kappa`` (for ``kappa = 0``: its label flips); the
    result is the smallest ``||x' - x||`` over all successful iterates of all rounds.

    Args:
      logits_fn: target logits, ``x [N, *F] -> [N, C]``, differentiable in JAX.
      x: ``[N, *F]`` float inputs.
      labels: ``[N]`` integer true labels in ``[0, C)``.
      steps: Adam steps per round, >= 1.
      lr: Adam learning rate, > 0.
      c: initial trade-off constant, > 0.
      binary_search_steps: rounds of the search over ``c``, >= 1.
      kappa: confidence margin, >= 0.
      box: None or ``(lo, hi)`` with every ``x`` inside.

    Returns:
      float32 ``[N]``: the L2 distance (higher = member); 0 for examples already
      misclassified; ``+inf`` where no iterate succeeded (see :func:`distance_to_score`).

    Raises:
      ValueError: on a bad argument.

    Example:
        >>> import jax.numpy as jnp
        >>> logits_fn = lambda x: jnp.stack([-x[:, 0], x[:, 0]], axis=-1)  # boundary x_0 = 0
        >>> d = cw_l2_distance(logits_fn, jnp.array([[1.0, 3.0]]), jnp.array([1]),
        ...                    steps=200, lr=0.01, c=1.0)
        >>> round(float(d[0]), 1)
        1.0
    """
    _check_callable("logits_fn", logits_fn)
    n = _check_examples_labels(x, labels)
    if not np.issubdtype(dtype_of(x), np.floating):
        raise ValueError(f"x must have a floating dtype, got {dtype_of(x)}")
    out = jax.eval_shape(logits_fn, jax.ShapeDtypeStruct(shape_of(x), dtype_of(x)))
    if not hasattr(out, "shape") or len(out.shape) != 2 or out.shape[0] != n or out.shape[1] < 2:
        raise ValueError(
            f"logits_fn must return logits of shape (x.shape[0], C) with C >= 2, got "
            f"{getattr(out, 'shape', out)}"
        )
    check_labels(labels, int(out.shape[1]))
    steps = check_positive_int("steps", steps)
    check_positive("lr", lr)
    check_positive("c", c)
    binary_search_steps = check_positive_int("binary_search_steps", binary_search_steps)
    check_nonnegative("kappa", kappa)
    box = _check_box(box, x)

    def run(x: jax.Array, labels: jax.Array) -> jax.Array:
        if box is None:
            to_input = lambda w: w  # noqa: E731
            w0 = x
        else:
            lo, hi = box
            to_input = lambda w: lo + (hi - lo) * (jnp.tanh(w) + 1) / 2  # noqa: E731
            w0 = jnp.arctanh(jnp.clip((x - lo) / (hi - lo) * 2 - 1, -1 + 1e-6, 1 - 1e-6))
        opt = optax.adam(lr)

        def evaluate(w: jax.Array, const: jax.Array):
            adv = to_input(w)
            l2sq = jnp.sum(jnp.square(adv - x), axis=tuple(range(1, x.ndim)))
            margin = _margin(logits_fn(adv), labels)
            loss = jnp.sum(l2sq + const * jnp.maximum(margin, -kappa))
            return loss, (l2sq, margin < -kappa)

        grad_fn = jax.value_and_grad(evaluate, has_aux=True)

        def record(best, l2sq, success):
            return jnp.where(success & (l2sq < best), l2sq, best)

        def one_round(_, state):
            const, lower, upper, best = state

            def step(_, inner):
                w, opt_state, best, succeeded = inner
                (_, (l2sq, success)), g = grad_fn(w, const)
                updates, opt_state = opt.update(g, opt_state, w)
                best = record(best, l2sq, success)
                return optax.apply_updates(w, updates), opt_state, best, succeeded | success

            init = (w0, opt.init(w0), best, jnp.zeros(n, bool))
            w, _, best, succeeded = jax.lax.fori_loop(0, steps, step, init)
            _, (l2sq, success) = evaluate(w, const)
            best, succeeded = record(best, l2sq, success), succeeded | success
            upper = jnp.where(succeeded, jnp.minimum(upper, const), upper)
            lower = jnp.where(succeeded, lower, jnp.maximum(lower, const))
            const = jnp.where(jnp.isfinite(upper), 0.5 * (lower + upper), const * 10)
            return const, lower, upper, best

        full = jnp.full((n,), jnp.inf, x.dtype)
        state = (jnp.full((n,), c, x.dtype), jnp.zeros((n,), x.dtype), full, full)
        best = jax.lax.fori_loop(0, binary_search_steps, one_round, state)[3]
        misclassified = jnp.argmax(logits_fn(x), axis=-1) != labels
        return jnp.where(misclassified, 0.0, jnp.sqrt(best)).astype(jnp.float32)

    return jax.jit(run)(jnp.asarray(x), jnp.asarray(labels))


def distance_to_score(distances: jax.Array) -> jax.Array:
    """Make boundary distances usable as attack scores: ``+inf`` -> largest finite + 1.

    A failed attack (``+inf``) means the example is at least as far from the boundary as any
    the attack could move, so it ranks above every finite distance. If no value is finite, all
    become 1.

    Args:
      distances: ``[N]`` float, each ``>= 0`` or ``+inf`` (NaN is rejected).

    Returns:
      ``[N]`` finite scores of the same dtype (higher = member).

    Raises:
      ValueError: if ``distances`` is not 1-D or holds a negative value or NaN.

    Example:
        >>> import jax.numpy as jnp
        >>> distance_to_score(jnp.array([0.5, jnp.inf, 2.0])).tolist()
        [0.5, 3.0, 2.0]
    """
    check_ndim("distances", distances, 1)
    check_in_range("distances", distances, 0.0, math.inf, high_inclusive=True)
    d = jnp.asarray(distances)
    finite = jnp.isfinite(d)
    top = jnp.max(jnp.where(finite, d, 0.0), initial=0.0)
    return jnp.where(finite, d, top + 1).astype(d.dtype)
