"""Weighted Smoothing (WS): per-sample Gaussian noise on the predicted probabilities.

Tan et al., "Weighted Smoothing" membership-inference defense (slides; authors' public code).

Each training step perturbs every example's predicted probabilities with Gaussian noise whose
scale depends on how well the model already fits that example, then projects back onto the
simplex and takes the cross-entropy (Weighted Smoothing slides and the authors' code):

1. ``p = softmax(z)``; ``margin = top1(p) - top2(p)`` (from ``stop_gradient(p)``);
2. ``noise = eps * margin * noise_scale`` with ``eps ~ N(0, sigma^2 I_C)``; ``p <- p + noise``;
3. ``q = |p| / sum_c |p_c|``, ``q = clip(q, floor, 1)``; ``loss = -log q[y]``.

``noise_scale`` comes from :func:`ws_noise_scale`: after each epoch (from the end of epoch
``WS_NOISE_START_EPOCH - 1`` on) the whole training set is scored (:func:`ws_sample_scores`,
modified entropy by default, eval mode), the scores are z-scored within each class and the
factor ``1 - z`` (well-fitted, low-score samples get more noise) is stored per sample. The
training step gathers it by example index. Before that (epochs 0-3) pass zeros: the loss is
then plain cross-entropy (up to the ``floor`` clip).

:func:`ws_optimizer` is the authors' optimizer: global-norm clipping at 10, then Adam with the
learning rate multiplied by a constant factor once per epoch.

All array functions are pure JAX and work under ``jit`` and ``vmap``; ``sigma`` may be traced
(e.g. vmapped over :data:`WS_SIGMA_GRID`).
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
import optax

from hampjax import validation
from hampjax.scores import modified_entropy, true_class_log_prob

__all__ = [
    "ws_sample_scores",
    "ws_noise_scale",
    "weighted_smoothing_loss",
    "ws_optimizer",
    "WS_NOISE_START_EPOCH",
    "WS_SIGMA_GRID",
    "WS_DEFAULT_FLOOR",
    "WS_SCORES",
    "WS_NORMALIZATIONS",
    "WS_WEIGHTS",
    "WS_NOISE_TARGETS",
]

Score = Literal["mentr", "cross_entropy"]
Normalization = Literal["zscore", "minmax"]
Weight = Literal["one_minus_z", "relu_one_minus_z"]
NoiseOn = Literal["probs", "logits"]

WS_SCORES = ("mentr", "cross_entropy")
WS_NORMALIZATIONS = ("zscore", "minmax")
WS_WEIGHTS = ("one_minus_z", "relu_one_minus_z")
WS_NOISE_TARGETS = ("probs", "logits")

WS_NOISE_START_EPOCH = 4
"""First 0-based epoch trained with noise (weights are computed at the end of epoch 3)."""

WS_SIGMA_GRID = (0.0, 1e-5, 1e-4, 6e-4, 1e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.2, 1.0)
"""The authors' CIFAR-10 sigma sweep; ``sigma = 0`` is the undefended model."""

WS_DEFAULT_FLOOR = math.exp(-36.0)
"""Lower clip of the renormalized probabilities (the authors' ``e^-36``)."""


# --------------------------------------------------------------------------------------------
# Weights.


def _cross_entropy_score(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return -true_class_log_prob(logits, labels)


_SCORE_FNS = {"mentr": modified_entropy, "cross_entropy": _cross_entropy_score}


def ws_sample_scores(logits: jax.Array, labels: jax.Array, *, score: Score = "mentr") -> jax.Array:
    """Per-sample fit score used to weight WS noise (lower = better fitted).

    Args:
      logits: ``[..., C]`` float, eval-mode outputs on the training set.
      labels: ``[...]`` integer in ``[0, C)``.
      score: ``"mentr"`` (default; modified entropy, :func:`hampjax.scores.modified_entropy`)
        or ``"cross_entropy"`` (ablation; ``-log p_y``).

    Returns:
      ``[...]`` float scores.

    Raises:
      ValueError: on a shape mismatch, fewer than 2 classes, labels out of range or an
        unknown ``score``.

    Example:
      >>> import jax.numpy as jnp
      >>> s = ws_sample_scores(jnp.array([[5.0, 0.0], [0.0, 0.0]]), jnp.array([0, 0]))
      >>> bool(s[0] < s[1])  # the confident, correct prediction scores lower
      True
    """
    validation.check_logits_labels(logits, labels)
    validation.check_finite("logits", logits)
    validation.check_choice("score", score, WS_SCORES)
    return _SCORE_FNS[score](jnp.asarray(logits), jnp.asarray(labels))


def _zscore(scores, labels, valid, spread, counts, num_classes):
    n = jnp.maximum(counts, 1.0)
    mean = jax.ops.segment_sum(scores, labels, num_segments=num_classes) / n
    dev = jnp.where(valid, scores - mean[labels], 0.0)
    var = jax.ops.segment_sum(dev * dev, labels, num_segments=num_classes) / n  # population
    std = jnp.sqrt(var)
    ok = spread & (std > 0)
    return jnp.where(ok[labels], dev / jnp.where(ok, std, 1.0)[labels], 0.0)


def _minmax(scores, labels, valid, spread, cmin, cmax):
    width = jnp.where(spread, cmax - cmin, 1.0)
    low = jnp.where(spread, cmin, 0.0)
    return jnp.where(valid & spread[labels], (scores - low[labels]) / width[labels], 0.0)


def ws_noise_scale(
    scores: jax.Array,
    labels: jax.Array,
    num_classes: int,
    *,
    normalization: Normalization = "zscore",
    weight: Weight = "one_minus_z",
    where: jax.Array | None = None,
) -> jax.Array:
    """Per-sample WS noise factor from class-wise normalized fit scores.

    Within each class ``c`` (over the valid samples), ``z = (s - mean_c) / std_c`` with the
    POPULATION std (``normalization="zscore"``, default), or
    ``z = (s - min_c) / (max_c - min_c)`` (``"minmax"``, ablation). No clipping. The factor is
    ``1 - z`` (``weight="one_minus_z"``, default, the authors' code: note the noise's
    effective scale is ``|1 - z|``, which grows again for ``z > 1``) or ``max(0, 1 - z)``
    (``"relu_one_minus_z"``, the slides' intended reading).

    Degenerate classes: where a class has no spread (a single member, or all its scores
    equal: ``max_c == min_c``), ``z = 0`` for its samples, so their factor is 1; no NaN.
    Empty classes do not matter. Invalid (masked) samples are left out of the class
    statistics and get factor 0 (no noise).

    Computed on device with ``jax.ops.segment_sum/min/max``; jit it with ``num_classes``
    (and the string options) static, e.g.
    ``jax.jit(ws_noise_scale, static_argnames=("num_classes",))``.

    Args:
      scores: ``[N]`` float per-sample scores over the whole training set
        (:func:`ws_sample_scores`).
      labels: ``[N]`` integer in ``[0, num_classes)``.
      num_classes: number of classes >= 2 (static Python int).
      normalization: ``"zscore"`` or ``"minmax"``.
      weight: ``"one_minus_z"`` or ``"relu_one_minus_z"``.
      where: optional ``[N]`` bool mask of samples that belong to the training set.

    Returns:
      ``[N]`` float noise factor (dtype of ``scores``), to be gathered by example index and
      passed as ``noise_scale`` to :func:`weighted_smoothing_loss`.

    Raises:
      ValueError: if ``scores`` is not 1-D or holds NaN/inf at a valid sample (one NaN would
        set its whole class to 1), ``labels``/``where`` have another shape, labels are out of
        range, ``num_classes < 2`` or an option is unknown.

    Example:
      >>> import jax.numpy as jnp
      >>> ws_noise_scale(jnp.array([1.0, 3.0, 5.0, 5.0]), jnp.array([0, 0, 1, 1]), 2).tolist()
      [2.0, 0.0, 1.0, 1.0]
    """
    num_classes = validation.check_num_classes(num_classes)
    if len(validation.shape_of(scores)) != 1:
        raise ValueError(f"scores must be 1-D [N], got shape {validation.shape_of(scores)}")
    validation.check_shape("labels", labels, validation.shape_of(scores), what="scores.shape")
    validation.check_labels(labels, num_classes)
    validation.check_choice("normalization", normalization, WS_NORMALIZATIONS)
    validation.check_choice("weight", weight, WS_WEIGHTS)
    if where is not None:
        validation.check_mask("where", where, validation.shape_of(scores))
    validation.check_finite("scores", scores, where=where)  # masked samples are left out

    scores = jnp.asarray(scores)
    if not jnp.issubdtype(scores.dtype, jnp.floating):
        scores = scores.astype(jnp.result_type(float))
    labels = jnp.asarray(labels).astype(jnp.int32)
    valid = jnp.ones(scores.shape, bool) if where is None else jnp.asarray(where)
    scores = jnp.where(valid, scores, 0.0)

    counts = jax.ops.segment_sum(valid.astype(scores.dtype), labels, num_segments=num_classes)
    cmin = jax.ops.segment_min(jnp.where(valid, scores, jnp.inf), labels, num_segments=num_classes)
    cmax = jax.ops.segment_max(jnp.where(valid, scores, -jnp.inf), labels, num_segments=num_classes)
    spread = cmax > cmin  # False for empty, single-member and constant classes.
    if normalization == "zscore":
        z = _zscore(scores, labels, valid, spread, counts, num_classes)
    else:
        z = _minmax(scores, labels, valid, spread, cmin, cmax)
    factor = 1.0 - z
    if weight == "relu_one_minus_z":
        factor = jnp.maximum(factor, 0.0)
    return jnp.where(valid, factor, 0.0)


# --------------------------------------------------------------------------------------------
# Loss.


def weighted_smoothing_loss(
    logits: jax.Array,
    labels: jax.Array,
    noise_scale: jax.Array,
    key: jax.Array,
    *,
    sigma: float | jax.Array,
    use_margin: bool = True,
    noise_on: NoiseOn = "probs",
    floor: float = WS_DEFAULT_FLOOR,
) -> jax.Array:
    """Per-example Weighted Smoothing loss (authors' training step; the caller takes the mean).

    With ``p = softmax(logits)`` and ``m = top1(p) - top2(p)`` of ``stop_gradient(p)``
    (``m = 1`` if ``use_margin=False``), the noise is exactly

        ``noise = stop_gradient(sigma * jax.random.normal(key, logits.shape, logits.dtype)
        * (m * noise_scale)[..., None])``

    ``noise_on="probs"`` (default): ``q = |p + noise| / sum_c |p_c + noise_c|``,
    ``loss = -log clip(q[y], floor, 1)``. ``noise_on="logits"`` (ablation):
    ``loss = -log_softmax(logits + noise)[y]`` (no floor). Gradients flow through the softmax,
    the absolute value and the renormalization, never through the noise (nor ``noise_scale``);
    a clipped ``q[y]`` gives zero gradient, as in the authors' code.

    ``noise_scale = 0`` (warm-up epochs) or ``sigma = 0`` gives plain cross-entropy, capped at
    ``-log floor`` (36 by default).

    Args:
      logits: ``[..., C]`` float, ``C >= 2`` (train-mode outputs).
      labels: ``[...]`` integer in ``[0, C)``.
      noise_scale: ``[...]`` float per-example factor (``ws_noise_scale(...)[indices]``), or
        zeros for the warm-up epochs.
      key: a ``jax.random`` key; use a fresh one every step (and per model).
      sigma: noise standard deviation, scalar >= 0 (may be traced: an invalid traced value
        gives a NaN loss).
      use_margin: multiply the noise by the top-1/top-2 margin (default True; False = ablation).
      noise_on: ``"probs"`` (default) or ``"logits"`` (ablation).
      floor: lower clip of the renormalized probabilities, in ``(0, 1)``; default ``e^-36``.

    Returns:
      ``[...]`` float per-example loss (dtype of ``logits``).

    Raises:
      ValueError: on NaN/inf in concrete ``logits`` or ``noise_scale`` (the message names the
        first index), a shape mismatch (labels and noise_scale must have shape
        ``logits.shape[:-1]``), fewer than 2 classes, labels out of range, ``sigma < 0``,
        ``floor`` outside ``(0, 1)``, an unknown ``noise_on`` or a ``key`` that is not a key.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> logits, labels = jnp.array([[2.0, 0.0, -1.0]]), jnp.array([0])
      >>> loss = weighted_smoothing_loss(logits, labels, jnp.zeros(1), jax.random.key(0),
      ...                                sigma=0.1)
      >>> bool(jnp.allclose(loss, -jax.nn.log_softmax(logits)[:, 0]))  # no noise: plain CE
      True
    """
    validation.check_logits_labels(logits, labels)
    validation.check_shape("noise_scale", noise_scale, validation.shape_of(labels), what="labels.shape")
    validation.check_finite("logits", logits)
    validation.check_finite("noise_scale", noise_scale)
    validation.check_key(key)
    validation.check_nonnegative("sigma", sigma)
    validation.check_scalar("sigma", sigma, allowed="[0, inf)")
    validation.check_in_range("floor", floor, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    validation.check_choice("noise_on", noise_on, WS_NOISE_TARGETS)
    if not isinstance(use_margin, bool):
        raise ValueError(f"use_margin must be a bool, got {use_margin!r}")

    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels).astype(jnp.int32)
    dtype = logits.dtype
    logp = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(logp)

    scale = jnp.asarray(noise_scale, dtype)
    if use_margin:
        top2 = jax.lax.top_k(jax.lax.stop_gradient(p), 2)[0]
        scale = (top2[..., 0] - top2[..., 1]) * scale
    eps = jnp.asarray(sigma, dtype) * jax.random.normal(key, logits.shape, dtype)
    noise = jax.lax.stop_gradient(eps * scale[..., None])

    if noise_on == "logits":
        noisy_logp = jax.nn.log_softmax(logits + noise, axis=-1)
        loss = -jnp.take_along_axis(noisy_logp, labels[..., None], axis=-1)[..., 0]
        return validation.nan_unless(_traced_ok(sigma, 0.5), loss)
    mag = jnp.abs(p + noise)
    q = mag / jnp.sum(mag, axis=-1, keepdims=True)
    q_y = jnp.take_along_axis(q, labels[..., None], axis=-1)[..., 0]
    loss = -jnp.log(jnp.clip(q_y, jnp.asarray(floor, dtype), 1.0))
    return validation.nan_unless(_traced_ok(sigma, floor), loss)


def _traced_ok(sigma, floor) -> jax.Array:
    """Invalid traced ``sigma``/``floor`` give NaN (concrete ones were rejected)."""
    return (validation.traced_in_range("sigma", sigma, 0.0, float("inf"))
            & validation.traced_in_range("floor", floor, 0.0, 1.0, low_inclusive=False))


# --------------------------------------------------------------------------------------------
# Optimizer.


def ws_optimizer(
    learning_rate: float,
    decay_per_epoch: float,
    steps_per_epoch: int,
    *,
    clip_norm: float = 10.0,
) -> optax.GradientTransformation:
    """The authors' WS optimizer: clip by global norm, then Adam with per-epoch lr decay.

    The learning rate at (0-based) step ``s`` is
    ``learning_rate * decay_per_epoch ** (s // steps_per_epoch)`` (staircase).
    Adam uses optax's defaults (b1 0.9, b2 0.999, eps 1e-8, as PyTorch's Adam); no weight
    decay.

    Args:
      learning_rate: initial learning rate > 0 (0.022 for CIFAR-10).
      decay_per_epoch: factor in ``(0, 1]`` applied once per epoch (0.991 for CIFAR-10).
      steps_per_epoch: optimizer steps per epoch, integer >= 1.
      clip_norm: global gradient-norm clip > 0 (default 10).

    Returns:
      An ``optax.GradientTransformation``.

    Raises:
      ValueError: on a non-positive ``learning_rate``/``clip_norm``, ``decay_per_epoch``
        outside ``(0, 1]`` or ``steps_per_epoch`` not an integer >= 1.

    Example:
      >>> import jax.numpy as jnp
      >>> opt = ws_optimizer(0.022, 0.991, steps_per_epoch=391)
      >>> state = opt.init({"w": jnp.zeros(3)})
    """
    validation.check_positive("learning_rate", learning_rate)
    validation.check_in_range(
        "decay_per_epoch", decay_per_epoch, 0.0, 1.0, low_inclusive=False, high_inclusive=True
    )
    steps_per_epoch = validation.check_positive_int("steps_per_epoch", steps_per_epoch)
    validation.check_positive("clip_norm", clip_norm)
    schedule = optax.exponential_decay(
        init_value=learning_rate,
        transition_steps=steps_per_epoch,
        decay_rate=decay_per_epoch,
        staircase=True,
    )
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(schedule))
