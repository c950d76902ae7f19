"""RelaxLoss: relax the training loss to a target level instead of driving it to zero.

Chen, Yu & Fritz, "RelaxLoss: Defending Membership Inference Attacks without Losing Utility",
ICLR 2022.

With a target loss level ``alpha``, each step looks at the batch-mean cross-entropy
``mean_CE`` (from the current forward pass) and either descends on it, ascends on it, or
"flattens" the posterior: it trains towards a per-example soft label ``t`` that keeps the
predicted true-class probability ``u = clip(p_y, 0, upper)`` and spreads the rest evenly,
``t_y = u``, ``t_c = (1 - u) / (C - 1)``.

Two schedules decide which step a batch gets (``schedule=``):

* ``"code"`` (default; the authors' public code):
    even epochs (0, 2, ...): ``|mean_CE - alpha|`` (descent above alpha, ascent below);
    odd epochs: ``mean_CE`` if ``mean_CE > alpha``, else flattening.
* ``"paper"`` (the paper's algorithm / poster):
    ``mean_CE`` if ``mean_CE >= alpha``; else gradient ascent (``-mean_CE``) in even epochs
    and flattening in odd epochs.

The two give the same gradient except at an exact tie ``mean_CE == alpha`` in odd epochs (code
flattens, paper descends); their loss VALUES differ in even epochs (code reports
``|mean_CE - alpha|``, paper ``+-mean_CE``).

Flattening (``variant=``):

* ``"tabular"``: ``-sum_c t_c log p_c``.
* ``"cifar"`` (the authors' CIFAR code): ``mean_i[(1 - correct_i) * S - CE_i]`` with
  ``S = mean_j(-sum_c t_jc log p_jc)`` ONE scalar, the soft-label cross-entropy already
  averaged over the batch (the code's soft CE reduces by mean before the multiplication), and
  ``correct_i`` whether ``argmax p_i == y_i``. So every example's flattening gradient is scaled
  by the fraction of the batch that is misclassified, and every example also ascends on its
  own ``CE_i``.
* ``"cifar_per_example"``: ``(1 - correct_i) * (-sum_c t_ic log p_ic) - CE_i``, the
  per-example reading (an earlier version of this module); correctly classified examples get
  pure gradient ascent.

The authors' code builds ``t`` from the live softmax, so gradients flow through ``t``
(``stop_gradient=False``, default); the poster writes ``sg[t]`` (``stop_gradient=True``).

Per-example form. RelaxLoss is defined on the batch mean, but :func:`relaxloss_loss` returns
per-example terms ``[B]`` such that their mean over valid examples equals the batch objective
and the gradient of that mean equals the objective's gradient. The branch is chosen from
``stop_gradient(mean_CE)``; e.g. ``|mean_CE - alpha|`` is written as
``d * (CE_i - alpha)`` with the constant ``d = -1 if mean_CE < alpha else +1``. Reduce with
``jnp.sum(loss) / jnp.sum(where)`` (or ``loss.mean()`` without a mask).

Every function is pure JAX, works under ``jit`` and ``vmap`` (e.g. over a leading model axis),
and ``alpha`` and ``epoch`` may be traced values, so changing the epoch does not recompile.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from hampjax import validation

__all__ = [
    "relaxloss_loss",
    "relaxloss_branch",
    "RELAXLOSS_VARIANTS",
    "RELAXLOSS_SCHEDULES",
    "RELAXLOSS_DESCENT",
    "RELAXLOSS_ASCENT",
    "RELAXLOSS_FLATTEN",
]

Variant = Literal["tabular", "cifar", "cifar_per_example"]
Schedule = Literal["code", "paper"]

RELAXLOSS_VARIANTS = ("tabular", "cifar", "cifar_per_example")
RELAXLOSS_SCHEDULES = ("code", "paper")

# Branch codes returned by relaxloss_branch: the direction the step moves the mean CE.
RELAXLOSS_DESCENT = 0
RELAXLOSS_ASCENT = 1
RELAXLOSS_FLATTEN = 2


# --------------------------------------------------------------------------------------------
# Validation.


def _check_common(logits, labels, alpha, epoch, where) -> None:
    validation.check_logits_labels(logits, labels, min_rank=2)
    validation.check_nonnegative("alpha", alpha)
    validation.check_scalar("alpha", alpha, allowed="[0, inf)")
    validation.check_epoch(epoch)
    if where is not None:
        validation.check_mask("where", where, validation.shape_of(labels))
    validation.check_finite("logits", logits, where=where)  # masked rows may hold anything


# --------------------------------------------------------------------------------------------
# Core.


def _valid_mask(labels: jax.Array, where: jax.Array | None) -> jax.Array:
    if where is None:
        return jnp.ones(labels.shape, dtype=bool)
    return jnp.asarray(where)


def _masked_mean(x: jax.Array, valid: jax.Array) -> jax.Array:
    total = jnp.sum(jnp.where(valid, x, 0.0))
    return total / jnp.maximum(jnp.sum(valid), 1).astype(x.dtype)


def _decide(mean_ce, alpha, epoch, schedule: str):
    """Branch code, sign ``d`` and offset ``a`` so that the relax term is ``d * (CE_i - a)``."""
    even = jnp.asarray(epoch) % 2 == 0
    alpha = jnp.asarray(alpha, mean_ce.dtype)
    below = mean_ce < alpha
    if schedule == "code":
        branch = jnp.where(
            even,
            jnp.where(below, RELAXLOSS_ASCENT, RELAXLOSS_DESCENT),
            jnp.where(mean_ce > alpha, RELAXLOSS_DESCENT, RELAXLOSS_FLATTEN),
        )
        offset = jnp.where(even, alpha, jnp.zeros_like(alpha))
    else:  # "paper"
        branch = jnp.where(
            below, jnp.where(even, RELAXLOSS_ASCENT, RELAXLOSS_FLATTEN), RELAXLOSS_DESCENT
        )
        offset = jnp.zeros_like(alpha)
    sign = jnp.where(branch == RELAXLOSS_ASCENT, -1.0, 1.0).astype(mean_ce.dtype)
    return branch.astype(jnp.int32), sign, offset


def _prepare(logits, labels, where):
    valid = _valid_mask(labels, where)
    # Padding rows may hold anything (even NaN); replace them so that neither the value nor
    # the gradient can leak out of them.
    logits = jnp.where(valid[..., None], logits, jnp.zeros((), logits.dtype))
    logp = jax.nn.log_softmax(logits, axis=-1)
    labels = labels.astype(jnp.int32)
    ce = -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    mean_ce = _masked_mean(jax.lax.stop_gradient(ce), valid)
    return valid, logits, logp, labels, ce, mean_ce


def relaxloss_branch(
    logits: jax.Array,
    labels: jax.Array,
    *,
    alpha: float | jax.Array,
    epoch: int | jax.Array,
    schedule: Schedule = "code",
    where: jax.Array | None = None,
) -> jax.Array:
    """Which RelaxLoss step a batch gets, for logging.

    Codes: ``RELAXLOSS_DESCENT = 0`` (the gradient descends on the mean CE),
    ``RELAXLOSS_ASCENT = 1`` (it ascends on the mean CE), ``RELAXLOSS_FLATTEN = 2``
    (posterior flattening). With ``schedule="code"`` an even epoch reports 0 or 1 depending on
    which side of ``alpha`` the mean CE lies (the ``|mean_CE - alpha|`` step; an exact tie
    reports 0, the direction of JAX's ``d|x|/dx = 1`` at 0).

    Args:
      logits: ``[..., B, C]`` float; all leading axes together form the batch.
      labels: ``[..., B]`` integer in ``[0, C)``.
      alpha: target loss level, scalar in ``[0, inf)`` (may be traced).
      epoch: integer scalar >= 0, 0-based (may be traced).
      schedule: ``"code"`` or ``"paper"``; see the module docstring.
      where: optional ``[..., B]`` bool mask of valid examples.

    Returns:
      int32 scalar in ``{0, 1, 2}`` (``-1`` for an invalid traced ``alpha``).

    Raises:
      ValueError: on any invalid argument (see :func:`relaxloss_loss`).

    Example:
      >>> import jax.numpy as jnp
      >>> logits, labels = jnp.zeros((4, 10)), jnp.zeros(4, jnp.int32)  # mean CE = ln 10
      >>> int(relaxloss_branch(logits, labels, alpha=1.0, epoch=1))  # 2.30 > 1: descend
      0
      >>> int(relaxloss_branch(logits, labels, alpha=3.0, epoch=1))  # below alpha: flatten
      2
    """
    _check_common(logits, labels, alpha, epoch, where)
    validation.check_choice("schedule", schedule, RELAXLOSS_SCHEDULES)
    _, _, _, _, _, mean_ce = _prepare(jnp.asarray(logits), jnp.asarray(labels), where)
    branch, _, _ = _decide(mean_ce, alpha, epoch, schedule)
    # An integer code cannot be NaN: an invalid traced alpha gives -1 (and raises when checked).
    ok = validation.traced_in_range("alpha", alpha, 0.0, float("inf"))
    return jnp.where(ok, branch, jnp.int32(-1))


def relaxloss_loss(
    logits: jax.Array,
    labels: jax.Array,
    *,
    alpha: float | jax.Array,
    epoch: int | jax.Array,
    upper: float = 1.0,
    variant: Variant = "tabular",
    schedule: Schedule = "code",
    stop_gradient: bool = False,
    where: jax.Array | None = None,
) -> jax.Array:
    """Per-example RelaxLoss terms whose (masked) mean is the RelaxLoss batch objective.

    Let ``CE_i = -log p_i[y_i]``, ``mean_CE`` its mean over valid examples (a constant for
    differentiation), ``u_i = clip(p_i[y_i], 0, upper)``, ``t_i[y_i] = u_i`` and
    ``t_i[c] = (1 - u_i) / (C - 1)`` otherwise (``stop_gradient(t)`` if ``stop_gradient``).
    The per-example term is

    * descent: ``CE_i - a``; ascent: ``-(CE_i - a)``, with ``a = alpha`` in the code schedule's
      even epochs (so the mean is ``|mean_CE - alpha|``) and ``a = 0`` otherwise;
    * flatten, tabular: ``-sum_c t_i[c] log p_i[c]``;
    * flatten, cifar: ``(1 - correct_i) * S - CE_i`` with the scalar
      ``S = mean_j(-sum_c t_j[c] log p_j[c])`` over valid examples (gradients flow through
      ``S``), so the masked mean is the code's ``mean_i[(1 - correct_i) * S - CE_i]``;
    * flatten, cifar_per_example: ``(1 - correct_i) * (-sum_c t_i[c] log p_i[c]) - CE_i``;

    with the branch chosen per batch as described in the module docstring (see also
    :func:`relaxloss_branch`). Masked rows (``where`` False) get 0, do not enter ``mean_CE``,
    and receive exactly zero gradient whatever their logits (even NaN); reduce with
    ``jnp.sum(loss) / jnp.sum(where)``.

    Args:
      logits: ``[..., B, C]`` float, ``C >= 2``. All leading axes together form one batch
        (one mean); for several models use ``jax.vmap`` over the model axis.
      labels: ``[..., B]`` integer class indices in ``[0, C)``.
      alpha: target loss level, scalar in ``[0, inf)`` (may be traced; an invalid traced
        value gives NaN at every valid row).
      epoch: 0-based epoch, integer scalar >= 0 (may be traced: no recompilation per epoch).
      upper: cap on the soft label's true-class probability, in ``(0, 1]`` (an invalid traced
        value gives NaN).
      variant: flattening variant, ``"tabular"`` (default), ``"cifar"`` (authors' CIFAR
        code, batch-mean soft CE) or ``"cifar_per_example"``.
      schedule: ``"code"`` (default, authors' code) or ``"paper"``.
      stop_gradient: if True, treat the soft label ``t`` as a constant (poster); default False
        (authors' code: gradients also flow through ``t``).
      where: optional ``[..., B]`` bool mask of valid (non-padding) examples.

    Returns:
      ``[..., B]`` float per-example terms (dtype of ``logits``); 0 at masked rows.

    Raises:
      ValueError: if concrete logits hold NaN/inf at a valid row (the message names the
        first index), logits have rank < 2 or fewer than 2 classes, labels are not integers of
        shape ``logits.shape[:-1]`` in ``[0, C)``, ``alpha < 0``, ``epoch`` is not an integer
        >= 0, ``upper`` is outside ``(0, 1]``, ``variant``/``schedule`` is unknown, or ``where``
        is not a bool array of the labels' shape.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
      >>> labels = jnp.array([0, 1])
      >>> loss = relaxloss_loss(logits, labels, alpha=1.0, epoch=0)
      >>> ce = -jax.nn.log_softmax(logits)[jnp.arange(2), labels]
      >>> bool(jnp.allclose(loss.mean(), jnp.abs(ce.mean() - 1.0)))
      True
    """
    _check_common(logits, labels, alpha, epoch, where)
    validation.check_in_range("upper", upper, 0.0, 1.0, low_inclusive=False, high_inclusive=True)
    validation.check_choice("variant", variant, RELAXLOSS_VARIANTS)
    validation.check_choice("schedule", schedule, RELAXLOSS_SCHEDULES)
    if not isinstance(stop_gradient, bool):
        raise ValueError(f"stop_gradient must be a bool, got {stop_gradient!r}")

    logits = jnp.asarray(logits)
    valid, logits, logp, labels, ce, mean_ce = _prepare(logits, jnp.asarray(labels), where)
    branch, sign, offset = _decide(mean_ce, alpha, epoch, schedule)
    relax = sign * (ce - offset)

    num_classes = logits.shape[-1]
    onehot = jax.nn.one_hot(labels, num_classes, dtype=bool)
    u = jnp.clip(jnp.exp(-ce), 0.0, upper)  # p_y from the live softmax
    t = jnp.where(onehot, u[..., None], ((1.0 - u) / (num_classes - 1))[..., None])
    if stop_gradient:
        t = jax.lax.stop_gradient(t)
    soft_ce = -jnp.sum(t * logp, axis=-1)
    if variant == "tabular":
        flatten = soft_ce
    else:
        correct = (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)
        if variant == "cifar":  # S = batch mean over valid rows, one scalar.
            soft = _masked_mean(soft_ce, valid)
        else:  # "cifar_per_example"
            soft = soft_ce
        flatten = (1.0 - correct) * soft - ce

    loss = jnp.where(branch == RELAXLOSS_FLATTEN, flatten, relax)
    # Invalid traced hyperparameters: NaN at every valid row (concrete ones raised above).
    ok = (validation.traced_in_range("alpha", alpha, 0.0, float("inf"))
          & validation.traced_in_range("upper", upper, 0.0, 1.0, low_inclusive=False,
                                       high_inclusive=True))
    loss = validation.nan_unless(ok, loss)
    return jnp.where(valid, loss, jnp.zeros((), loss.dtype))
