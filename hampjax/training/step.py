"""One training step of one model: :func:`train_step`, and :func:`loop_steps` over many.

The step is a plain function of a few named structures, testable on its own (as the flax
examples' ``train_step``): the static functions (:class:`StepFns`: the model's ``apply_fn``,
the recipe's per-example loss, the optimizer), the state it updates (:class:`StepState`) and
the minibatch (:class:`Batch`). It has no model axis; the engine vmaps it over the models of a
chunk (:mod:`hampjax.training.engine`). :func:`loop_steps` runs it over a range of an epoch's
steps in a while loop; :func:`unrolled_steps` runs a fixed number of them written out one
after the other (no loop in the program), which the host-driven loop strategy calls from
Python: XLA:CPU runs JAX's own convolution gradient inside a while loop far slower than
outside one.

With a :class:`DpConfig` in :attr:`StepFns.privacy` the step is a DP-SGD step
(:mod:`hampjax.defenses.dp_sgd`): per-example clipping, Gaussian noise from the batch's
``noise_key``, division by the batch's ``denominator``; the optimizer then runs as usual.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from hampjax.defenses import dp_sgd
from hampjax.training.recipes import LossContext

__all__ = ["StepFns", "StepState", "Batch", "StepOutput", "DpConfig", "train_step",
           "EpochSteps", "EpochSums", "loop_steps", "unrolled_steps", "fence", "opaque"]

ApplyFn = Callable[..., tuple[jax.Array, dict]]


def _select(flag: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(lambda a, b: jnp.where(flag, a, b), new, old)


@dataclasses.dataclass(frozen=True)
class DpConfig:
    """The static settings of a DP-SGD step (from ``RecipeSpec.privacy``).

    Attributes:
      clip_norm: per-example L2 clip norm C (``inf``: no clipping).
      noise_multiplier: sigma; the noise on the clipped sum has std ``sigma * C``.
      per_example: ``"dense"`` (norms from dense layers' inputs and output gradients, then one
        weighted backward pass) or ``"generic"`` (jax_privacy's ``clipped_grad``: vmap of
        grad over examples, clipped and summed).
    """

    clip_norm: float
    noise_multiplier: float
    per_example: str

    def __post_init__(self):
        if self.per_example not in ("dense", "generic"):
            raise ValueError(f"per_example must be 'dense' or 'generic', got {self.per_example!r}")
        if self.noise_multiplier > 0 and math.isinf(self.clip_norm):
            raise ValueError("noise needs a finite clip_norm")


@dataclasses.dataclass(frozen=True)
class StepFns:
    """The functions one training step applies (fixed for a whole run).

    Attributes:
      apply_fn: ``(variables, x, *, train, key=None) -> (logits, new_variables)``.
      loss: the recipe's per-example loss ``(logits, labels, ctx) -> [B]``.
      optimizer: the optax transformation, wrapped in ``optax.inject_hyperparams`` so that
        the learning rate lives in its state.
      privacy: DP-SGD settings, or None for ordinary mean-of-batch gradients.
    """

    apply_fn: ApplyFn
    loss: Callable[..., jax.Array]
    optimizer: optax.GradientTransformation
    privacy: DpConfig | None = None


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
      noise_key: DP-SGD only: PRNG key of the gradient noise.
      denominator: DP-SGD only: float32 scalar the clipped sum is divided by (Poisson: the
        expected batch size); None: the number of real rows.
      active: DP-SGD Poisson only: bool scalar, whether this is one of the model's own steps
        (an active step with an empty batch is a noise-only step); None: a step is taken when
        the batch has a real row.
    """

    x: jax.Array
    y: jax.Array
    where: jax.Array
    example_state: jax.Array
    loss_key: jax.Array
    dropout_key: jax.Array
    targets: jax.Array | None = None
    noise_key: jax.Array | None = None
    denominator: jax.Array | None = None
    active: jax.Array | None = None


class StepOutput(NamedTuple):
    loss: jax.Array  # mean loss over the batch's real examples
    hits: jax.Array  # correct train-mode predictions among them
    count: jax.Array  # float32 number of real examples


def train_step(fns: StepFns, state: StepState, batch: Batch, epoch: jax.Array, *,
               guard: bool = True) -> tuple[StepState, StepOutput]:
    """One optimizer step of one model on one minibatch (no model axis; ``vmap`` adds it).

    The loss is the mean of the recipe's per-example loss over the real rows of the batch;
    without privacy its gradient is the update direction, with ``fns.privacy`` the DP-SGD
    direction (:func:`dp_gradient`).

    Args:
      fns: the model's ``apply_fn``, the recipe's loss and the optimizer.
      state: the model's variables and optimizer state.
      batch: the minibatch, its padding mask, per-example state and keys.
      epoch: int32 scalar, 0-based.
      guard: if True (the engine's choice for every step), a batch without real rows (DP-SGD
        Poisson: an inactive step) leaves model and optimizer state untouched; False skips
        that check (for callers that know every batch holds real rows).

    Returns:
      ``(new_state, StepOutput)``.
    """
    count = jnp.sum(batch.where).astype(jnp.float32)
    if not guard:
        return _update(fns, state, batch, epoch, count)
    # A step without real examples must leave model and optimizer untouched. A conditional
    # rather than a select of the results: a select of every variable after the update cost
    # the FC net 30-65% more time per epoch on CPU (no in-place update); under vmap (several
    # models per device) JAX turns the conditional into that select anyway.
    any_valid = count > 0 if batch.active is None else batch.active

    def skip(state):
        zero = jnp.float32(0)
        return state, StepOutput(zero, jnp.int32(0), count)

    return jax.lax.cond(any_valid, lambda st: _update(fns, st, batch, epoch, count), skip, state)


def _update(fns: StepFns, state: StepState, batch: Batch, epoch: jax.Array, count: jax.Array
            ) -> tuple[StepState, StepOutput]:
    variables, opt_state = state
    ctx = LossContext(epoch=epoch, key=batch.loss_key, where=batch.where,
                      example_state=batch.example_state, targets=batch.targets)
    if fns.privacy is None:
        def loss_fn(params):
            logits, new_variables = fns.apply_fn({**variables, "params": params}, batch.x,
                                                 train=True, key=batch.dropout_key)
            per_example = jnp.where(batch.where, fns.loss(logits, batch.y, ctx), 0.0)
            return jnp.sum(per_example) / jnp.maximum(count, 1.0), (new_variables, logits)

        (loss, (new_variables, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            variables["params"])
    else:
        grads, loss, new_variables, logits = dp_gradient(fns, variables, batch, ctx)
    updates, new_opt_state = fns.optimizer.update(grads, opt_state, variables["params"])
    new_variables = {**new_variables, "params": optax.apply_updates(variables["params"], updates)}
    hits = jnp.sum(jnp.where(batch.where, jnp.argmax(logits, -1) == batch.y, False))
    # Fixed dtypes (the skip branch of the guard returns the same, whatever jax_enable_x64).
    return (StepState(new_variables, new_opt_state),
            StepOutput(loss.astype(jnp.float32), hits.astype(jnp.int32), count))


def dp_gradient(fns: StepFns, variables: dict, batch: Batch, ctx: LossContext
                ) -> tuple[Any, jax.Array, dict, jax.Array]:
    """The DP-SGD update direction of one model on one batch (before the optimizer).

    ``(sum_i clip_C(g_i) + N(0, sigma^2 C^2 I)) / denominator`` where ``g_i`` is the gradient
    of example i's loss and padding rows count for nothing. ``"dense"``: per-example norms
    from :func:`hampjax.defenses.dp_sgd.dense_sq_norms`, then the clipped sum as one backward
    pass of ``sum_i c_i l_i / denominator`` (with ``C = inf`` every ``c_i`` is exactly 1 and
    this is the ordinary mean-of-batch gradient, bit for bit). ``"generic"``: jax_privacy's
    ``clipped_grad`` (vmap of grad over examples; example i's loss and dropout keys are
    ``fold_in(key, i)``).

    Returns:
      ``(grads, mean loss over real rows, new variables, logits [B, C])``.
    """
    dp = fns.privacy
    params = variables["params"]
    count = jnp.sum(batch.where).astype(jnp.float32)
    denominator = (jnp.maximum(count, 1.0) if batch.denominator is None
                   else jnp.asarray(batch.denominator, jnp.float32))

    if dp.per_example == "dense":
        def batch_loss(p, weights):
            logits, new_variables = fns.apply_fn({**variables, "params": p}, batch.x,
                                                 train=True, key=batch.dropout_key)
            losses = fns.loss(logits, batch.y, ctx)
            per_example = jnp.where(batch.where, losses if weights is None else weights * losses,
                                    0.0)
            return per_example, (new_variables, logits, losses)

        sq = dp_sgd.dense_sq_norms(lambda p: batch_loss(p, None)[0], params)
        factors = jax.lax.stop_gradient(jnp.where(
            batch.where, dp_sgd.clip_factors(jnp.sqrt(sq), dp.clip_norm), 0.0))

        def weighted(p):
            per_example, aux = batch_loss(p, factors)
            return jnp.sum(per_example) / denominator, aux

        (_, (new_variables, logits, losses)), grads = jax.value_and_grad(
            weighted, has_aux=True)(params)
    else:
        import jax_privacy

        def example_loss(p, example):
            x, y, state, index, targets = example  # leading axis of size 1
            ex_ctx = LossContext(epoch=ctx.epoch, key=jax.random.fold_in(ctx.key, index[0]),
                                 where=jnp.ones((1,), bool), example_state=state,
                                 targets=None if batch.targets is None else targets)
            logits, _ = fns.apply_fn({**variables, "params": p}, x, train=True,
                                     key=jax.random.fold_in(batch.dropout_key, index[0]))
            loss = fns.loss(logits, y, ex_ctx)[0]
            return loss, logits[0]

        grad_fn = jax_privacy.clipped_grad(example_loss, has_aux=True, l2_clip_norm=dp.clip_norm,
                                           batch_argnums=1, keep_batch_dim=True,
                                           return_values=True)
        rows = jnp.arange(batch.where.shape[0], dtype=jnp.int32)
        targets = rows if batch.targets is None else batch.targets  # rows: a placeholder
        clipped_sum, aux = grad_fn(params, (batch.x, batch.y, batch.example_state, rows, targets),
                                   is_padding_example=jnp.logical_not(batch.where))
        grads = jax.tree_util.tree_map(lambda g: g / denominator.astype(g.dtype), clipped_sum)
        logits, losses, new_variables = aux.aux, aux.values, variables
    if dp.noise_multiplier > 0:
        grads = dp_sgd.add_gaussian_noise(grads, batch.noise_key,
                                          dp.noise_multiplier * dp.clip_norm / denominator)
    loss = jnp.sum(jnp.where(batch.where, losses, 0.0)) / jnp.maximum(count, 1.0)
    return grads, loss, new_variables, logits


class EpochSteps(NamedTuple):
    """The per-step inputs of (part of) an epoch; every leaf has a leading step axis [S].

    The last four are DP-SGD's (None otherwise; see :class:`Batch`).
    """

    indices: jax.Array  # [S, B] int32 rows of the candidate set
    where: jax.Array  # [S, B] bool
    keys: jax.Array  # [S, 2] (loss key, dropout key)
    noise_keys: jax.Array | None = None  # [S]
    denominator: jax.Array | None = None  # [S] float32 (Poisson: expected batch size)
    active: jax.Array | None = None  # [S] bool (Poisson: the model's own steps)
    dropped: jax.Array | None = None  # [S] int32 (Poisson: members sampled beyond the cap)


class EpochSums(NamedTuple):
    loss: jax.Array  # sum over real examples of the batch-mean loss x batch count
    correct: jax.Array
    seen: jax.Array


def _one_step(fns: StepFns, state: StepState, sums: EpochSums, step: EpochSteps, x, y,
              example_state, epoch, guard: bool, targets=None) -> tuple[StepState, EpochSums]:
    idx = step.indices
    batch = Batch(x[idx], y[idx], step.where, example_state[idx], step.keys[0], step.keys[1],
                  None if targets is None else targets[idx], noise_key=step.noise_keys,
                  denominator=step.denominator, active=step.active)
    state, out = train_step(fns, state, batch, epoch, guard=guard)
    sums = EpochSums(sums.loss + out.loss * out.count, sums.correct + out.hits,
                     sums.seen + out.count)
    return state, sums


def loop_steps(fns: StepFns, state: StepState, sums: EpochSums, steps: EpochSteps,
               start: jax.Array, stop: jax.Array, x, y, example_state, epoch, *, guard: bool,
               targets: jax.Array | None = None) -> tuple[StepState, EpochSums]:
    """Run ``train_step`` on steps ``start .. stop - 1`` of ``steps`` (one model), in a loop.

    A ``lax.fori_loop`` (an XLA while loop). ``x``, ``y``, ``example_state`` and ``targets``
    (optional ``[N, C]``, this model's per-example targets) are the whole candidate set; each
    step gathers its rows.

    Pass ``start`` and ``stop`` as values XLA cannot see at compile time (:func:`opaque`): XLA replaces a loop with a known trip count of one by its body
    and fuses that body with the code around it, which changes float32 rounding (the fused
    multiply-adds it forms) and so the bits. Through a loop the step compiles as it does alone,
    which keeps the loop strategies bit-identical on CPU.
    """

    def body(i, carry):
        step = jax.tree_util.tree_map(
            lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), steps)
        return _one_step(fns, *carry, step, x, y, example_state, epoch, guard, targets)

    return jax.lax.fori_loop(start, stop, body, (state, sums))


def unrolled_steps(fns: StepFns, state: StepState, sums: EpochSums, steps: EpochSteps,
                   start: jax.Array, x, y, example_state, epoch, *, num: int,
                   guard: bool, targets: jax.Array | None = None
                   ) -> tuple[StepState, EpochSums]:
    """Run ``train_step`` on steps ``start .. start + num - 1`` of ``steps``, unrolled.

    The same computation as :func:`loop_steps` on ``start .. start + num - 1`` with the steps
    written out one after the other, separated by :func:`fence` (so that the results do not
    depend on ``num``): the program has no while loop, and ``start`` is traced, so one
    compiled program serves every offset of an epoch.

    Args:
      num: static number of steps (the program grows with it).
      start: int32 scalar, the first step (``start + num <= S``).
    """
    for i in range(num):
        if i:
            state, sums = fence((state, sums), epoch)
        step = jax.tree_util.tree_map(
            lambda a: jax.lax.dynamic_index_in_dim(a, start + i, keepdims=False), steps)
        state, sums = _one_step(fns, state, sums, step, x, y, example_state, epoch, guard,
                                targets)
    return state, sums


def opaque(n: int, epoch: jax.Array) -> jax.Array:
    """``n`` as an int32 value that XLA cannot see at compile time (``epoch >= 0`` is traced).

    Loop bounds made from it give while loops of unknown trip count (:func:`loop_steps`): XLA
    replaces a loop of one known trip by its body and fuses that with the code around it, and
    the fused multiply-adds it then forms round differently from the loop-free programs of the
    "host" strategy (measured: ~1e-8 on the parameters, with Adam and a single guarded tail
    step). :func:`fence` builds its always-true predicate from it.
    """
    return jnp.int32(n) + jnp.minimum(jnp.asarray(epoch, jnp.int32), 0)


def fence(tree: Any, epoch: jax.Array) -> Any:
    """``tree`` unchanged, through a conditional XLA cannot fuse across.

    The conditional's predicate ``opaque(0, epoch) == 0`` is always True (``epoch >= 0``) but
    unknown to XLA, since ``epoch`` is traced.

    Between unrolled steps: without it XLA fuses a step's optimizer-state update into the next
    step's (recomputing it there), and the fused multiply-adds it forms round differently from
    a step compiled alone; with it every unrolled step compiles as in :func:`loop_steps`, so
    results do not depend on ``num`` (bit for bit on CPU). ``lax.optimization_barrier`` does
    not do this on XLA:CPU (it is expanded away before fusion), and a conditional with two
    identical branches is simplified away, hence the zeros branch that never runs.
    """
    return jax.lax.cond(opaque(0, epoch) == 0, lambda t: t,
                        lambda t: jax.tree_util.tree_map(jnp.zeros_like, t), tree)
