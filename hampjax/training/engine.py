"""The batched training engine: M models, one recipe, one XLA program.

:func:`train_many` trains M models of one architecture with one :class:`~hampjax.training.Recipe`,
each on its own subset of a shared candidate set given by a keep matrix ``keep [M, N]``. All
model state (parameters, BatchNorm statistics, optimizer state, best-so-far snapshot) is stacked
along a leading model axis, and one jitted function runs a whole epoch for every model of a chunk:
``vmap`` over models of a while loop over minibatch steps. Shapes are static:

* every model walks ``ceil(max_m n_m / B)`` steps per epoch, where ``n_m`` is its number of
  members; the minibatch of model m at step s holds positions ``[sB, sB + B)`` of its own
  shuffled member list. Positions past ``n_m`` are padding: they are filled with the model's own
  members again (never with non-members, so BatchNorm statistics see only members) and carry
  zero loss weight; a step with no real example leaves the model and its optimizer untouched.
  For models without BatchNorm this is exactly "walk the members in batches of B, last partial
  batch kept".
* per-model randomness comes from ``fold_in(key(seed), global model index)``, so a model's result
  does not depend on the chunk size or the number of devices.

DP-SGD (``recipe.spec.privacy.kind == "dp_sgd"``, :func:`dp_config`): the step clips each
example's gradient and adds Gaussian noise from the model's own key (stream ``fold_in(key, 3)``,
per epoch and step); with Poisson sampling a model's batches come from
:func:`hampjax.defenses.dp_sgd.poisson_batches` (``ceil(n_m / B)`` steps of expected size
``n_m // steps``, padded to ``B + ceil(poisson_cap * sqrt(B))`` rows; members sampled beyond
that are dropped and counted in ``TrainResult.dp_overflow``), with shuffled sampling they are the
ordinary batches above. Dense models get per-example norms without per-example gradients, other
models vmap grad over examples (``performance["dp_per_example"]``); BatchNorm is refused.

The step is a module-level function, :func:`train_step` (one model, one minibatch), run by
:func:`loop_steps` over a range of steps; :func:`~hampjax.training.epoch.train_epoch` is one
model's epoch (example state, steps, validation, selection), vmapped over the models of a
chunk (:mod:`hampjax.training.epoch`, which also holds the loop strategies). What changes
results (the :class:`~hampjax.training.Recipe`, and ``precision``) stays apart from what only
changes speed (chunk size, devices, eval batch size, loop strategy), which is returned in
``TrainResult.performance`` and never enters the run's fingerprint.

Performance choices, and the measurements behind them (2-core CPU, XLA:CPU, jax 0.10):

* Loop strategy and precision: see :mod:`hampjax.training.epoch`.
* Models per device on CPU: one. Vmapping several models turns matmuls into batched matmuls
  and convolutions into grouped convolutions; on CPU one model per device measured ~1.15x
  faster for the FC net, and 2.7x faster for ResNet-20 (``bench_shadow.py --model resnet20
  --models 2 --samples 512 --epochs 1``: 1.24 s per model-epoch with ``--chunk-size 1``
  against 3.31 s with 2 models vmapped, load ~1.7).
* Chunk size on accelerators (:func:`auto_chunk_size`): from the measured footprint of the
  one-model epoch program (its compiled ``memory_analysis()``: arguments, outputs and
  temporaries; the replicated data counted once), so that a chunk uses at most 80% of device
  memory.

The model axis of a chunk is sharded across devices with ``NamedSharding`` over a
``("models",)`` mesh; models beyond what fits are trained chunk after chunk. With a ``workdir``
(:mod:`hampjax.training.checkpoint`) every chunk checkpoints with orbax every ``save_every``
epochs and its finished models are stored by model range: a killed run started again (with any
chunk size or devices) loads the finished models and resumes the others from their last
checkpoint, bit-identically on CPU, and a run asked for more models trains only the new ones.
On several hosts (``jax.distributed``), each process trains the chunks ``i`` with
``i % process_count == process_index`` on its local devices; only process 0 writes the shared
files and holds the workdir's lock.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hampjax import atomic, validation
from hampjax.defenses import dp_sgd
from hampjax.runlock import RunLock
from hampjax.training import checkpoint as ckpt
from hampjax.training.membership import check_keep
from hampjax.training.checkpoint import run_fingerprint
from hampjax.training.recipes import LossContext, Recipe
from hampjax.training.spec import DEFENSES
from hampjax.training.epoch import (
    DEFAULT_STEPS_PER_CALL,
    LOOPS,
    PRECISIONS,
    TRACE_COUNTS,
    ApplyFn,
    EpochConfig,
    HostLoop,
    InitFn,
    TrainData,
    TrainState,
    _make_epoch_fn,
    _make_init_fn,
    _num_steps,
    choose_loop,
    choose_precision,
    epoch_batches,
    epoch_end,
    epoch_start,
    has_convolution,
    mixed_precision_apply,
    model_key,
    train_epoch,
)
from hampjax.training.step import Batch, DpConfig, StepFns, StepState, loop_steps, train_step

__all__ = [
    "TrainState",
    "TrainResult",
    "train_many",
    "train_step",
    "train_epoch",
    "epoch_start",
    "epoch_end",
    "HostLoop",
    "choose_loop",
    "choose_precision",
    "mixed_precision_apply",
    "loop_steps",
    "StepFns",
    "StepState",
    "Batch",
    "EpochConfig",
    "TrainData",
    "ChunkPlan",
    "RunContext",
    "plan_chunks",
    "run_fingerprint",
    "epoch_batches",
    "model_key",
    "auto_chunk_size",
    "measure_footprint",
    "Footprint",
    "TRACE_COUNTS",
]

# Epoch programs of recipes with an adversary (spec.adversary.kind -> builder with the
# signature of hampjax.training.advreg.build_programs), registered by their modules at import
# (hampjax.training imports them): the engine cannot import them (they import it). "reference":
# DMP students (spec.reference.kind != "none"), hampjax.training.reference.build_programs.
EPOCH_PROGRAMS: dict[str, Callable[..., Any]] = {}


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What :func:`train_many` returns (host NumPy arrays).

    Attributes:
      variables: the selected model of every model index, stacked ``[M, ...]`` (the last epoch
        for ``selection="last"``, the best validation epoch for ``"best_val"``).
      keep: the keep matrix ``[M, N]`` the models were trained with.
      train_loss, train_acc, val_acc: ``[M, epochs]`` per-epoch histories.
      best_epoch: ``[M]`` the selected epoch (0-based).
      snapshots: ``{epoch: variables [M, ...]}`` for the requested snapshot epochs.
      seconds: wall time of the training this call did (0 for models loaded from disk).
      models_trained: models this call trained on this process (resumed ones included).
      models_loaded: models read from finished results in ``workdir`` (by earlier calls, or
        by the other processes of a multi-process run); ``models_trained + models_loaded == M``.
      performance: the settings this call ran with: ``precision`` (results-changing, part of
        a bfloat16 run's fingerprint) and the performance settings ``loop``,
        ``steps_per_call``, ``chunk_size``, ``devices``, ``backend``, ``eval_batch_size``
        (not in the fingerprint; a run may resume with others), ``loop_fallback`` where
        the recipe ran ``"scan"`` instead of the loop asked for (AdvReg), and for DP-SGD runs
        ``dp_per_example`` (``"dense"`` or ``"generic"``) and ``dp_poisson_cap``.
      dp_overflow: ``[M]`` int64, DP-SGD with Poisson sampling: members sampled into a step's
        batch beyond the padded size ``privacy.poisson_cap`` allows, summed over the run
        (dropped from their batch; 0 without DP-SGD). A warning is issued when any is > 0.
    """

    variables: dict
    keep: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    val_acc: np.ndarray
    best_epoch: np.ndarray
    snapshots: dict
    seconds: float
    models_trained: int
    models_loaded: int
    performance: dict = dataclasses.field(default_factory=dict)
    dp_overflow: np.ndarray | None = None


# Compiled programs are reused across train_many calls with the same model, recipe and static
# shapes (e.g. a warm-up call, or the chunks of a resumed run): at most a few are kept.
_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_MAX_PROGRAMS = 8


class Programs(NamedTuple):
    """The compiled pieces of a run."""

    optimizer: optax.GradientTransformation
    init_chunk: Callable  # (keys [M], sample_x) -> TrainState
    epoch_fn: Callable  # (state, keys, keep, epoch, TrainData, targets) -> (TrainState, EpochMetrics)
    # (a jitted train_epoch over models for loop="scan", a HostLoop for loop="host")
    config: EpochConfig


def dp_config(recipe: Recipe, init_fn: InitFn, apply_fn: ApplyFn, sample_x: Any, *,
              model_name: str = "the model") -> DpConfig | None:
    """The DP-SGD step settings of ``recipe`` for this model (None without privacy).

    Resolves ``privacy.per_example="auto"`` to ``"dense"`` when every parameter belongs to a
    ``flax.linen.Dense`` layer (:func:`hampjax.defenses.dp_sgd.dense_support`, traced on a
    two-row batch), else ``"generic"``.

    Raises:
      ValueError: for a model with BatchNorm (examples share batch statistics, so per-example
        gradients are undefined; naming the model), or ``per_example="dense"`` on a model the
        dense path does not apply to (naming why).
    """
    privacy = recipe.spec.privacy
    if privacy.kind == "none":
        return None
    sample_x = jnp.asarray(sample_x)
    shapes = jax.eval_shape(lambda: init_fn(jax.random.key(0), sample_x[:1]))
    if "batch_stats" in shapes:
        raise ValueError(
            f"DP-SGD (privacy.kind='dp_sgd') cannot train {model_name}: it has BatchNorm, "
            "whose batch statistics mix examples, so per-example gradients are undefined; use "
            "a model without BatchNorm (e.g. with GroupNorm, as the RelaxLoss code did)")
    method = privacy.per_example
    if method != "generic":
        variables = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
        x2 = jnp.zeros((2,) + sample_x.shape[1:], sample_x.dtype)
        ctx = LossContext(epoch=jnp.int32(0), key=jax.random.key(0), where=jnp.ones((2,), bool),
                          example_state=jnp.zeros((2,), jnp.float32))

        def per_example(params):
            logits, _ = apply_fn({**variables, "params": params}, x2, train=True,
                                 key=jax.random.key(0))
            return recipe.loss(logits, jnp.zeros((2,), jnp.int32), ctx)

        reason = dp_sgd.dense_support(per_example, variables["params"])
        if reason is not None and method == "dense":
            raise ValueError(f"privacy.per_example='dense' does not apply to {model_name}: "
                             f"{reason}; use 'generic' or 'auto'")
        method = "dense" if reason is None else "generic"
    return DpConfig(clip_norm=privacy.clip_norm, noise_multiplier=privacy.noise_multiplier,
                    per_example=method)


def _programs(model, init_fn, apply_fn, recipe: Recipe, *, num_steps: int,
              has_val: bool, eval_batch_size: int, donate: bool, num_examples: int,
              loop: str, steps_per_call: int, privacy: DpConfig | None = None) -> Programs:
    recipe_key = (recipe.loss, recipe.optimizer, recipe.learning_rate, recipe.batch_size,
                  recipe.selection, recipe.min_improvement, recipe.reset_optimizer_each_epoch,
                  recipe.shuffle, recipe.example_state, recipe.spec.privacy)
    static = (num_steps, has_val, eval_batch_size, donate, num_examples, loop,
              steps_per_call, privacy)
    key = (model, recipe_key, static)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    optimizer = optax.inject_hyperparams(recipe.optimizer)(learning_rate=recipe.learning_rate(0))
    config = EpochConfig(recipe=recipe, fns=StepFns(apply_fn, recipe.loss, optimizer, privacy),
                         num_steps=num_steps, has_val=has_val,
                         eval_batch_size=eval_batch_size)
    programs = Programs(
        optimizer,
        _make_init_fn(init_fn, optimizer, recipe.learning_rate, num_examples),
        (HostLoop(config, steps_per_call) if loop == "host"
         else _make_epoch_fn(config, donate=donate)),
        config,
    )
    _PROGRAMS[key] = programs
    while len(_PROGRAMS) > _MAX_PROGRAMS:
        _PROGRAMS.popitem(last=False)
    return programs


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """Models ``lo .. hi - 1`` trained together, padded to ``size`` models (a multiple of the
    number of devices); padding models repeat model ``lo`` and are discarded."""

    lo: int
    hi: int
    size: int

    @property
    def real(self) -> int:
        return self.hi - self.lo

    def model_index(self) -> np.ndarray:
        index = np.arange(self.lo, self.lo + self.size)
        index[self.real:] = self.lo
        return index


def plan_chunks(num_models: int, finished: Sequence[tuple[int, int]], chunk: int) -> list[ChunkPlan]:
    """Chunks of at most ``chunk`` models over the models ``0 .. num_models - 1`` that are not
    in a ``finished`` range; each chunk is a contiguous range."""
    done = np.zeros(num_models, bool)
    for lo, hi in finished:
        done[lo:hi] = True
    plans = []
    m = 0
    while m < num_models:
        if done[m]:
            m += 1
            continue
        end = m
        while end < num_models and not done[end] and end - m < chunk:
            end += 1
        plans.append(ChunkPlan(m, end, chunk))
        m = end
    return plans


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every chunk of a run shares.

    Attributes:
      recipe: the training recipe.
      seed: the run's seed.
      keep: bool ``[M, N]`` (host).
      programs: the compiled init and epoch programs.
      data: the replicated candidates and validation data.
      sharded: sharding of a chunk's model axis.
      run: the run directory, or None.
      save_every: checkpoint period in epochs.
      snapshot_epochs: epochs after which the variables are also kept.
      bar: the progress bar.
      targets: per-example targets ``[M, N, C]`` (host), or None.
    """

    recipe: Recipe
    seed: int
    keep: np.ndarray
    programs: Programs
    data: TrainData
    sharded: NamedSharding
    run: ckpt.RunDirectory | None
    save_every: int
    snapshot_epochs: tuple[int, ...]
    bar: Any
    targets: np.ndarray | None = None


def train_many(
    model: Any,
    recipe: Recipe,
    x: Any,
    y: Any,
    keep: Any,
    *,
    seed: int,
    val_data: tuple[Any, Any] | None = None,
    workdir: str | os.PathLike | None = None,
    chunk_size: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    save_every: int = 10,
    snapshot_epochs: Sequence[int] = (),
    eval_batch_size: int = 1024,
    progress: bool = True,
    loop: str = "auto",
    steps_per_call: int | None = None,
    precision: str = "auto",
    targets: Any = None,
) -> TrainResult:
    """Train ``M = keep.shape[0]`` models with one recipe, batched and sharded.

    Args:
      model: a Flax module of :mod:`hampjax.models` (or any ``nn.Module`` whose
        ``__call__(x, *, train)`` returns logits), or a pair ``(init_fn, apply_fn)`` as returned
        by :func:`hampjax.models.model_functions`.
      recipe: the training recipe (loss, optimizer, schedule, epochs, batch size, selection).
      x: candidate inputs ``[N, ...]`` (float; already normalized).
      y: integer labels ``[N]``.
      keep: bool ``[M, N]``; model m trains on the candidates with ``keep[m]`` True.
      seed: integer >= 0; every model's randomness derives from ``(seed, model index)``.
      val_data: optional ``(x_val, y_val)`` for per-epoch validation accuracy (required by
        ``selection="best_val"``).
      workdir: optional run directory (see :mod:`hampjax.training.checkpoint`): resumable with
        any chunk size or devices, and extendable (with more rows of ``keep``, only the new
        models train). Locked (:class:`hampjax.runlock.RunLock`) while training.
      chunk_size: models trained together in one program, rounded up to a multiple of the
        number of devices (default: on accelerators as many as a quarter of device memory
        holds, see :func:`auto_chunk_size`; one model per device on CPU, where that is
        faster). Smaller chunks bound memory. Padding models fill a partial chunk and are
        discarded. A performance setting: results do not depend on it.
      devices: devices to shard the model axis over (default: this process's local devices).
      save_every: checkpoint period in epochs (with ``workdir``).
      snapshot_epochs: 0-based epochs after which the models are also kept (early stopping).
      eval_batch_size: batch size of eval-mode passes (validation, per-epoch example state).
      progress: show a progress bar (models x epochs, examples/s).
      loop: how an epoch's steps run (a performance setting: results are bit-identical on
        CPU, see the module docstring): ``"scan"``, one program per epoch with the steps in a
        while loop; ``"host"``, Python drives small loop-free programs of ``steps_per_call``
        unrolled steps (and loop-free eval-mode passes); ``"auto"`` (default), see
        :func:`choose_loop`: ``"host"`` on CPU for models with convolutions that use JAX's own
        gradient, ``"scan"`` otherwise (the zoo's conv nets included). A recipe with an
        adversary (AdvReg, :mod:`hampjax.training.advreg`) always runs ``"scan"``.
      steps_per_call: steps per call of the ``"host"`` strategy (default 4); larger values
        cost compile time and save dispatch.
      precision: ``"float32"``, ``"bfloat16"`` (forward and backward passes in bfloat16;
        parameters, optimizer state, BatchNorm statistics, loss and softmax in float32, see
        :func:`mixed_precision_apply`) or ``"auto"`` (default: bfloat16 on GPU/TPU, float32 on
        CPU, :func:`choose_precision`). It changes results, so a bfloat16 run records it in its
        fingerprint (``run.json["precision"]``) and a workdir refuses to resume with another
        precision; float32 runs record nothing (their run directories are unchanged).
      targets: optional float ``[M, N, C]`` per-example targets, row ``m`` for model ``m``
        (distillation: the teacher's logits on the candidates); each step gathers its
        batch's rows into ``Batch.targets`` / ``LossContext.targets``. Required exactly when
        the recipe's defense kind reads them (``DEFENSES[kind].targets != "none"``). Their
        shape ``[N, C]`` enters the run's fingerprint (``run.json["targets_shape"]``) and
        each model's row is hashed into ``targets_sha256.json``, checked like ``keep``: a
        workdir refuses other targets, and extends to more models whose first rows match.
        A DMP student recipe (``spec.reference.kind != "none"``) takes instead its per-model
        :class:`hampjax.training.reference.StudentData` (teacher and generator variables,
        model axis first; fingerprinted the same way) and trains on its reference set
        (:mod:`hampjax.training.reference`).

    Returns:
      A :class:`TrainResult`.

    Raises:
      ValueError: on inconsistent shapes, NaN/inf in a row of ``x`` that some model trains on
        (or in ``val_data``), labels outside ``[0, C)`` for the model's ``C`` outputs (naming
        the first index), a keep row with no member, missing validation data
        for ``best_val``, a ``workdir`` that holds a different run (the message names the
        differing setting, e.g. ``recipe.epochs``, or ``keep``), or a corrupt state file.
      hampjax.runlock.RunLockError: when another process is training in ``workdir``.
      FloatingPointError: at the first epoch whose training loss is NaN/inf for some model,
        naming the model index and the epoch (or when a model's selected variables are not
        finite); that chunk is not recorded as finished, so a rerun trains it again.
    """
    from hampjax.training import distributed

    if workdir is None or distributed.process_index() != 0:
        lock = contextlib.nullcontext()  # other processes share process 0's workdir and lock
    else:
        lock = RunLock(workdir, what="training")
    with lock:
        return _train_many(model, recipe, x, y, keep, seed=seed, val_data=val_data,
                           workdir=workdir, chunk_size=chunk_size, devices=devices,
                           save_every=save_every, snapshot_epochs=snapshot_epochs,
                           eval_batch_size=eval_batch_size, progress=progress, loop=loop,
                           steps_per_call=steps_per_call, precision=precision, targets=targets)


def _check_targets(targets: Any, recipe: Recipe, keep: np.ndarray) -> np.ndarray | None:
    if recipe.spec.reference.kind != "none":  # DMP: per-model StudentData, model axis first
        leaves = jax.tree_util.tree_leaves(targets)
        if targets is None or not leaves or any(np.ndim(a) < 1 or np.shape(a)[0] != len(keep)
                                                 for a in leaves):
            raise ValueError(f"targets must be the per-model data of a reference.kind="
                             f"{recipe.spec.reference.kind!r} student "
                             f"(hampjax.training.reference.StudentData, leading axis "
                             f"M={len(keep)})")
        return jax.tree_util.tree_map(np.asarray, targets)
    kind = recipe.spec.defense.kind
    needs = DEFENSES[kind].targets
    if targets is None:
        if needs != "none":
            raise ValueError(f"targets is required for defense.kind={kind!r} (it reads "
                             f"{needs!r}: float [M, N, C], one row per model)")
        return None
    if needs == "none":
        raise ValueError(f"targets must be None for defense.kind={kind!r} (its loss reads no "
                         f"per-example targets)")
    targets = np.asarray(targets)
    if targets.ndim != 3 or targets.shape[:2] != keep.shape:
        raise ValueError(f"targets must have shape [M, N, C] = ({keep.shape[0]}, "
                         f"{keep.shape[1]}, C), got {targets.shape}")
    if not np.issubdtype(targets.dtype, np.floating):
        raise ValueError(f"targets must be finite floats, got dtype {targets.dtype}")
    validation.check_finite("targets", targets)  # names the first NaN/inf
    return targets.astype(np.float32, copy=False)


def _check_target_rows(path: str, targets: np.ndarray, *, writer: bool) -> None:
    """Per-model hashes of the targets in ``targets_sha256.json``, checked like ``keep.npy``:
    the stored rows must equal the first requested ones (a run extends to more models)."""
    file = os.path.join(path, "targets_sha256.json")
    leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(targets)]
    rows = [ckpt._sha256(*[np.atleast_1d(a[m]) for a in leaves])
            for m in range(len(leaves[0]))]
    stored = atomic.read_json(file, default=None, recover=ckpt._NEW_WORKDIR)
    if stored is not None:
        common = min(len(stored), len(rows))
        if stored[:common] != rows[:common]:
            bad = next(m for m in range(common) if stored[m] != rows[m])
            raise ValueError(f"workdir {path!r} holds a different run (differs in: targets, "
                             f"model {bad}); {ckpt._NEW_WORKDIR}")
        if len(stored) >= len(rows):
            return
    if writer:
        ckpt.write_json_atomic(file, rows)


def _train_many(model, recipe, x, y, keep, *, seed, val_data, workdir, chunk_size, devices,
                save_every, snapshot_epochs, eval_batch_size, progress, loop,
                steps_per_call, precision, targets) -> TrainResult:
    from hampjax.training import distributed

    init_fn, apply_fn = _model_functions(model)
    seed = validation.check_positive_int("seed", seed, minimum=0)
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    y = np.asarray(y)
    validation.check_nonempty("x", x)
    validation.check_shape("y", y, (x.shape[0],), what="(x.shape[0],)")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer class labels, got dtype {y.dtype}")
    keep = check_keep(keep, num_examples=x.shape[0])
    num_models, num_examples = keep.shape
    targets = _check_targets(targets, recipe, keep)
    if recipe.selection == "best_val" and val_data is None:
        raise ValueError("val_data is required when recipe.selection is 'best_val'")
    save_every = validation.check_positive_int("save_every", save_every)
    eval_batch_size = validation.check_positive_int("eval_batch_size", eval_batch_size)
    validation.check_choice("loop", loop, LOOPS)
    validation.check_choice("precision", precision, PRECISIONS)
    steps_per_call = validation.check_positive_int(
        "steps_per_call", DEFAULT_STEPS_PER_CALL if steps_per_call is None else steps_per_call)
    snapshot_epochs = tuple(sorted(set(int(e) for e in snapshot_epochs)))
    for e in snapshot_epochs:
        validation.check_in_range("snapshot_epochs", e, 0, recipe.epochs)
    if val_data is not None:
        validation.check_shape("val_data[1]", np.asarray(val_data[1]), (np.shape(val_data[0])[0],),
                               what="(len(x_val),)")
    _check_data_fits_model(init_fn, apply_fn, x, y, val_data, keep)  # issue 15 (harden_api)

    devices = list(devices) if devices is not None else jax.local_devices()
    platform = devices[0].platform
    precision = choose_precision(precision, platform)
    model_name = _model_name(model)
    if precision == "bfloat16":
        apply_fn = mixed_precision_apply(apply_fn)
        model = (model, "bfloat16")  # compiled programs are cached per model and precision

    # Open the run directory before any device work: a different run is refused at once.
    run = None
    if workdir is not None:
        fingerprint = run_fingerprint(recipe, seed=seed, x=x, y=y, val_data=val_data,
                                      snapshot_epochs=snapshot_epochs)
        if precision != "float32":  # results-changing; float32 run directories unchanged
            fingerprint["precision"] = precision
        if isinstance(targets, np.ndarray):  # results-changing; runs without targets unchanged
            fingerprint["targets_shape"] = list(targets.shape[1:])
        elif targets is not None:  # DMP students: the shapes of their per-model data
            fingerprint["targets_shape"] = [list(np.shape(a)[1:])
                                            for a in jax.tree_util.tree_leaves(targets)]
        run = ckpt.RunDirectory(workdir, fingerprint, keep,
                                writer=distributed.process_index() == 0)
        if targets is not None:
            _check_target_rows(run.path, targets, writer=distributed.process_index() == 0)

    privacy = dp_config(recipe, init_fn, apply_fn, x[:1], model_name=model_name)
    num_devices = len(devices)
    if chunk_size is not None:
        chunk_size = validation.check_positive_int("chunk_size", chunk_size)
    num_steps = _num_steps(keep, recipe.batch_size)

    mesh = Mesh(np.asarray(devices), ("models",))
    sharded = NamedSharding(mesh, PartitionSpec("models"))
    replicated = NamedSharding(mesh, PartitionSpec())

    if val_data is not None:
        x_val, y_val = val_data
        x_val = jax.device_put(np.asarray(x_val), replicated)
        y_val = jax.device_put(np.asarray(y_val).astype(np.int32), replicated)
    else:
        x_val = jax.device_put(np.zeros((1,) + tuple(x.shape[1:]), x.dtype), replicated)
        y_val = jax.device_put(np.zeros((1,), np.int32), replicated)
    data = TrainData(jax.device_put(x, replicated), jax.device_put(y.astype(np.int32), replicated),
                     x_val, y_val)

    if loop == "auto":
        variables_shape = jax.eval_shape(lambda: init_fn(jax.random.key(0), jnp.asarray(x[:1])))
        loop = choose_loop(loop, platform, has_conv=has_convolution(
            apply_fn, variables_shape, x[:1]))
    loop_fallback = None
    adversary = recipe.spec.adversary.kind
    if recipe.spec.reference.kind != "none":  # DMP students (hampjax.training.reference)
        programs = EPOCH_PROGRAMS["reference"](
            model, init_fn, apply_fn, recipe, keep=keep, sample_x=x[:1],
            has_val=val_data is not None, eval_batch_size=eval_batch_size,
            donate=platform != "cpu", loop=loop, steps_per_call=steps_per_call,
            students=targets, platform=platform)
        loop = programs.epoch_fn.loop
    elif adversary != "none":  # AdvReg's game: its own epoch programs (hampjax.training.advreg)
        if targets is not None:
            raise ValueError(f"targets (per-example teacher targets) cannot be combined with "
                             f"recipe.adversary.kind={adversary!r}")
        if loop != "scan":
            loop, loop_fallback = "scan", f"{adversary} runs one program per epoch (no host loop)"
        programs = EPOCH_PROGRAMS[adversary](
            model, init_fn, apply_fn, recipe, keep=keep, sample_x=x[:1],
            has_val=val_data is not None, eval_batch_size=eval_batch_size,
            donate=platform != "cpu")
    else:
        programs = _programs(
            model, init_fn, apply_fn, recipe, num_steps=num_steps,
            has_val=val_data is not None, eval_batch_size=eval_batch_size,
            donate=platform != "cpu",  # CPU cannot donate buffers
            num_examples=num_examples, loop=loop, steps_per_call=steps_per_call,
            privacy=privacy)
    if chunk_size is None:
        # Performance default: on CPU one model per device runs plain (unbatched) matmuls,
        # measured ~1.15x faster than vmapping several models; accelerators take as many
        # models as their memory holds, from the measured footprint of the epoch program.
        if platform == "cpu":
            chunk = num_devices
        else:
            footprint = measure_footprint(programs, seed, data, targets_shape=None if not
                                          isinstance(targets, np.ndarray) else targets.shape[1:])
            chunk = auto_chunk_size(num_models, footprint.per_model, _device_memory(devices[0]),
                                    num_devices, shared_bytes=footprint.shared)
    else:
        chunk = chunk_size
    chunk = min(chunk, num_models)
    chunk = math.ceil(chunk / num_devices) * num_devices
    performance = {"precision": precision, "loop": loop,
                   "steps_per_call": steps_per_call if loop == "host" else None,
                   "chunk_size": chunk, "devices": num_devices, "backend": platform,
                   "eval_batch_size": eval_batch_size}
    if loop_fallback is not None:
        performance["loop_fallback"] = loop_fallback
    if privacy is not None:
        performance["dp_per_example"] = privacy.per_example
        if recipe.spec.privacy.sampling == "poisson":
            performance["dp_poisson_cap"] = dp_sgd.poisson_cap_size(
                recipe.batch_size, recipe.spec.privacy.poisson_cap)

    # Finished model ranges (of any earlier chunking); the rest is planned in chunks and dealt
    # out to the processes. Every process must plan from the same listing: scan after process
    # 0 has opened the directory and before anyone writes a result.
    pieces: dict[tuple[int, int], dict] = {}
    if run is not None:
        distributed.barrier("hampjax_train_many_open")
        stored = [(lo, hi) for lo, hi in run.finished_ranges() if lo < num_models]
        distributed.barrier("hampjax_train_many_planned")
        finished = [(lo, min(hi, num_models)) for lo, hi in stored]  # fewer models than stored
        for (lo, hi), (_, top) in zip(stored, finished):
            pieces[(lo, top)] = _rows(run.load_result(lo, hi), 0, top - lo)
    else:
        finished = []
    plans = plan_chunks(num_models, finished, chunk)
    mine = plans[distributed.process_index()::distributed.process_count()]
    if len(mine) != len(plans) and run is None:
        raise ValueError("workdir is required when training on several processes")

    bar = _progress_bar(num_models * recipe.epochs, enabled=progress)
    context = RunContext(recipe, seed, keep, programs, data, sharded, run, save_every,
                         snapshot_epochs, bar, targets)
    seconds = 0.0
    try:
        if finished:
            bar.update(sum(hi - lo for lo, hi in finished) * recipe.epochs)
        for plan in mine:
            t0 = time.perf_counter()
            result = _train_chunk(plan, context)
            seconds += time.perf_counter() - t0
            if run is not None:
                run.save_result(plan.lo, plan.hi, result)
            pieces[(plan.lo, plan.hi)] = result
    finally:
        bar.close()

    if len(mine) != len(plans):  # other processes trained the rest: read them from workdir.
        distributed.barrier("hampjax_train_many")
        for plan in plans:
            if (plan.lo, plan.hi) not in pieces:
                pieces[(plan.lo, plan.hi)] = run.load_result(plan.lo, plan.hi)

    if run is not None and distributed.process_index() == 0:
        run.remove_superseded()  # every result is written (after the barrier, if any)
    trained = sum(plan.real for plan in mine)
    result = dataclasses.replace(_assemble(pieces, keep, snapshot_epochs, seconds, trained),
                                 performance=performance)
    if result.dp_overflow.any():
        warnings.warn(
            f"DP-SGD Poisson batches overflowed their padded size "
            f"{performance.get('dp_poisson_cap')}: {int(result.dp_overflow.sum())} sampled "
            f"members were dropped (TrainResult.dp_overflow); raise privacy.poisson_cap",
            RuntimeWarning, stacklevel=3)
    return result


# -- Issue 15 (harden_api): labels against the model's classes, finite data and losses. -----


def _check_data_fits_model(init_fn, apply_fn, x, y, val_data, keep) -> None:
    """Raise unless the rows of ``x`` that some model trains on (and ``x_val``) are finite and
    every label is in ``[0, C)`` for the model's ``C`` outputs (shapes only: one abstract
    trace of init and apply). Rows no model keeps may hold anything; if one is read anyway
    (e.g. an adversary's reference row), the non-finite-loss stop catches it."""
    validation.check_finite("x", x, where=keep.any(axis=0))
    sample = jax.ShapeDtypeStruct((1,) + tuple(x.shape[1:]), x.dtype)
    variables = jax.eval_shape(lambda s: init_fn(jax.random.key(0), s), sample)
    logits, _ = jax.eval_shape(lambda v, s: apply_fn(v, s, train=False), variables, sample)
    num_classes = int(logits.shape[-1])
    checks = [("y", y)]
    if val_data is not None:
        validation.check_finite("val_data[0]", val_data[0])
        checks.append(("val_data[1]", np.asarray(val_data[1])))
    for name, labels in checks:
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name} must be integer class labels, got dtype {labels.dtype}")
        bad = (labels < 0) | (labels >= num_classes)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must be in [0, {num_classes}) (the model's number of "
                             f"classes), got {int(labels[i])} at index {i}")


def _check_finite_loss(train_loss: Any, models: np.ndarray, epoch: int) -> None:
    """Stop at the first epoch whose mean training loss is NaN/inf for some model."""
    loss = np.asarray(train_loss)[:len(models)]
    bad = ~np.isfinite(loss)
    if bad.any():
        i = int(np.argmax(bad))
        raise FloatingPointError(
            f"train_many: the training loss of model {int(models[i])} is {float(loss[i])} at "
            f"epoch {epoch} (0-based; {int(bad.sum())} model(s) of this chunk); stopped, "
            f"nothing of this chunk is recorded as finished. Lower recipe.learning_rate, or "
            f"check x, y and the recipe's hyperparameters")


def _check_finite_variables(variables: Any, models: np.ndarray) -> None:
    """Raise if a model's selected variables hold NaN/inf (they would be recorded)."""
    ok = np.ones(len(models), bool)
    for leaf in jax.tree_util.tree_leaves(variables):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.floating):
            ok &= np.isfinite(leaf.reshape(len(models), -1)).all(axis=1)
    if not ok.all():
        i = int(np.argmin(ok))
        raise FloatingPointError(
            f"train_many: the selected variables of model {int(models[i])} hold NaN/inf after "
            f"the last epoch; stopped, nothing of this chunk is recorded as finished")


def _rows(result: dict, start: int, stop: int) -> dict:
    return jax.tree_util.tree_map(lambda a: a[start:stop], result)


def _train_chunk(plan: ChunkPlan, ctx: RunContext) -> dict:
    """Train models ``plan.lo .. plan.hi - 1`` (resuming from their checkpoint, if any)."""
    recipe, run, bar = ctx.recipe, ctx.run, ctx.bar
    real, index = plan.real, plan.model_index()
    keep_chunk = jax.device_put(ctx.keep[index], ctx.sharded)
    keys = jax.device_put(jax.vmap(lambda i: model_key(ctx.seed, i))(jnp.asarray(index)),
                          ctx.sharded)
    state = jax.device_put(ctx.programs.init_chunk(keys, ctx.data.x[:1]), ctx.sharded)
    targets = (None if ctx.targets is None else jax.device_put(
        jax.tree_util.tree_map(lambda a: a[index], ctx.targets), ctx.sharded))
    history = {"train_loss": [], "train_acc": [], "val_acc": [], "dp_overflow": []}
    snapshots = {}
    start = 0
    if run is not None:
        restored = run.restore(plan.lo, plan.hi, state)
        if restored is not None:
            state, history, snapshots, start = restored
            history.setdefault("dp_overflow", [np.zeros(real, np.int32)] * start)
            state = jax.device_put(state, ctx.sharded)
            bar.update(real * start)
    members = ctx.keep[index[:real]].sum()
    for epoch in range(start, recipe.epochs):
        t0 = time.perf_counter()
        args = (state, keys, keep_chunk, jnp.int32(epoch), ctx.data)
        state, metrics = ctx.programs.epoch_fn(*args, *(() if targets is None else (targets,)))
        metrics = jax.device_get(metrics)
        _check_finite_loss(metrics.train_loss, index[:real], epoch)  # before any save
        TRACE_COUNTS["epochs_run"] += 1
        for name in history:
            history[name].append(np.asarray(getattr(metrics, name))[:real])
        if epoch in ctx.snapshot_epochs:
            snapshots[epoch] = _host(state.variables, real)
        elapsed = time.perf_counter() - t0
        bar.update(real)
        bar.set_postfix(models=f"{plan.lo}-{plan.hi - 1}", epoch=epoch,
                        examples_per_s=f"{members / max(elapsed, 1e-9):,.0f}")
        done = epoch + 1
        if run is not None and (done % ctx.save_every == 0) and done < recipe.epochs:
            run.save_checkpoint(plan.lo, plan.hi, done, state, history, snapshots)
    selected = _host(state.best_variables, real)
    _check_finite_variables(selected, index[:real])  # never recorded as finished
    return {
        "variables": selected,
        "train_loss": np.stack(history["train_loss"], axis=1),
        "train_acc": np.stack(history["train_acc"], axis=1),
        "val_acc": np.stack(history["val_acc"], axis=1),
        "best_epoch": np.asarray(state.best_epoch)[:real],
        "dp_overflow": np.stack(history["dp_overflow"], axis=1).sum(axis=1).astype(np.int64),
        "snapshots": snapshots,
    }


class Footprint(NamedTuple):
    """Device memory of a chunk's epoch program: ``shared + M * per_model`` bytes for M models."""

    per_model: int  # one model's arguments, outputs and temporaries
    shared: int  # the replicated data (candidates, validation set)


def program_bytes(compiled) -> int | None:
    """Arguments + outputs + temporaries (less aliased buffers) of a compiled program, from
    its ``memory_analysis()``; None where the backend does not report it."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return None
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def measure_footprint(programs: Programs, seed: int, data: TrainData, *,
                      targets_shape: tuple[int, ...] | None = None) -> Footprint:
    """The measured per-model footprint of the one-model epoch program (the "scan" program,
    which holds the whole training state and one step's activations).

    Compiles the program for one model (``jax.jit(...).lower(...).compile()``) and reads its
    ``memory_analysis()``; the replicated data is counted once, as ``shared``. Where the backend
    reports no figure, 16x the model's state (variables, best snapshot, optimizer state,
    example state) stands in for it. ``targets_shape``: ``(N, C)`` of one model's
    per-example targets, when the run has them.
    """
    keys = jax.vmap(lambda i: model_key(seed, i))(jnp.arange(1))
    state = jax.eval_shape(programs.init_chunk, keys, data.x[:1])
    keep = jax.ShapeDtypeStruct((1, data.x.shape[0]), jnp.bool_)
    shared = sum(a.size * a.dtype.itemsize for a in jax.tree_util.tree_leaves(data))
    targets = (None if targets_shape is None
               else jax.ShapeDtypeStruct((1,) + tuple(targets_shape), jnp.float32))
    program = getattr(programs.epoch_fn, "footprint_program", None)  # AdvReg: its game epoch
    args = (state, keys, keep, jnp.int32(0), data)
    if program is None:
        program = _make_epoch_fn(programs.config, donate=False)
        args += (targets,)
    else:  # DMP students: their per-model data (hampjax.training.reference)
        args += tuple(getattr(programs.epoch_fn, "footprint_args", ()))
    total = program_bytes(program.lower(*args).compile())
    if total is None:
        state_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree_util.tree_leaves(state))
        return Footprint(16 * int(state_bytes), int(shared))
    return Footprint(max(1, total - int(shared)), int(shared))


def _device_memory(device) -> int | None:
    try:
        stats = device.memory_stats() or {}
    except Exception:  # some backends do not report memory
        return None
    return stats.get("bytes_limit")


def auto_chunk_size(num_models: int, per_model_bytes: int, device_bytes: int | None,
                    num_devices: int, *, shared_bytes: int = 0, budget: float = 0.8) -> int:
    """Models per chunk so that a chunk's epoch program fits ``budget`` of device memory.

    Each device holds the replicated data (``shared_bytes``) and its models' share of the
    program (``per_model_bytes`` each, as measured by :func:`measure_footprint`); the rest of
    the memory is headroom for the allocator. Without a memory figure all models form one
    chunk; at least one model per device.

    Example:
      >>> gb = 1 << 30  # 128 models of 0.5 GB each, 0.25 GB of data, one 16 GB device
      >>> auto_chunk_size(128, gb // 2, 16 * gb, 1, shared_bytes=gb // 4)
      25
    """
    if not device_bytes:
        return num_models
    free = budget * device_bytes - shared_bytes
    per_device = max(1, int(free // max(1, per_model_bytes)))
    return max(1, min(num_models, per_device * num_devices))


def _host(tree, real: int):
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[:real], tree)


def _assemble(pieces: dict, keep, snapshot_epochs, seconds, trained: int) -> TrainResult:
    ranges = sorted(pieces)
    num_models = keep.shape[0]
    if [lo for lo, _ in ranges] != [0] + [hi for _, hi in ranges[:-1]] or ranges[-1][1] != num_models:
        raise AssertionError(f"model ranges {ranges} do not tile 0..{num_models - 1}")
    parts = [pieces[r] for r in ranges]

    def cat(trees):
        return jax.tree_util.tree_map(lambda *a: np.concatenate(a, axis=0), *trees)

    return TrainResult(
        variables=cat([p["variables"] for p in parts]),
        keep=keep,
        train_loss=np.concatenate([p["train_loss"] for p in parts]),
        train_acc=np.concatenate([p["train_acc"] for p in parts]),
        val_acc=np.concatenate([p["val_acc"] for p in parts]),
        best_epoch=np.concatenate([p["best_epoch"] for p in parts]),
        dp_overflow=np.concatenate([np.asarray(p.get("dp_overflow", np.zeros(
            len(p["best_epoch"]), np.int64))) for p in parts]),
        snapshots={e: cat([p["snapshots"][e] for p in parts]) for e in snapshot_epochs},
        seconds=seconds,
        models_trained=trained,
        models_loaded=num_models - trained,
    )


def _model_name(model) -> str:
    if isinstance(model, tuple):
        return "the given (init_fn, apply_fn) model"
    return f"model {type(model).__name__}"


def _model_functions(model) -> tuple[InitFn, ApplyFn]:
    if isinstance(model, tuple) and len(model) == 2 and all(callable(f) for f in model):
        return model
    from hampjax.models.registry import model_functions

    return model_functions(model)


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def _progress_bar(total: int, *, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="model-epoch", dynamic_ncols=True, smoothing=0.1)
