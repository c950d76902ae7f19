"""One training step of one model: :func:`train_step`, and :func:`scan_steps` over many.

The step is a plain function of a few named structures, testable on its own (as the flax
examples' ``train_step``): the static functions (:class:`StepFns`: the model's ``apply_fn``,
the recipe's per-example loss, the optimizer), the state it updates (:class:`StepState`) and
the minibatch (:class:`Batch`). It has no model axis; the engine vmaps it over the models of a
chunk (:mod:`hampjax.training.engine`). :func:`scan_steps` runs it over a range of an epoch's
steps in a ``lax.scan``; :func:`unrolled_steps` runs a fixed number of them written out one
after the other (no loop in the program), which the host-driven loop strategy calls from
Python: XLA:CPU runs convolutions inside a while loop (``lax.scan``) far slower than outside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hampjax.training.recipes import LossContext

__all__ = ["StepFns", "StepState", "Batch", "StepOutput", "train_step", "EpochSteps",
           "EpochSums", "scan_steps", "unrolled_steps"]

ApplyFn = Callable[..., tuple[jax.Array, dict]]


def _select(flag: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda a, b: jnp.where(flag, a, b), new, old)


@dataclasses.dataclass(frozen=True)
class StepFns:
    """The functions one training step applies (fixed for a whole run).

    Attributes:
      apply_fn: ``(variables, x, *, train, key=None) -> (logits, new_variables)``.
      loss: the recipe's per-example loss ``(logits, labels, ctx) -> [B]``.
      optimizer: the optax transformation, wrapped in ``optax.inject_hyperparams`` so that
        the learning rate lives in its state.
    """

    apply_fn: ApplyFn
    loss: Callable[..., jax.Array]
    optimizer: optax.GradientTransformation


class StepState(NamedTuple):
    """What one step updates: one model's variables and optimizer state."""

    variables: dict
    opt_state: Any


class Batch(NamedTuple):
    """One model's minibatch of one step.

    Attributes:
      x: inputs ``[B, ...]``.
      y: int32 labels ``[B]``.
      where: bool ``[B]``, False for padding rows (zero loss weight).
      example_state: float32 ``[B]`` per-example state (see ``Recipe.example_state``).
      loss_key: PRNG key of the loss (e.g. Weighted Smoothing's noise).
      dropout_key: PRNG key of the model's stochastic layers.
      targets: ``[B, C]`` per-example targets (e.g. a teacher's logits), or None.
    """

    x: jax.Array
    y: jax.Array
    where: jax.Array
    example_state: jax.Array
    loss_key: jax.Array
    dropout_key: jax.Array
    targets: jax.Array | None = None


class StepOutput(NamedTuple):
    loss: jax.Array  # mean loss over the batch's real examples
    hits: jax.Array  # correct train-mode predictions among them
    count: jax.Array  # float32 number of real examples


def train_step(fns: StepFns, state: StepState, batch: Batch, epoch: jax.Array, *,
               guard: bool = True) -> tuple[StepState, StepOutput]:
    """One optimizer step of one model on one minibatch (no model axis; ``vmap`` adds it).

    The loss is the mean of the recipe's per-example loss over the real rows of the batch.

    Args:
      fns: the model's ``apply_fn``, the recipe's loss and the optimizer.
      state: the model's variables and optimizer state.
      batch: the minibatch, its padding mask, per-example state and keys.
      epoch: int32 scalar, 0-based.
      guard: if True, a batch without real rows leaves model and optimizer state untouched
        (the caller may skip the select when every batch is known to hold real rows).

    Returns:
      ``(new_state, StepOutput)``.
    """
    variables, opt_state = state
    ctx = LossContext(epoch=epoch, key=batch.loss_key, where=batch.where,
                      example_state=batch.example_state, targets=batch.targets)
    count = jnp.sum(batch.where).astype(jnp.float32)

    def loss_fn(params):
        logits, new_variables = fns.apply_fn({**variables, "params": params}, batch.x,
                                             train=True, key=batch.dropout_key)
        per_example = jnp.where(batch.where, fns.loss(logits, batch.y, ctx), 0.0)
        return jnp.sum(per_example) / jnp.maximum(count, 1.0), (new_variables, logits)

    (loss, (new_variables, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        variables["params"])
    updates, new_opt_state = fns.optimizer.update(grads, opt_state, variables["params"])
    new_variables = {**new_variables, "params": optax.apply_updates(variables["params"], updates)}
    if guard:  # a step without real examples must leave model and optimizer untouched
        any_valid = count > 0
        new_variables = _select(any_valid, new_variables, variables)
        new_opt_state = _select(any_valid, new_opt_state, opt_state)
    hits = jnp.sum(jnp.where(batch.where, jnp.argmax(logits, -1) == batch.y, False))
    return StepState(new_variables, new_opt_state), StepOutput(loss, hits, count)


class EpochSteps(NamedTuple):
    """The per-step inputs of (part of) an epoch; every leaf has a leading step axis [S]."""

    indices: jax.Array  # [S, B] int32 rows of the candidate set
    where: jax.Array  # [S, B] bool
    keys: jax.Array  # [S, 2] (loss key, dropout key)


class EpochSums(NamedTuple):
    loss: jax.Array  # sum over real examples of the batch-mean loss x batch count
    correct: jax.Array
    seen: jax.Array


def _one_step(fns: StepFns, state: StepState, sums: EpochSums, idx, valid, step_keys, x, y,
              example_state, epoch, guard: bool, targets=None) -> tuple[StepState, EpochSums]:
    batch = Batch(x[idx], y[idx], valid, example_state[idx], step_keys[0], step_keys[1],
                  None if targets is None else targets[idx])
    state, out = train_step(fns, state, batch, epoch, guard=guard)
    sums = EpochSums(sums.loss + out.loss * out.count, sums.correct + out.hits,
                     sums.seen + out.count)
    return state, sums


def scan_steps(fns: StepFns, state: StepState, sums: EpochSums, steps: EpochSteps, x, y,
               example_state, epoch, *, guard: bool,
               targets: jax.Array | None = None) -> tuple[StepState, EpochSums]:
    """Run ``train_step`` over the leading axis of ``steps`` (one model), in a ``lax.scan``.

    ``x``, ``y``, ``example_state`` and ``targets`` (optional ``[N, C]``, this model's
    per-example targets) are the whole candidate set; each step gathers its rows.
    """

    def body(carry, inputs):
        idx, valid, step_keys = inputs
        return _one_step(fns, *carry, idx, valid, step_keys, x, y, example_state, epoch,
                         guard, targets), None

    (state, sums), _ = jax.lax.scan(body, (state, sums), steps)
    return state, sums


def unrolled_steps(fns: StepFns, state: StepState, sums: EpochSums, steps: EpochSteps,
                   start: jax.Array, x, y, example_state, epoch, *, num: int,
                   guard: bool, targets: jax.Array | None = None
                   ) -> tuple[StepState, EpochSums]:
    """Run ``train_step`` on steps ``start .. start + num - 1`` of ``steps``, unrolled.

    The same computation as :func:`scan_steps` on ``steps[start:start + num]`` with the steps
    written out one after the other: the program has no while loop, and ``start`` is traced,
    so one compiled program serves every offset of an epoch.

    Args:
      num: static number of steps (the program grows with it).
      start: int32 scalar, the first step (``start + num <= S``).
    """
    for i in range(num):
        idx, valid, step_keys = jax.tree_util.tree_map(
            lambda a: jax.lax.dynamic_index_in_dim(a, start + i, keepdims=False), steps)
        state, sums = _one_step(fns, state, sums, idx, valid, step_keys, x, y, example_state,
                                epoch, guard, targets)
    return state, sums
