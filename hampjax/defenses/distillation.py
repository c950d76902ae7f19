"""Knowledge distillation from per-example teacher logits (RelaxLoss's baseline; SELENA / DMP).

:func:`distillation_loss` is the per-example

    kl_weight * T^2 * KL(softmax(t / T) || softmax(s / T)) [/ C] + (1 - kl_weight) * CE(s, y)

with ``s`` the student's logits, ``t`` the teacher's, ``T`` the temperature and ``C`` the
number of classes. RelaxLoss's distillation baseline is ``T = 10``, ``kl_weight = 0.5``; the
HAMP authors' SELENA / DMP distillation is ``T = 1``, ``kl_weight = 1``. Their PyTorch
``kl_div(..., reduction='mean')`` divides by ``batch * C``: ``kl_reduction="mean_over_classes"``
(the default) divides the per-example KL by ``C``, so the batch mean equals their loss;
``"sum"`` is the KL as defined.

The training engine feeds the teacher's logits through ``train_many(..., targets=...)``
(``LossContext.targets``); the loss is pure, per-example, and works under ``jit`` and ``vmap``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from hampjax import validation
from hampjax.defenses.hamp import KL_REDUCTIONS

__all__ = ["distillation_loss", "distillation_kl"]


@functools.partial(jax.jit, static_argnums=3)
def _kl(logits, teacher_logits, temperature, mean_over_classes: bool):
    log_p = jax.nn.log_softmax(logits / temperature, axis=-1)
    log_q = jax.nn.log_softmax(teacher_logits / temperature, axis=-1)
    kl = jnp.sum(jnp.exp(log_q) * (log_q - log_p), axis=-1)
    ok = validation.traced_in_range("temperature", temperature, 0.0, float("inf"),
                                    low_inclusive=False)
    return validation.nan_unless(ok, kl / logits.shape[-1] if mean_over_classes else kl)


def _check(logits, teacher_logits, temperature, kl_reduction):
    validation.check_same_shape(("logits", "teacher_logits"), logits, teacher_logits)
    validation.check_rank_at_least("logits", logits, 1)
    validation.check_positive("temperature", temperature)
    validation.check_choice("kl_reduction", kl_reduction, KL_REDUCTIONS)
    validation.check_finite("logits", logits)
    validation.check_finite("teacher_logits", teacher_logits)


def distillation_kl(logits: jax.Array, teacher_logits: jax.Array, *,
                    temperature: float | jax.Array = 1.0,
                    kl_reduction: str = "mean_over_classes") -> jax.Array:
    """Per-example ``KL(softmax(t / T) || softmax(s / T))`` (teacher to student).

    Args:
      logits: student logits ``[..., C]``.
      teacher_logits: teacher logits ``[..., C]`` (constants: no gradient flows to them
        through the engine, which feeds them as data).
      temperature: ``T > 0`` (scalar; may be traced: an invalid traced value gives NaN).
      kl_reduction: ``"mean_over_classes"`` (divide by ``C``, PyTorch ``'mean'``) or ``"sum"``.

    Returns:
      ``[...]`` KL values (no ``T^2`` factor).

    Raises:
      ValueError: on a shape mismatch, ``T <= 0`` or an unknown reduction.

    Example:
      >>> import jax.numpy as jnp
      >>> float(distillation_kl(jnp.zeros(3), jnp.zeros(3)))
      0.0
    """
    _check(logits, teacher_logits, temperature, kl_reduction)
    return _kl(logits, teacher_logits, temperature, kl_reduction == "mean_over_classes")


@functools.partial(jax.jit, static_argnums=5)
def _distillation(logits, labels, teacher_logits, temperature, kl_weight,
                  mean_over_classes: bool):
    kl = _kl(logits, teacher_logits, temperature, mean_over_classes)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    ok = validation.traced_in_range("kl_weight", kl_weight, 0.0, 1.0, high_inclusive=True)
    return validation.nan_unless(ok, kl_weight * temperature ** 2 * kl + (1.0 - kl_weight) * ce)


def distillation_loss(
    logits: jax.Array,
    labels: jax.Array,
    teacher_logits: jax.Array,
    *,
    temperature: float | jax.Array = 1.0,
    kl_weight: float | jax.Array = 0.5,
    kl_reduction: str = "mean_over_classes",
) -> jax.Array:
    """Per-example distillation loss (module docstring).

    Args:
      logits: student logits ``[..., C]``.
      labels: ``[...]`` integer labels in ``[0, C)`` (the cross-entropy term).
      teacher_logits: teacher logits ``[..., C]``.
      temperature: ``T > 0``; the KL term is scaled by ``T^2`` (Hinton et al.).
      kl_weight: in [0, 1]; the cross-entropy term gets ``1 - kl_weight``.
      kl_reduction: ``"mean_over_classes"`` (default, the authors' PyTorch ``'mean'``) or
        ``"sum"``.

    Returns:
      ``[...]`` per-example loss; reduce it yourself (usually the mean).

    Raises:
      ValueError: on shape mismatches, labels out of range, ``T <= 0``, ``kl_weight``
        outside [0, 1] or an unknown reduction.

    Example:
      >>> import jax.numpy as jnp
      >>> loss = distillation_loss(jnp.zeros((2, 4)), jnp.array([0, 1]), jnp.zeros((2, 4)),
      ...                          temperature=10.0, kl_weight=0.5)
      >>> [round(float(v), 4) for v in loss]  # 0.5 * ln 4: the KL term is 0
      [0.6931, 0.6931]
    """
    labels = jnp.asarray(labels)
    validation.check_logits_labels(logits, labels)
    _check(logits, teacher_logits, temperature, kl_reduction)
    validation.check_in_range("kl_weight", kl_weight, 0.0, 1.0, high_inclusive=True)
    return _distillation(logits, labels, teacher_logits, temperature, kl_weight,
                         kl_reduction == "mean_over_classes")
