"""DMP students (Shejwalkar & Houmansadr 2021) in the batched engine: training on a reference
set that is regenerated and labelled inside the jitted step.

A recipe with ``spec.reference.kind != "none"`` (a distillation defense) is trained by
:func:`~hampjax.training.train_many` as usual (model axis vmapped, chunks, optimizer,
schedule, ``best_val`` selection, checkpoints, resume); its epochs run the programs of this
module instead of the engine's plain epoch. ``train_many``'s ``targets`` carries each model's
:class:`StudentData` (its teacher's variables and, for ``kind="gan"``, its generator's) with a
leading model axis; every step builds the batch from it:

* ``kind="gan"``: rows ``r`` of model ``m``'s synthetic set (``R = reference.size``) are
  :func:`hampjax.training.gan.generate`\\ d from the generator with the sample key
  ``fold_in(model_key(seed, m), SAMPLE_STREAM)``. With ``sample_mode="train_bn"`` the rows are
  generated in fixed groups of ``batch_size`` consecutive rows (BatchNorm statistics per
  group; the last group is completed with rows past ``R``, generated but never trained on),
  and a student batch is one group, the groups in a shuffled order; with ``"eval_bn"`` rows are
  independent and a batch is ``batch_size`` rows of a shuffled order of the ``R`` rows.
* ``kind="given"``: rows of the shared reference set, passed to ``train_many`` as its ``x``
  (``keep`` all True), in a shuffled order.

The labels are the teacher's eval-mode logits on the batch (``LossContext.targets``; the
integer labels of the loss are their argmax, so ``train_acc`` is the student's agreement with
its teacher). An epoch is ``passes_per_epoch`` passes of ``ceil(R / batch_size)`` steps (order
per ``spec.shuffle``: ``"once"``, one fixed order for every pass and epoch; ``"every_epoch"``,
a fresh one per pass). ``M x R`` inputs or teacher outputs are never stored.

:func:`train_students` is the whole of DMP for ``M`` models given their teachers: GANs on
their members (:func:`hampjax.training.gan.train_gans`, ``workdir/gan``) then the students
(``workdir/student``). Loop strategy: ``"scan"`` runs an epoch as one program; ``"host"``
drives ``steps_per_call`` unrolled steps from Python (chosen on CPU for a DC-GAN or a
convolutional student, whose convolutions XLA:CPU runs slowly inside loops).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hampjax.training import engine, gan
from hampjax.training import epoch as epoch_lib
from hampjax.training.engine import Programs
from hampjax.training.epoch import (
    TRACE_COUNTS,
    EpochConfig,
    TrainState,
    epoch_batches,
    epoch_end,
)
from hampjax.training.recipes import Recipe
from hampjax.training.step import (
    Batch,
    EpochSums,
    StepFns,
    StepState,
    fence,
    opaque,
    train_step,
)

__all__ = ["StudentData", "ReferenceConfig", "ReferenceLoop", "ReferenceInputs",
           "StudentResult", "student_steps", "student_batch", "reference_epoch",
           "build_programs", "reference_sha256", "load_reference_npy", "check_reference_set",
           "train_students"]


class StudentData(NamedTuple):
    """One model's data of a DMP student (``train_many``'s ``targets``, model axis first).

    Attributes:
      teacher: the teacher's variables.
      generator: the generator's variables (``kind="gan"``), ``{}`` for ``"given"``.
      mean, std: float32 ``[C]`` :class:`~hampjax.training.gan.Scaling` of the inputs.
    """

    teacher: dict
    generator: dict
    mean: jax.Array
    std: jax.Array


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    """What one student's epoch needs besides its state and data (static for a run).

    Attributes:
      epoch: the engine's epoch config (recipe, step functions, validation settings);
        ``num_steps`` is the steps of one pass.
      gan: the GAN's functions (``kind="gan"``), else None.
      rows: ``R``, reference rows per model.
      grouped: batches are fixed groups of generated rows (``sample_mode="train_bn"``).
    """

    epoch: EpochConfig
    gan: gan.GanFns | None
    rows: int
    grouped: bool

    @property
    def passes(self) -> int:
        return self.epoch.recipe.spec.reference.passes_per_epoch

    @property
    def num_steps(self) -> int:
        """Steps per epoch (all passes)."""
        return self.passes * self.epoch.num_steps


def student_steps(config: ReferenceConfig, key: jax.Array, epoch: jax.Array
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The reference rows of every step of one student's epoch.

    Returns:
      ``(rows [S, B] int32, where [S, B] bool, keys [S, 2])`` with ``S`` the epoch's steps
      (all passes) and ``B`` the batch size; rows past ``R`` (or repeated ones) are padding.
    """
    recipe = config.epoch.recipe
    b, per_pass, rows = recipe.batch_size, config.epoch.num_steps, config.rows
    every = recipe.shuffle == "every_epoch"

    def one_pass(p):
        order_epoch = epoch * config.passes + p if every else jnp.int32(0)
        if config.grouped:
            groups, _ = epoch_batches(key, jnp.ones((per_pass,), bool), order_epoch,
                                      batch_size=per_pass, num_steps=1, shuffle=recipe.shuffle)
            idx = groups[0][:, None] * b + jnp.arange(b, dtype=jnp.int32)
            return idx, idx < rows
        return epoch_batches(key, jnp.ones((rows,), bool), order_epoch, batch_size=b,
                             num_steps=per_pass, shuffle=recipe.shuffle)

    idx, where = jax.vmap(one_pass)(jnp.arange(config.passes))
    idx, where = idx.reshape(-1, b), where.reshape(-1, b)
    step_key = jax.random.fold_in(jax.random.fold_in(key, epoch_lib._STEP), epoch)
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(step_key, i)))(
        jnp.arange(idx.shape[0]))
    return idx, where, keys


def student_batch(config: ReferenceConfig, data: StudentData, key: jax.Array, x: jax.Array,
                  rows: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inputs ``[B, ...]`` and teacher eval-mode logits ``[B, C]`` of reference rows ``rows``.

    ``key`` is the model's base key (:func:`~hampjax.training.epoch.model_key`); ``x`` the
    shared reference set (``kind="given"``; unused for ``"gan"``).
    """
    if config.gan is not None:
        skey = jax.random.fold_in(key, gan.SAMPLE_STREAM)
        inputs = gan.generate(config.gan, data.generator, gan.Scaling(data.mean, data.std),
                              skey, rows)
    else:
        inputs = x[rows]
    logits = config.epoch.fns.apply_fn(data.teacher, inputs, train=False)[0]
    return inputs, jax.lax.stop_gradient(logits)


def _one_step(config: ReferenceConfig, carry, data: StudentData, key, x, steps, i, epoch):
    state, sums = carry
    rows, where, keys = (jax.lax.dynamic_index_in_dim(a, i, keepdims=False) for a in steps)
    inputs, teacher = student_batch(config, data, key, x, rows)
    labels = jnp.argmax(teacher, -1).astype(jnp.int32)
    batch = Batch(inputs, labels, where, jnp.zeros(where.shape, jnp.float32), keys[0], keys[1],
                  teacher)
    state, out = train_step(config.epoch.fns, state, batch, epoch)
    return state, EpochSums(sums.loss + out.loss * out.count, sums.correct + out.hits,
                            sums.seen + out.count)


def _start(config: ReferenceConfig, state: TrainState, key, epoch):
    recipe, fns = config.epoch.recipe, config.epoch.fns
    opt_state = state.opt_state
    if recipe.reset_optimizer_each_epoch:
        opt_state = fns.optimizer.init(state.variables["params"])
    opt_state = epoch_lib._with_learning_rate(opt_state, recipe.learning_rate(epoch))
    zero = jnp.float32(0)
    return (StepState(state.variables, opt_state), EpochSums(zero, zero, zero),
            student_steps(config, key, epoch))


def _end(config: ReferenceConfig, state, step_state, sums, data_val, epoch):
    cfg = config.epoch
    x_val, y_val = data_val
    val_logits = None
    if cfg.has_val:
        val_logits = epoch_lib._eval_logits(cfg.fns.apply_fn, step_state.variables, x_val,
                                            cfg.eval_batch_size, epoch)
    return epoch_end(cfg, state, step_state, sums, state.example_state, val_logits, epoch,
                     y_val)


def reference_epoch(config: ReferenceConfig, state: TrainState, key: jax.Array,
                    keep_row: jax.Array, epoch: jax.Array, data: epoch_lib.TrainData,
                    student: StudentData):
    """One student epoch in one program (steps in a while loop); no model axis."""
    del keep_row  # the student never sees the candidates
    step_state, sums, steps = _start(config, state, key, epoch)

    def body(i, carry):
        return _one_step(config, carry, student, key, data.x, steps, i, epoch)

    # A trip count XLA cannot see: a known single trip would be inlined and fused with the
    # code around it, which rounds differently from the "host" loop's programs.
    total = opaque(config.num_steps, epoch)
    step_state, sums = jax.lax.fori_loop(jnp.int32(0), total, body, (step_state, sums))
    return _end(config, state, step_state, sums, (data.x_val, data.y_val), epoch)


class ReferenceLoop:
    """A chunk's student epoch, ``(state, keys, keep, epoch, data, students) -> (state,
    metrics)`` like the engine's epoch program: one jitted program (``loop="scan"``) or
    Python-driven loop-free programs of ``steps_per_call`` steps (``"host"``), the same
    operations in the same order."""

    def __init__(self, config: ReferenceConfig, *, loop: str, steps_per_call: int,
                 donate: bool, footprint_args: tuple = ()):
        self.config, self.loop, self.steps_per_call = config, loop, steps_per_call
        per_model = epoch_lib._per_model

        def whole(state, keys, keep, epoch, data, students):
            TRACE_COUNTS["epoch"] += 1
            return per_model(functools.partial(reference_epoch, config),
                             (0, 0, 0, None, None, 0))(state, keys, keep, epoch, data, students)

        self.program = jax.jit(whole, donate_argnums=(0,) if donate else ())
        self.footprint_program = jax.jit(whole)  # what measure_footprint compiles
        self.footprint_args = footprint_args
        self.start = jax.jit(per_model(lambda s, k, e: _start(config, s, k, e), (0, 0, None)))
        self.end = jax.jit(per_model(
            lambda s, st, su, xv, yv, e: _end(config, s, st, su, (xv, yv), e),
            (0, 0, 0, None, None, None)))
        self._steps: dict[int, Callable] = {}

    def _steps_fn(self, num: int) -> Callable:
        if num not in self._steps:
            config = self.config

            def run(carry, students, keys, x, steps, start, epoch):
                TRACE_COUNTS["host_steps"] += 1

                def one(c, d, k, sp):
                    for i in range(num):
                        if i:  # each step compiles as it does alone
                            c = fence(c, epoch)
                        c = _one_step(config, c, d, k, x, sp, start + i, epoch)
                    return c

                return epoch_lib._per_model(one, (0, 0, 0, 0))(carry, students, keys, steps)

            self._steps[num] = jax.jit(run)
        return self._steps[num]

    def __call__(self, state, keys, keep, epoch, data, students):
        if self.loop == "scan":
            return self.program(state, keys, keep, epoch, data, students)
        step_state, sums, steps = self.start(state, keys, epoch)
        carry = (step_state, sums)
        total, k = self.config.num_steps, self.steps_per_call
        for s in range(0, total, k):
            carry = self._steps_fn(min(k, total - s))(carry, students, keys, data.x, steps,
                                                      jnp.int32(s), epoch)
        return self.end(state, *carry, data.x_val, data.y_val, epoch)


_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_MAX_PROGRAMS = 4


def build_programs(model: Any, init_fn: Callable, apply_fn: Callable, recipe: Recipe, *,
                   keep: np.ndarray, sample_x: Any, has_val: bool, eval_batch_size: int,
                   donate: bool, loop: str, steps_per_call: int, students: Any,
                   platform: str = "cpu") -> Programs:
    """The compiled pieces of a DMP student run (the engine's :class:`Programs` with a
    :class:`ReferenceLoop` as ``epoch_fn``); cached across runs of the same model, recipe
    settings and shapes. ``students``: the run's :class:`StudentData` (host, model axis
    first; only its shapes are used); ``platform``: the run's backend (a DC-GAN on CPU runs
    the ``"host"`` loop)."""
    spec = recipe.spec
    ref = spec.reference
    sample_x = np.asarray(sample_x)
    if ref.kind == "gan":
        fns = gan.gan_functions(ref, sample_x.shape[1:])
        rows = ref.size
    else:
        fns = None
        rows = int(np.asarray(keep).shape[1])
    grouped = fns is not None and ref.sample_mode == "train_bn"
    if fns is not None and platform == "cpu" and ref.generator == "dcgan":
        loop = "host"  # XLA:CPU runs the generator's transposed convolutions slowly in loops
    per_pass = max(1, math.ceil(rows / spec.batch_size))
    recipe_key = (recipe.loss, recipe.optimizer, recipe.learning_rate, spec.batch_size,
                  spec.selection, spec.min_improvement, spec.reset_optimizer_each_epoch,
                  spec.shuffle, ref)
    shapes = jax.tree_util.tree_map(lambda a: (np.shape(a)[1:], np.asarray(a).dtype.str),
                                    students)
    key = (model, recipe_key, rows, has_val, eval_batch_size, donate, loop, steps_per_call,
           jax.tree_util.tree_structure(students), tuple(jax.tree_util.tree_leaves(shapes)),
           sample_x.shape[1:], int(np.asarray(keep).shape[1]))
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    optimizer = optax.inject_hyperparams(recipe.optimizer)(learning_rate=recipe.learning_rate(0))
    epoch_config = EpochConfig(recipe=recipe, fns=StepFns(apply_fn, recipe.loss, optimizer),
                               num_steps=per_pass, has_val=has_val,
                               eval_batch_size=eval_batch_size)
    config = ReferenceConfig(epoch=epoch_config, gan=fns, rows=rows, grouped=grouped)
    one = jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((1,) + np.shape(a)[1:], np.asarray(a).dtype), students)
    programs = Programs(
        optimizer,
        epoch_lib._make_init_fn(init_fn, optimizer, recipe.learning_rate,
                                int(np.asarray(keep).shape[1])),
        ReferenceLoop(config, loop=loop, steps_per_call=steps_per_call, donate=donate,
                      footprint_args=(one,)),
        epoch_config,
    )
    _PROGRAMS[key] = programs
    while len(_PROGRAMS) > _MAX_PROGRAMS:
        _PROGRAMS.popitem(last=False)
    return programs


engine.EPOCH_PROGRAMS["reference"] = build_programs


# ----------------------------------------------------------------------------------------------
# The given reference set, and DMP end to end.


def reference_sha256(x: Any) -> str:
    """SHA-256 (hex) of a reference set's shape, dtype and bytes: ``reference.given_sha256``.

    Example:
      >>> reference_sha256(np.zeros((2, 3), np.float32))[:12]
      '3a4a3b1c8792'
    """
    x = np.ascontiguousarray(np.asarray(x))
    digest = hashlib.sha256(f"{tuple(x.shape)} {x.dtype.str};".encode())
    digest.update(x.tobytes())
    return digest.hexdigest()


def check_reference_set(x_reference: Any, sample_shape: tuple[int, ...], *,
                        name: str = "x_reference") -> np.ndarray:
    """A given reference set as float32 ``[R, *sample_shape]``.

    Raises:
      ValueError: naming ``name``, unless it is a non-empty floating array of that shape with
        finite values (nothing is cast from integers or clipped).
    """
    x = np.asarray(x_reference)
    if x.ndim != len(sample_shape) + 1 or tuple(x.shape[1:]) != tuple(sample_shape):
        raise ValueError(f"{name} must have shape [R, {', '.join(map(str, sample_shape))}] "
                         f"(rows shaped like the candidates), got {x.shape}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} must have at least one row, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must hold floats (normalized model inputs), got dtype "
                         f"{x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite; it holds "
                         f"{int(np.sum(~np.isfinite(x)))} NaN or infinite values")
    return x.astype(np.float32, copy=False)


def load_reference_npy(path: str | os.PathLike, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Load an external ``.npy`` of synthetic / public rows (never unpickled).

    Args:
      path: the file (``np.load(path, allow_pickle=False)``).
      sample_shape: one model input's shape (``EvalData.x.shape[1:]``).

    Returns:
      float32 ``[R, *sample_shape]`` (:func:`check_reference_set`); put its
      :func:`reference_sha256` in ``reference.given_sha256``.

    Raises:
      ValueError: naming the path, for a missing or unreadable file, an object array, or a
        wrong shape, dtype or non-finite value.
    """
    path = os.fspath(path)
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"reference set {path!r} is not a readable .npy without pickled "
                         f"objects ({type(e).__name__}: {e})") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"reference set {path!r} must be a .npy array, not an archive")
    return check_reference_set(x, sample_shape, name=f"reference set {path!r}")


@dataclasses.dataclass(frozen=True)
class ReferenceInputs:
    """What a DMP run reads from the evaluation data (``EvalData``).

    Attributes:
      normalization: ``(mean, std)`` with which the inputs were normalized from [0, 1]
        (``EvalData.normalization``), or None for inputs in [0, 1].
      x_reference: the given reference set (``reference.kind="given"``), else None.
    """

    normalization: Any = None
    x_reference: Any = None


@dataclasses.dataclass(frozen=True)
class StudentResult:
    """:func:`train_students`' result: the students' ``TrainResult`` and the GANs'."""

    students: Any
    gans: gan.GanResult | None


def _students_data(teachers: Any, generators: Any, scaling: gan.Scaling,
                   num_models: int) -> StudentData:
    def tile(a):
        return np.broadcast_to(np.asarray(a, np.float32), (num_models,) + np.shape(a))

    return StudentData(dict(teachers), {} if generators is None else dict(generators),
                       np.ascontiguousarray(tile(scaling.mean)),
                       np.ascontiguousarray(tile(scaling.std)))


def train_students(model: Any, recipe: Recipe, teachers: Any, x: Any, y: Any, keep: Any, *,
                   seed: int, inputs: ReferenceInputs = ReferenceInputs(), val_data: Any = None,
                   workdir: str | None = None, progress: bool = False,
                   gan_chunk_size: int | None = None) -> StudentResult:
    """DMP for ``M = keep.shape[0]`` models whose teachers are trained: GANs then students.

    Args:
      model: the student's (and teacher's) Flax module.
      recipe: the student recipe (``spec.reference.kind != "none"``).
      teachers: the teachers' variables, stacked ``[M, ...]`` (teacher ``m`` trained on
        ``keep[m]``).
      x, y: the candidates; ``keep``: bool ``[M, N]`` members.
      seed: the run's seed (GAN ``m``: ``fold_in(model_key(seed, m), GAN_STREAM)``; its
        synthetic rows: ``SAMPLE_STREAM``).
      inputs: normalization of the inputs and the given reference set.
      val_data: optional ``(x_val, y_val)`` (``best_val`` selection).
      workdir: optional; GANs in ``workdir/gan``, students in ``workdir/student``.
      progress: show the students' progress bar.
      gan_chunk_size: GANs trained together (performance only).

    Returns:
      :class:`StudentResult`.

    Raises:
      ValueError: for a recipe without a reference set, a missing given set or one whose
        :func:`reference_sha256` differs from ``reference.given_sha256``.
    """
    ref = recipe.spec.reference
    if ref.kind == "none":
        raise ValueError("recipe.spec.reference.kind must be 'gan' or 'given' for DMP students")
    x, y = np.asarray(x), np.asarray(y)
    keep = np.asarray(keep, bool)
    scaling = gan.Scaling.of(inputs.normalization)
    scaling.check(x.shape[1:])
    sub = (lambda name: os.path.join(workdir, name)) if workdir else (lambda name: None)
    num_models = keep.shape[0]
    from hampjax.training.engine import train_many

    if ref.kind == "gan":
        gans = gan.train_gans(ref, x, keep, seed=seed, normalization=inputs.normalization,
                              workdir=sub("gan"), chunk_size=gan_chunk_size)
        students = _students_data(teachers, gans.generator, scaling, num_models)
        result = train_many(model, recipe, x, y, keep, seed=seed, val_data=val_data,
                            workdir=sub("student"), progress=progress, targets=students)
        return StudentResult(result, gans)
    if inputs.x_reference is None:
        raise ValueError("reference.kind='given' needs the reference set: EvalData.x_reference "
                         "(a held-out / public set, or load_reference_npy(path, ...))")
    x_ref = check_reference_set(inputs.x_reference, x.shape[1:])
    digest = reference_sha256(x_ref)
    if digest != ref.given_sha256:
        raise ValueError(f"reference.given_sha256 is {ref.given_sha256!r} but the given "
                         f"reference set's reference_sha256 is {digest!r}: not the set the "
                         f"recipe names")
    students = _students_data(teachers, None, scaling, num_models)
    result = train_many(model, recipe, x_ref, np.zeros(len(x_ref), np.int32),
                        np.ones((num_models, len(x_ref)), bool), seed=seed, val_data=val_data,
                        workdir=sub("student"), progress=progress, targets=students)
    return StudentResult(result, None)
