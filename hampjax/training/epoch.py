"""One model's epoch, and the two ways the engine runs it: its loop strategies and precision.

:func:`train_epoch` is one model's whole epoch in one program: :func:`epoch_start` (example
state, optimizer reset and learning rate, the epoch's minibatches and keys), the steps
(:func:`~hampjax.training.step.loop_steps`) and :func:`epoch_end` (validation and selection).
:class:`HostLoop` runs the same pieces as small loop-free programs driven from Python.
:mod:`hampjax.training.engine` vmaps either over the models of a chunk and drives the run
(chunks, devices, checkpoints); this module has no notion of a run.

Performance choices, and the measurements behind them (2-core CPU, XLA:CPU, jax 0.10):

* Loop strategy (``loop=``, :func:`choose_loop`). ``"scan"`` runs an epoch as one program, the
  steps and the eval-mode passes in while loops; ``"host"`` drives loop-free
  programs from Python (:class:`HostLoop`: epoch start, ``steps_per_call`` unrolled steps,
  eval batches, epoch end). With JAX's own convolution gradient, XLA:CPU runs a convolution
  step inside a while loop far slower than outside one (ResNet-20, batch 64: 6.4 s per step in
  a scan against 0.19 s called from Python): the transpose rule emits convolutions with
  transposed dimension labels, which XLA:CPU rewrites into its fast form only outside loops.
  The zoo's convolutions (:mod:`hampjax.models.convolution`) write their backward pass with
  forward convolutions and dots, which compile the same everywhere, so the zoo's conv nets
  train fast inside a loop (``bench_shadow.py --model resnet20 --models 2 --samples 512
  --epochs 1 --sequential-models 1``: 1.12-1.15 s per model-epoch with ``--loop scan``
  against 2.19-2.25 s for a plain jitted step called from Python, 1.9-2.0x; 1.27-1.47 s with
  ``--loop host``; load ~1.6) and bit-identically with either strategy.
  ``"auto"`` therefore picks ``"scan"`` everywhere except on CPU for a model with a
  convolution that uses JAX's own gradient (a user's ``nn.Conv``; :func:`has_convolution`),
  which gets ``"host"``. On accelerators ``"scan"`` is not measured here (no GPU was
  available; measure before changing it). The strategies compute the same operations in the
  same order, and results are bit-identical on CPU (dense and conv models, every recipe,
  whatever ``steps_per_call``). That takes three precautions against XLA fusing a step with
  its neighbours (the fused multiply-adds it then forms round differently): the loops'
  trip counts are hidden from XLA (:func:`~hampjax.training.step.opaque`; it inlines a loop
  of one known trip),
  unrolled steps are separated by a conditional (:func:`~hampjax.training.step.fence`), and
  every step is guarded by a conditional (an unguarded step rounds differently from a
  guarded one).
* Precision (``precision=``, :func:`choose_precision`): ``"auto"`` is bfloat16 compute on
  GPU/TPU and float32 on CPU (where bfloat16 is emulated and slower). Parameters, optimizer
  state, BatchNorm statistics, loss and softmax stay float32 (:func:`mixed_precision_apply`).
  bfloat16 changes results: it is part of the fingerprint of a bfloat16 run.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation
from hampjax.defenses import dp_sgd
from hampjax.training.recipes import Recipe
from hampjax.training.step import (
    ApplyFn,
    EpochSteps,
    EpochSums,
    StepFns,
    StepState,
    _select,
    loop_steps,
    opaque,
    unrolled_steps,
)

__all__ = [
    "TrainState",
    "EpochMetrics",
    "TrainData",
    "EpochConfig",
    "model_key",
    "epoch_batches",
    "epoch_start",
    "epoch_end",
    "train_epoch",
    "HostLoop",
    "LOOPS",
    "PRECISIONS",
    "choose_loop",
    "choose_precision",
    "has_convolution",
    "mixed_precision_apply",
    "DEFAULT_STEPS_PER_CALL",
    "TRACE_COUNTS",
]

InitFn = Callable[[jax.Array, jax.Array], dict]

# Incremented each time the epoch program is traced (tests assert there is no retracing), and
# each time an epoch actually runs (tests assert that resuming never redoes finished work).
TRACE_COUNTS: dict[str, int] = {"epoch": 0, "epochs_run": 0, "host_steps": 0, "host_eval": 0}

# Sub-streams of a model's key.
_INIT, _SHUFFLE, _STEP, _NOISE = 0, 1, 2, 3

class TrainState(NamedTuple):
    """State of a chunk of models; every leaf has a leading model axis."""

    variables: dict  # {"params": ..., "batch_stats"?: ...}
    opt_state: Any
    best_variables: dict
    best_val_acc: jax.Array  # [M] float32, -1 before the first evaluation
    best_epoch: jax.Array  # [M] int32, -1 before the first evaluation
    example_state: jax.Array  # [M, N] float32
    aux: Any = ()  # a recipe's extra per-model state (AdvReg: advreg.AdvState); () for none


class EpochMetrics(NamedTuple):
    train_loss: jax.Array  # [M] mean loss over the epoch's real examples
    train_acc: jax.Array  # [M] accuracy on the epoch's minibatches (train mode)
    val_acc: jax.Array  # [M] eval-mode validation accuracy (NaN without validation data)
    dp_overflow: jax.Array  # [M] int32 DP-SGD Poisson members sampled beyond the cap (dropped)


def model_key(seed: int, model_index: int | jax.Array) -> jax.Array:
    """The base PRNG key of model ``model_index`` (independent of chunking and devices)."""
    return jax.random.fold_in(jax.random.key(seed), model_index)


def _num_steps(keep: np.ndarray, batch_size: int) -> int:
    return max(1, math.ceil(int(keep.sum(axis=1).max()) / batch_size))


def epoch_batches(
    key: jax.Array, keep_row: jax.Array, epoch: jax.Array, *, batch_size: int, num_steps: int,
    shuffle: str,
) -> tuple[jax.Array, jax.Array]:
    """Minibatch indices and validity mask of one model for one epoch.

    The model's members are put in a random order (a fresh one each epoch for
    ``shuffle="every_epoch"``, one fixed order for ``"once"``) and cut into ``num_steps``
    batches of ``batch_size``; positions past the member count repeat members and are invalid.

    Returns:
      ``(indices [num_steps, batch_size] int32, where [num_steps, batch_size] bool)``.
    """
    shuffle_key = jax.random.fold_in(key, _SHUFFLE)
    if shuffle == "every_epoch":
        shuffle_key = jax.random.fold_in(shuffle_key, epoch)
    u = jax.random.uniform(shuffle_key, keep_row.shape)
    order = jnp.argsort(jnp.where(keep_row, u, u + 2.0)).astype(jnp.int32)
    count = jnp.sum(keep_row).astype(jnp.int32)
    positions = jnp.arange(num_steps * batch_size, dtype=jnp.int32)
    indices = order[positions % jnp.maximum(count, 1)]
    where = positions < count
    return indices.reshape(num_steps, batch_size), where.reshape(num_steps, batch_size)


def _with_learning_rate(opt_state: Any, learning_rate: jax.Array) -> Any:
    hyper = dict(opt_state.hyperparams)
    hyper["learning_rate"] = jnp.asarray(learning_rate, hyper["learning_rate"].dtype)
    return opt_state._replace(hyperparams=hyper)


def _eval_batches(n: int, eval_batch_size: int) -> tuple[int, list[int]]:
    """``(size, starts)`` of the eval-mode batches over ``n`` rows, for both loop strategies.

    ``size = min(eval_batch_size, n)`` rows each; the last batch starts at ``n - size`` (it
    overlaps the one before instead of being padded), and only its rows no earlier batch
    covers are kept, so that every row is computed in the same batch whichever strategy runs.
    """
    size = min(eval_batch_size, n)
    return size, [min(lo, n - size) for lo in range(0, n, size)]


def _eval_logits(apply_fn, variables, x, eval_batch_size: int, epoch: jax.Array) -> jax.Array:
    """Eval-mode logits of one model on all of ``x`` in the batches of :func:`_eval_batches`,
    in a while loop (``epoch``, traced, keeps its trip count hidden from XLA:
    :func:`~hampjax.training.step.opaque`)."""
    n = x.shape[0]
    size, starts = _eval_batches(n, eval_batch_size)
    # The last (overlapping) batch first: the earlier batches then overwrite its old rows.
    backwards = jnp.asarray(starts[::-1], jnp.int32)
    first = jax.eval_shape(lambda v, b: apply_fn(v, b, train=False)[0], variables, x[:size])
    out = jnp.zeros((n,) + first.shape[1:], first.dtype)

    def body(j, out):
        start = backwards[j]
        batch = jax.lax.dynamic_slice_in_dim(x, start, size)
        return jax.lax.dynamic_update_slice_in_dim(
            out, apply_fn(variables, batch, train=False)[0], start, axis=0)

    return jax.lax.fori_loop(jnp.int32(0), opaque(len(starts), epoch), body, out)


class TrainData(NamedTuple):
    """The data every model of a run sees (replicated on every device)."""

    x: jax.Array  # [N, ...] candidates
    y: jax.Array  # [N] int32
    x_val: jax.Array  # [V, ...] validation inputs (a dummy row without validation data)
    y_val: jax.Array  # [V] int32


@dataclasses.dataclass(frozen=True)
class EpochConfig:
    """What one model's epoch needs besides its state and data (static for a run).

    Attributes:
      recipe: the training recipe (results-changing settings).
      fns: the step's functions.
      num_steps: steps per epoch (of the model with the most members). Every step is guarded
        (:func:`train_step` with ``guard=True``): a model whose batch has no real row (fewer
        members than the others) leaves its state untouched.
      has_val: whether validation data is given.
      eval_batch_size: batch size of eval-mode passes (a performance setting).
    """

    recipe: Recipe
    fns: StepFns
    num_steps: int
    has_val: bool
    eval_batch_size: int


def epoch_start(config: EpochConfig, state: TrainState, key: jax.Array, keep_row: jax.Array,
                epoch: jax.Array, y: jax.Array, example_logits: jax.Array | None
                ) -> tuple[StepState, jax.Array, EpochSteps]:
    """What one model's epoch does before its steps: example state, optimizer, minibatches.

    Args:
      example_logits: eval-mode logits ``[N, C]`` of the model on the candidates (used, and
        required, only when the recipe has an example state).

    Returns:
      ``(step_state, example_state [N], EpochSteps [S, ...])``.
    """
    recipe, fns = config.recipe, config.fns
    if recipe.example_state is not None:
        example_state = recipe.example_state(example_logits, y, keep_row, epoch).astype(
            jnp.float32)
    else:
        example_state = state.example_state

    opt_state = state.opt_state
    if recipe.reset_optimizer_each_epoch:
        opt_state = fns.optimizer.init(state.variables["params"])
    opt_state = _with_learning_rate(opt_state, recipe.learning_rate(epoch))

    num_steps = config.num_steps
    privacy = recipe.spec.privacy
    dp_extra = {}
    if privacy.kind == "dp_sgd" and privacy.sampling == "poisson":
        sample_key = jax.random.fold_in(jax.random.fold_in(key, _SHUFFLE), epoch)
        poisson = dp_sgd.poisson_batches(
            sample_key, keep_row, batch_size=recipe.batch_size, num_steps=num_steps,
            cap=dp_sgd.poisson_cap_size(recipe.batch_size, privacy.poisson_cap))
        indices, where = poisson.indices, poisson.where
        dp_extra = dict(denominator=poisson.denominator, active=poisson.active,
                        dropped=poisson.dropped)
    else:
        indices, where = epoch_batches(key, keep_row, epoch, batch_size=recipe.batch_size,
                                       num_steps=num_steps, shuffle=recipe.shuffle)
    step_key = jax.random.fold_in(jax.random.fold_in(key, _STEP), epoch)
    # All step keys of the epoch in one vectorized call: a per-step fold_in/split inside the
    # scan costs about as much as the FC net's whole training step on CPU.
    keys_per_step = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(step_key, i)))(
        jnp.arange(num_steps))
    if privacy.kind == "dp_sgd":
        noise_key = jax.random.fold_in(jax.random.fold_in(key, _NOISE), epoch)
        dp_extra["noise_keys"] = jax.vmap(lambda i: jax.random.fold_in(noise_key, i))(
            jnp.arange(num_steps))
    steps = EpochSteps(indices, where, keys_per_step, **dp_extra)
    return StepState(state.variables, opt_state), example_state, steps


def epoch_end(config: EpochConfig, state: TrainState, step_state: StepState, sums: EpochSums,
              example_state: jax.Array, val_logits: jax.Array | None, epoch: jax.Array,
              y_val: jax.Array, dropped: jax.Array | None = None
              ) -> tuple[TrainState, EpochMetrics]:
    """What one model's epoch does after its steps: validation accuracy and selection.

    Args:
      state: the model's state at the start of the epoch (its best-so-far snapshot).
      step_state: variables and optimizer state after the epoch's steps.
      val_logits: eval-mode logits ``[V, C]`` on the validation inputs (None without them).
      dropped: DP-SGD Poisson: members sampled beyond the cap this epoch (int32 scalar).
    """
    recipe = config.recipe
    variables, opt_state = step_state
    if config.has_val:
        val_acc = jnp.mean((jnp.argmax(val_logits, -1) == y_val).astype(jnp.float32))
        if recipe.selection == "best_val":
            improved = val_acc > state.best_val_acc + recipe.min_improvement
        else:
            improved = jnp.bool_(True)
    else:
        val_acc = jnp.float32(jnp.nan)
        improved = jnp.bool_(True)
    best_variables = _select(improved, variables, state.best_variables)
    new_state = TrainState(
        variables=variables,
        opt_state=opt_state,
        best_variables=best_variables,
        best_val_acc=jnp.where(improved, jnp.nan_to_num(val_acc, nan=0.0), state.best_val_acc),
        best_epoch=jnp.where(improved, epoch, state.best_epoch).astype(jnp.int32),
        example_state=example_state,
    )
    seen = jnp.maximum(sums.seen, 1.0)
    dropped = jnp.int32(0) if dropped is None else jnp.asarray(dropped, jnp.int32)
    return new_state, EpochMetrics(sums.loss / seen, sums.correct / seen, val_acc, dropped)


def _zero_sums() -> EpochSums:
    return EpochSums(jnp.float32(0), jnp.float32(0), jnp.float32(0))


def train_epoch(config: EpochConfig, state: TrainState, key: jax.Array, keep_row: jax.Array,
                epoch: jax.Array, data: TrainData,
                targets: jax.Array | None = None) -> tuple[TrainState, EpochMetrics]:
    """One epoch of one model in one program (the "scan" loop strategy).

    :func:`epoch_start`, the steps in a while loop (:func:`loop_steps`, every step guarded)
    and :func:`epoch_end`, with the eval-mode passes batched in a while loop
    (:func:`_eval_logits`).

    Args:
      config: the recipe, step functions and static epoch shape.
      state: the model's :class:`TrainState` (no model axis).
      key: the model's base key (:func:`model_key`).
      keep_row: bool ``[N]``, the model's members.
      epoch: int32 scalar, 0-based.
      data: the candidates and validation data.
      targets: optional ``[N, C]`` per-example targets of this model (``LossContext.targets``).

    Returns:
      ``(new_state, EpochMetrics)``.
    """
    recipe, fns = config.recipe, config.fns
    x, y = data.x, data.y
    example_logits = None
    if recipe.example_state is not None:
        example_logits = _eval_logits(fns.apply_fn, state.variables, x, config.eval_batch_size,
                                      epoch)
    step_state, example_state, steps = epoch_start(config, state, key, keep_row, epoch, y,
                                                   example_logits)
    # Every step guarded, in one loop: a guarded step rounds differently from an unguarded
    # one (XLA fuses the select into the update), so an unguarded head and a guarded tail
    # would make a model's bits depend on the other models' member counts and on how each
    # strategy fuses the boundary.
    step_state, sums = loop_steps(fns, step_state, _zero_sums(), steps, jnp.int32(0),
                                  opaque(config.num_steps, epoch), x, y, example_state, epoch,
                                  guard=True, targets=targets)
    val_logits = None
    if config.has_val:
        val_logits = _eval_logits(fns.apply_fn, step_state.variables, data.x_val,
                                  config.eval_batch_size, epoch)
    dropped = None if steps.dropped is None else jnp.sum(steps.dropped)
    return epoch_end(config, state, step_state, sums, example_state, val_logits, epoch,
                     data.y_val, dropped)


def _per_model(one_model: Callable, in_axes: tuple) -> Callable:
    """``one_model`` over the leading model axis of the arguments with ``in_axes`` 0.

    With one model the size-1 axis is dropped instead of vmapped, so that XLA sees plain (not
    batched) matmuls and convolutions; on CPU this runs ~1.5x faster than vmap.
    """

    def fn(*args):
        first = next(a for a, ax in zip(args, in_axes) if ax == 0)
        if jax.tree_util.tree_leaves(first)[0].shape[0] == 1:
            squeeze = lambda t: jax.tree_util.tree_map(lambda a: a[0], t)
            out = one_model(*[squeeze(a) if ax == 0 else a for a, ax in zip(args, in_axes)])
            return jax.tree_util.tree_map(lambda a: a[None], out)
        return jax.vmap(one_model, in_axes=in_axes)(*args)

    return fn


def _make_epoch_fn(config: EpochConfig, *, donate: bool):
    """The jitted one-epoch program of a chunk: ``(state, keys, keep, epoch, data, targets)``
    (``targets``: ``[M, N, C]`` or None)."""
    over_models = _per_model(functools.partial(train_epoch, config), (0, 0, 0, None, None, 0))

    def epoch_fn(state, keys, keep, epoch, data, targets=None):
        TRACE_COUNTS["epoch"] += 1
        return over_models(state, keys, keep, epoch, data, targets)

    return jax.jit(epoch_fn, donate_argnums=(0,) if donate else ())


class HostLoop:
    """The "host" loop strategy: an epoch driven from Python in small loop-free programs.

    Every program runs on all models of a chunk (model axis first) and has no while loop:
    ``start`` (:func:`epoch_start`), ``steps[n]`` (``n`` unrolled steps from a traced offset,
    :func:`unrolled_steps`; ``n`` is ``steps_per_call`` or the remainder of the epoch, so at
    most two step programs are compiled), ``eval`` (eval-mode logits
    of one batch of ``eval_batch_size`` rows at a traced offset) and ``end``
    (:func:`epoch_end`). The same operations as :func:`train_epoch` in the same order, so
    results are bit-identical to the "scan" strategy on CPU (see the module docstring).
    """

    def __init__(self, config: EpochConfig, steps_per_call: int):
        self.config = config
        self.steps_per_call = steps_per_call
        fns = config.fns
        self.start = jax.jit(_per_model(
            lambda state, key, keep_row, epoch, y, logits: epoch_start(
                config, state, key, keep_row, epoch, y, logits),
            (0, 0, 0, None, None, 0)))
        self.end = jax.jit(_per_model(
            lambda state, step_state, sums, example_state, val_logits, epoch, y_val, dropped:
            epoch_end(config, state, step_state, sums, example_state, val_logits, epoch, y_val,
                      dropped),
            (0, 0, 0, 0, 0, None, None, 0)))

        def eval_batch(variables, x, start, size):
            TRACE_COUNTS["host_eval"] += 1
            xb = jax.lax.dynamic_slice_in_dim(x, start, size)
            return _per_model(lambda v: fns.apply_fn(v, xb, train=False)[0], (0,))(variables)

        self.eval_batch = jax.jit(eval_batch, static_argnums=(3,))
        # No buffer donation: the programs' outputs may forward their inputs' buffers.
        self._steps: dict[int, Callable] = {}

    def _steps_fn(self, num: int) -> Callable:
        if num not in self._steps:
            fns = self.config.fns

            def run(step_state, sums, steps, start, x, y, example_state, epoch, targets):
                TRACE_COUNTS["host_steps"] += 1
                return _per_model(
                    lambda st, su, sp, es, tg: unrolled_steps(
                        fns, st, su, sp, start, x, y, es, epoch, num=num, guard=True,
                        targets=tg),
                    (0, 0, 0, 0, 0))(step_state, sums, steps, example_state, targets)

            self._steps[num] = jax.jit(run)
        return self._steps[num]

    def logits(self, variables, x) -> jax.Array:
        """Eval-mode logits ``[M, n, C]`` of every model of a chunk, one batch per call (the
        batches of :func:`_eval_batches`)."""
        size, starts = _eval_batches(x.shape[0], self.config.eval_batch_size)
        parts = []
        for lo, start in zip(range(0, x.shape[0], size), starts):
            out = self.eval_batch(variables, x, jnp.int32(start), size)
            parts.append(out[:, lo - start:] if lo != start else out)
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=1)

    def __call__(self, state, keys, keep, epoch, data, targets=None):
        """One epoch of a chunk, like the jitted ``train_epoch`` over models."""
        config = self.config
        logits = None
        if config.recipe.example_state is not None:
            logits = self.logits(state.variables, data.x)
        step_state, example_state, steps = self.start(state, keys, keep, epoch, data.y, logits)
        num_models = keep.shape[0]
        sums = jax.tree_util.tree_map(lambda a: jnp.zeros((num_models,), a.dtype), _zero_sums())
        sums = jax.device_put(sums, keep.sharding)
        k = self.steps_per_call
        for s in range(0, config.num_steps, k):
            step_state, sums = self._steps_fn(min(k, config.num_steps - s))(
                step_state, sums, steps, jnp.int32(s), data.x, data.y, example_state, epoch,
                targets)
        val_logits = None
        if config.has_val:
            val_logits = self.logits(step_state.variables, data.x_val)
        dropped = None if steps.dropped is None else jnp.sum(steps.dropped, axis=1)
        return self.end(state, step_state, sums, example_state, val_logits, epoch, data.y_val,
                        dropped)


LOOPS = ("auto", "scan", "host")
PRECISIONS = ("auto", "float32", "bfloat16")


def choose_precision(precision: str, platform: str) -> str:
    """``"float32"`` or ``"bfloat16"``: ``"auto"`` is bfloat16 on GPU/TPU, float32 on CPU.

    Example:
      >>> choose_precision("auto", "cpu"), choose_precision("auto", "gpu")
      ('float32', 'bfloat16')
    """
    validation.check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    return "float32" if platform == "cpu" else "bfloat16"


def mixed_precision_apply(apply_fn: ApplyFn, compute_dtype=jnp.bfloat16) -> ApplyFn:
    """``apply_fn`` computing in ``compute_dtype`` on float32 variables.

    Floating variables and inputs are cast to ``compute_dtype`` for the forward pass (so
    gradients reach the float32 parameters through the cast); the logits come back as
    float32 (the loss and softmax run in float32) and updated floating variables (BatchNorm
    statistics) are cast back to their stored dtype.
    """

    def cast(tree, dtype):
        return jax.tree_util.tree_map(
            lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

    def apply(variables, x, *, train, key=None):
        logits, new_variables = apply_fn(cast(variables, compute_dtype),
                                         cast(x, compute_dtype), train=train, key=key)
        new_variables = jax.tree_util.tree_map(lambda new, old: new.astype(old.dtype),
                                               new_variables, variables)
        return logits.astype(jnp.float32), new_variables

    return apply
DEFAULT_STEPS_PER_CALL = 4


def has_convolution(apply_fn: ApplyFn, variables_shape: Any, sample_x: Any) -> bool:
    """Whether the model's eval-mode forward pass contains a convolution with JAX's own
    gradient (from its jaxpr).

    Convolutions inside a ``custom_vjp`` (the zoo's :mod:`hampjax.models.convolution`, whose
    backward pass is written with forward convolutions and dots) do not count: they run at full
    speed inside a while loop on XLA:CPU, while JAX's transpose rule emits convolutions that
    XLA:CPU runs ~30x slower there.
    """
    jaxpr = jax.make_jaxpr(lambda v, x: apply_fn(v, x, train=False)[0])(
        variables_shape, jax.ShapeDtypeStruct(sample_x.shape, sample_x.dtype))

    def walk(jaxpr) -> bool:
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                return True
            if eqn.primitive.name.startswith("custom_vjp_call"):
                continue
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                if walk(sub):
                    return True
        return False

    return walk(jaxpr.jaxpr)


def choose_loop(loop: str, platform: str, *, has_conv: bool) -> str:
    """The loop strategy of a run: ``"scan"`` or ``"host"``.

    ``"auto"`` picks ``"host"`` on CPU for models with a convolution that uses JAX's own
    gradient (:func:`has_convolution`; XLA:CPU runs those inside a while loop ~30x slower than
    outside one) and ``"scan"`` otherwise: dense models and the zoo's conv nets on CPU (their
    convolutions come from :mod:`hampjax.models.convolution`), every model on accelerators. One
    program per epoch, no per-step dispatch. See the module docstring for the measurements.

    Example:
      >>> choose_loop("auto", "cpu", has_conv=True), choose_loop("auto", "gpu", has_conv=True)
      ('host', 'scan')
      >>> choose_loop("auto", "cpu", has_conv=False)  # dense models and the zoo's conv nets
      'scan'
    """
    validation.check_choice("loop", loop, LOOPS)
    if loop != "auto":
        return loop
    return "host" if platform == "cpu" and has_conv else "scan"


def _make_init_fn(init_fn, optimizer, learning_rate, num_examples: int):
    """The jitted initializer of a chunk: ``(keys [M], sample_x) -> TrainState``."""

    def one(key, sample_x):
        variables = dict(init_fn(jax.random.fold_in(key, _INIT), sample_x))
        opt_state = _with_learning_rate(optimizer.init(variables["params"]), learning_rate(0))
        return TrainState(
            variables=variables,
            opt_state=opt_state,
            best_variables=variables,
            best_val_acc=jnp.float32(-1.0),
            best_epoch=jnp.int32(-1),
            example_state=jnp.zeros((num_examples,), jnp.float32),
        )

    return jax.jit(jax.vmap(one, in_axes=(0, None)))
