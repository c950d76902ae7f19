"""HAMP training-time defense: high-entropy soft labels and the entropy-regularized loss.

Chen & Pattabiraman, "Overconfidence is a Dangerous Thing: Mitigating Membership Inference
Attacks by Enforcing Less Confident Prediction", NDSS 2024.

HAMP trains on soft labels that put probability ``p`` on the true class and
``(1 - p) / (k - 1)`` on every other class, with ``p`` chosen so that the soft label's entropy
reaches ``entropy_threshold * ln k``, and adds an entropy regularizer:

    L = KL(soft_label || softmax(z)) - alpha * H(softmax(z))

Every function here is pure JAX and works under ``jit`` and ``vmap``; ``entropy_threshold``
may be a traced value, so a batch of models with different thresholds can be trained in one
vmapped program. A traced ``entropy_threshold`` outside [0, 1) (or a traced ``alpha < 0``)
gives NaN outputs, never a valid-looking label; :func:`hampjax.validation.checked` raises
the concrete path's message instead.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from hampjax import validation
from hampjax.scores import entropy

__all__ = [
    "soft_label_entropy",
    "soft_label_probability",
    "hamp_soft_labels",
    "hamp_loss",
    "SOFT_LABEL_METHODS",
    "KL_REDUCTIONS",
]

SoftLabelMethod = Literal["grid", "exact"]
KlReduction = Literal["sum", "mean_over_classes"]

SOFT_LABEL_METHODS = ("grid", "exact")
KL_REDUCTIONS = ("sum", "mean_over_classes")

# The authors' search moves probability mass off the true class in steps of 0.01.
_GRID_STEPS = 100
_BISECTION_ITERATIONS = 64


def soft_label_entropy(p: jax.Array, num_classes: int) -> jax.Array:
    """Entropy (nats) of the soft label with ``p`` on one class and the rest spread evenly.

    ``H(p) = -p ln p - (1 - p) ln((1 - p) / (k - 1))``; exact at ``p = 1`` (0) and
    ``p = 1/k`` (``ln k``).

    Args:
      p: probability on the true class, any shape, values in [0, 1].
      num_classes: k >= 2 (static).

    Returns:
      Entropy with the shape of ``p``.
    """
    num_classes = validation.check_num_classes(num_classes)
    validation.check_in_range("p", p, 0.0, 1.0, high_inclusive=True)
    p = jnp.asarray(p, dtype=jnp.result_type(float))
    q = (1.0 - p) / (num_classes - 1)
    return -xlogy(p, p) - (num_classes - 1) * xlogy(q, q)


def _grid_probability(num_classes: int, target: jax.Array) -> jax.Array:
    # Candidates 1.00, 0.99, ..., 0.00 in the order the authors' loop visits them; the
    # answer is the first one whose entropy reaches the target. The uniform label
    # (p = 1/k, entropy ln k > target) always lies within 0.01 of some candidate, and
    # entropy is decreasing on [1/k, 1], so the first hit is at p >= 1/k - 0.01.
    steps = jnp.arange(_GRID_STEPS + 1)
    candidates = (_GRID_STEPS - steps) / _GRID_STEPS
    reached = soft_label_entropy(candidates, num_classes) >= target
    return candidates[jnp.argmax(reached)]


def _exact_probability(num_classes: int, target: jax.Array) -> jax.Array:
    # Bisection for H(p) = target on [1/k, 1], where H falls from ln k to 0. Keeps
    # H(lo) >= target >= H(hi); returns lo, the largest p found whose entropy reaches the
    # target, so the returned label always satisfies the constraint.
    dtype = jnp.result_type(float)
    lo = jnp.asarray(1.0 / num_classes, dtype)
    hi = jnp.asarray(1.0, dtype)

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        ok = soft_label_entropy(mid, num_classes) >= target
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTION_ITERATIONS, body, (lo, hi))
    return jnp.where(target <= 0, jnp.asarray(1.0, dtype), lo)


_PROBABILITY_METHODS = {"grid": _grid_probability, "exact": _exact_probability}


def soft_label_probability(
    num_classes: int,
    entropy_threshold: float | jax.Array,
    *,
    method: SoftLabelMethod = "grid",
) -> jax.Array:
    """Probability on the true class of HAMP's high-entropy soft label.

    The soft label puts ``p`` on the true class and ``(1 - p) / (k - 1)`` on each other class;
    its entropy falls as ``p`` grows on ``[1/k, 1]``, so the constraint
    ``H >= entropy_threshold * ln k`` means ``p <= p*``.

    Methods:
      * ``"grid"`` (default, reproduces the authors' code): the largest ``p`` on the 0.01 grid
        whose label satisfies the constraint, i.e. the first value reached by moving 0.01 of
        mass at a time off a one-hot label. Gives the paper's numbers (e.g. 0.33 for k=100,
        gamma=0.8).
      * ``"exact"``: the root of ``H(p) = entropy_threshold * ln k``, by bisection to float
        precision (rounded towards satisfying the constraint). Always within 0.01 above
        ``"grid"``.

    ``entropy_threshold = 0`` gives the one-hot label (``p = 1``) with both methods.

    Args:
      num_classes: number of classes k >= 2 (static Python int).
      entropy_threshold: gamma in [0, 1); a scalar, possibly traced (an invalid traced value
        gives NaN).
      method: ``"grid"`` or ``"exact"``.

    Returns:
      Scalar float array ``p``.

    Raises:
      ValueError: if ``num_classes < 2``, ``entropy_threshold`` is outside [0, 1) or
        ``method`` is unknown.

    Example:
      >>> round(float(soft_label_probability(100, 0.8)), 2)
      0.33
      >>> round(float(soft_label_probability(100, 0.8, method="exact")), 4)
      0.3374
    """
    num_classes = validation.check_num_classes(num_classes)
    validation.check_choice("method", method, SOFT_LABEL_METHODS)
    validation.check_in_range("entropy_threshold", entropy_threshold, 0.0, 1.0)
    return _soft_label_probability(num_classes, entropy_threshold, method)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _soft_label_probability(num_classes: int, entropy_threshold, method: str) -> jax.Array:
    ok = validation.traced_in_range("entropy_threshold", entropy_threshold, 0.0, 1.0)
    target = jnp.asarray(entropy_threshold, jnp.result_type(float)) * jnp.log(num_classes)
    return validation.nan_unless(ok, _PROBABILITY_METHODS[method](num_classes, target))


def hamp_soft_labels(
    labels: jax.Array,
    num_classes: int,
    entropy_threshold: float | jax.Array,
    *,
    method: SoftLabelMethod = "grid",
) -> jax.Array:
    """HAMP's high-entropy soft labels.

    Args:
      labels: integer class indices, shape ``[...]``, values in ``[0, num_classes)``.
      num_classes: k >= 2 (static).
      entropy_threshold: gamma in [0, 1) (scalar; may be traced: an invalid traced value
        gives NaN rows).
      method: how ``p`` is found, see :func:`soft_label_probability`.

    Returns:
      Float array ``[..., num_classes]``: ``p`` at the label, ``(1 - p) / (k - 1)`` elsewhere;
      each row sums to 1.

    Raises:
      ValueError: on labels out of range or non-integer, or any invalid argument of
        :func:`soft_label_probability`.

    Example:
      >>> import jax.numpy as jnp
      >>> print(hamp_soft_labels(jnp.array([1]), 4, 0.5).round(2))
      [[0.06 0.81 0.06 0.06]]
    """
    num_classes = validation.check_num_classes(num_classes)
    validation.check_choice("method", method, SOFT_LABEL_METHODS)
    validation.check_in_range("entropy_threshold", entropy_threshold, 0.0, 1.0)
    validation.check_labels(labels, num_classes)
    return _soft_labels(labels, num_classes, entropy_threshold, method)


def _soft_labels(labels, num_classes: int, entropy_threshold, method: str) -> jax.Array:
    """Unvalidated core of :func:`hamp_soft_labels` (for use inside traced code)."""
    p = _soft_label_probability(num_classes, entropy_threshold, method)
    off = (1.0 - p) / (num_classes - 1)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=p.dtype)
    return off + (p - off) * onehot


def hamp_loss(
    logits: jax.Array,
    soft_labels: jax.Array,
    alpha: float | jax.Array,
    *,
    kl_reduction: KlReduction = "sum",
) -> jax.Array:
    """Per-example HAMP loss ``KL(soft_labels || softmax(logits)) - alpha * H(softmax(logits))``.

    The KL term goes from the soft label to the prediction (``sum_c s_c (ln s_c - ln p_c)``),
    computed from ``log_softmax`` so it stays finite for large logits; soft-label entries equal
    to 0 contribute 0. The entropy term is subtracted: minimizing the loss raises the
    prediction entropy.

    ``kl_reduction``:
      * ``"sum"`` (default): the KL divergence as defined (sum over classes).
      * ``"mean_over_classes"``: the KL divided by the number of classes k. The authors' code
        uses PyTorch ``kl_div`` with its default ``'mean'`` reduction, which divides by
        ``batch * k``, while the entropy term is averaged over the batch only; the batch mean
        of this option equals their loss. Relative to ``"sum"`` the regularizer weight is
        effectively ``alpha * k`` (Purchase100: alpha = 0.01 acts as 1.0). Use it with the
        paper's alpha values to reproduce the paper.

    Args:
      logits: ``[..., C]`` finite floats.
      soft_labels: ``[..., C]`` finite target distributions (e.g. :func:`hamp_soft_labels`).
      alpha: entropy-regularizer weight >= 0 (scalar; may be traced: an invalid traced value
        gives a NaN loss).
      kl_reduction: ``"sum"`` or ``"mean_over_classes"``.

    Returns:
      ``[...]`` per-example loss; reduce it yourself (usually the mean).

    Raises:
      ValueError: if shapes differ, ``alpha < 0``, ``kl_reduction`` is unknown, concrete
        ``logits`` or ``soft_labels`` hold NaN/inf (the message names the first index), or
        concrete ``soft_labels`` lie outside [0, 1] or have rows that do not sum to 1.

    Example:
      >>> import jax.numpy as jnp
      >>> y = hamp_soft_labels(jnp.array([0, 2]), 3, 0.5)
      >>> hamp_loss(jnp.zeros((2, 3)), y, 0.1).shape
      (2,)
    """
    validation.check_same_shape(("logits", "soft_labels"), logits, soft_labels)
    validation.check_rank_at_least("logits", logits, 1)
    validation.check_nonnegative("alpha", alpha)
    validation.check_choice("kl_reduction", kl_reduction, KL_REDUCTIONS)
    validation.check_finite("logits", logits)
    validation.check_finite("soft_labels", soft_labels)
    validation.check_in_range("soft_labels", soft_labels, 0.0, 1.0, high_inclusive=True)
    validation.check_probabilities("soft_labels", soft_labels)
    return _hamp_loss(logits, soft_labels, alpha, kl_reduction == "mean_over_classes")


@functools.partial(jax.jit, static_argnums=3)
def _hamp_loss(logits, soft_labels, alpha, mean_over_classes: bool) -> jax.Array:
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    kl = jnp.sum(xlogy(soft_labels, soft_labels) - soft_labels * log_probs, axis=-1)
    if mean_over_classes:
        kl = kl / logits.shape[-1]
    ok = validation.traced_in_range("alpha", alpha, 0.0, float("inf"))
    return validation.nan_unless(ok, kl - alpha * entropy(logits))
