"""Per-example scores computed from a model's logits.

These are the quantities that defenses regularize and that attacks threshold: prediction
entropy, true-class log-probability, modified entropy (Song & Mittal) and the LiRA
logit-scaled confidence. All are pure JAX, computed from logits in log space so that they stay
finite when float32 softmax saturates, and work under ``jit`` and ``vmap``.

Shapes: ``logits [..., C]`` and ``labels [...]`` (integer) -> ``[...]``.

Concrete inputs are checked (:mod:`hampjax.validation`): logits must be finite and labels
integers in ``[0, C)`` (a label ``>= C`` would otherwise give finite garbage); traced inputs
are not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation

__all__ = [
    "entropy",
    "true_class_log_prob",
    "modified_entropy",
    "logit_scaled_score",
]


def _check(logits, labels=None) -> None:
    """Finite concrete logits, concrete labels in [0, C), and labels whose shape broadcasts
    to ``logits.shape[:-1]`` without enlarging it (labels ``[N]`` serve logits ``[M, N, C]``;
    labels ``[2]`` against logits ``[1, C]`` would silently score one row twice)."""
    validation.check_rank_at_least("logits", logits, 1)
    validation.check_floating("logits", logits)
    validation.check_finite("logits", logits)
    if labels is None:
        return
    batch = tuple(validation.shape_of(logits)[:-1])
    shape = tuple(np.shape(labels))
    try:
        ok = np.broadcast_shapes(shape, batch) == batch
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"labels must have a shape that broadcasts to logits.shape[:-1]="
                         f"{batch} (one label per row of logits), got labels.shape={shape}")
    if validation.is_concrete(labels):
        validation.check_labels(labels, validation.shape_of(logits)[-1])


def entropy(logits: jax.Array) -> jax.Array:
    """Shannon entropy (nats) of ``softmax(logits)`` along the last axis.

    Computed as ``-sum p log p`` with ``log p`` from ``log_softmax``, so classes whose
    probability underflows to 0 contribute exactly 0 (no ``0 * -inf`` NaN).

    Example:
        >>> import jax.numpy as jnp
        >>> float(entropy(jnp.zeros(4)))  # uniform over 4 classes: ln 4
        1.3862943...
    """
    _check(logits)
    logp = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(logp)
    return -jnp.sum(jnp.where(p > 0, p * logp, 0.0), axis=-1)


def true_class_log_prob(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``log softmax(logits)[label]``; the negated cross-entropy loss.

    Raises:
      ValueError: on NaN/inf in concrete ``logits`` or concrete labels outside ``[0, C)``.
    """
    _check(logits, labels)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]


def _log1m_exp(log_p: jax.Array) -> jax.Array:
    """Stable ``log(1 - exp(log_p))`` for ``log_p <= 0`` (Maechler's two-branch form)."""
    return jnp.where(
        log_p > -0.6931471805599453,
        jnp.log(-jnp.expm1(log_p)),
        jnp.log1p(-jnp.exp(log_p)),
    )


def modified_entropy(logits: jax.Array, labels: jax.Array, *, log_floor: float = -30.0) -> jax.Array:
    """Modified prediction entropy (Song & Mittal, 2021).

    ``Mentr = -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)``.

    Lower values mean a confident, correct prediction (typical of members). The logarithms
    are computed in log space and clamped below at ``log_floor`` (the reference code clamps
    probabilities at about 1e-30 before the log, which is ``log_floor = -69``; any clamp far
    below the float32 resolution of ``1 - p`` gives the same ranking). Pass
    ``log_floor=-jnp.inf`` for no clamp.

    Args:
      logits: ``[..., C]`` float.
      labels: ``[...]`` integer in ``[0, C)``.
      log_floor: lower clamp applied to ``log p`` and ``log (1 - p)``.

    Returns:
      ``[...]`` non-negative modified entropy.

    Raises:
      ValueError: on NaN/inf in concrete ``logits`` or concrete labels outside ``[0, C)``.
    """
    _check(logits, labels)
    num_classes = logits.shape[-1]
    logp = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(logp)
    log1mp = _log1m_exp(jnp.minimum(logp, 0.0))
    logp = jnp.maximum(logp, log_floor)
    log1mp = jnp.maximum(log1mp, log_floor)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    true_term = -(1.0 - p) * logp
    other_term = -p * log1mp
    return jnp.sum(onehot * true_term + (1.0 - onehot) * other_term, axis=-1)


def logit_scaled_score(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """LiRA's logit-scaled confidence ``log p_y - log(sum_{j != y} p_j)``.

    Computed exactly as ``z_y - logsumexp_{j != y} z_j`` on raw logits, which is finite in
    float32 for logits of any magnitude (no float64, no probability clamp).

    Raises:
      ValueError: on NaN/inf in concrete ``logits`` or concrete labels outside ``[0, C)``
        (the message names the first offending index).

    Example:
      >>> import jax.numpy as jnp
      >>> float(logit_scaled_score(jnp.array([2.0, 0.0]), jnp.array(0)))
      2.0
    """
    _check(logits, labels)
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=bool)
    z_y = jnp.sum(jnp.where(onehot, logits, 0.0), axis=-1)
    others = jnp.where(onehot, -jnp.inf, logits)
    return z_y - jax.nn.logsumexp(others, axis=-1)
