"""AdvReg's min-max game in the batched engine (Nasr, Shokri & Houmansadr, CCS 2018).

A recipe with ``spec.adversary.kind == "advreg"`` is trained by :func:`train_many` as usual
(one keep matrix, M models vmapped, chunks, checkpoints, resume); its epochs run the programs
of this module instead of the engine's plain epoch. Every model carries two optimizer states:
the classifier's (``TrainState.opt_state``) and its inference model's (:class:`AdvState` in
``TrainState.aux``). The inference model ``h`` and its losses are the pure functions of
:mod:`hampjax.defenses.advreg`.

Reference set. Model m's reference set (the non-members ``h`` learns to tell from its
members) is :func:`reference_mask`: its non-members ``pool[~keep[m]]`` (``reference=
"authors"``: HAMP's LiRA shadows, where the LiRA non-members are always the reference set),
or those of them in a fixed half of the pool (``"disjoint"``). So the adaptive attacker's
shadows, trained by the same ``train_many`` call with the same recipe, get AdvReg with their
own reference sets automatically.

Schedule (HAMP code, followed with the settings of :class:`~hampjax.training.spec.
AdversarySpec`; B = ``batch_size``, n = the model's members, r = its reference examples):

* Warm-up epochs (``epoch < warmup_epochs``; never selected): one plain epoch of the recipe
  with batch ``warmup_batch_size``, then ``warmup_attack_epochs`` epochs of ``h`` alone: each
  a fresh order of the members and of the reference set, walked together in steps of
  ``warmup_attack_batch_size`` members + as many reference examples until the shorter one
  ends (the last partial batches kept).
* ``game="rounds"``: the epoch's member order is cut into ``c = floor(n / B)`` full batches;
  round ``i < c // 2`` makes ``min(attack_steps, c - (attack_steps i mod c))`` steps of
  ``h`` on the first ``attack_batch_size`` members of consecutive batches starting at
  ``attack_steps i mod c`` (plus as many reference examples from a fresh order of the
  reference set), then ``min(classifier_steps, c - (classifier_steps i mod c))`` classifier
  steps on the batches starting at ``classifier_steps i mod c`` (:func:`round_schedule`).
  With HAMP's 52 and 2 the classifier sees ``2 (c // 2)`` batches per epoch.
* ``game="epochs"`` (RelaxLoss CIFAR code): one epoch of ``h`` (as in the warm-up, batch
  ``attack_batch_size``), then one classifier epoch of the engine (all members, last partial
  batch kept).

The classifier runs in eval mode (no gradient) during ``h``'s steps; its own steps minimize
the recipe's loss plus ``weight * (h(f(x), y) - 0.5)`` per example with ``h`` held fixed
(:meth:`~hampjax.training.recipes.Adversary.penalized`), in train mode. ``h``'s steps
minimize the mean squared error against 1 (members) and 0 (reference). Models with fewer
members or rounds than others of the run skip the missing steps (static shapes, per-model
masks; a skipped step leaves model and optimizer untouched).

Loop strategy: the game runs as one program per epoch (steps in ``lax.scan``) on every
backend; a ``"host"`` loop (asked for, or chosen by ``"auto"`` for a convolutional model on
CPU) falls back to it, recorded as ``performance["loop"] == "scan"`` with
``performance["loop_fallback"]`` saying why.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hampjax import validation
from hampjax.defenses.advreg import membership_mse
from hampjax.training import engine
from hampjax.training import epoch as epoch_lib
from hampjax.training.engine import Programs
from hampjax.training.epoch import (
    TRACE_COUNTS,
    EpochConfig,
    EpochMetrics,
    TrainData,
    TrainState,
    epoch_end,
    epoch_start,
    train_epoch,
)
from hampjax.training.recipes import Adversary, Recipe
from hampjax.training.spec import ADVREG_REFERENCES, AdversarySpec
from hampjax.training.step import Batch, EpochSums, StepFns, _select, train_step

__all__ = [
    "AdvState",
    "GameShape",
    "GameConfig",
    "AdvRegLoop",
    "REFERENCE_SPLIT_SEED",
    "reference_half",
    "reference_mask",
    "round_schedule",
    "game_shape",
    "attack_step",
    "attack_epochs",
    "warmup_epoch",
    "game_epoch",
    "build_programs",
]

# Sub-streams of a model's key, after the engine's (0: init, 1: shuffle, 2: steps).
_ADV_INIT, _ADV = 3, 4
# Phases of an epoch's adversary stream.
_WARMUP, _ROUNDS, _ATTACK_EPOCH = 0, 1, 2

REFERENCE_SPLIT_SEED = 20180515
"""Seed of the fixed half of the pool that holds the reference sets of ``reference=
"disjoint"`` (NumPy ``default_rng``; the same for every run and model)."""


class AdvState(NamedTuple):
    """One model's inference model (``TrainState.aux`` of an AdvReg run).

    Attributes:
      variables: its variables (``{"params": ...}``, plus ``"frozen"`` for a frozen layer).
      opt_state: its optimizer (Adam) state.
      attack_steps: int32, inference-model steps taken so far (all epochs).
      classifier_steps: int32, classifier steps of the game taken so far (warm-up excluded).
    """

    variables: dict
    opt_state: Any
    attack_steps: jax.Array
    classifier_steps: jax.Array


def reference_half(num_examples: int) -> np.ndarray:
    """The fixed half (``num_examples // 2`` rows) of a pool that holds the ``"disjoint"``
    reference sets: bool ``[N]``, from :data:`REFERENCE_SPLIT_SEED`."""
    num_examples = validation.check_positive_int("num_examples", num_examples)
    order = np.random.default_rng(REFERENCE_SPLIT_SEED).permutation(num_examples)
    half = np.zeros(num_examples, bool)
    half[order[: num_examples // 2]] = True
    return half


def reference_mask(keep: Any, reference: str = "authors") -> np.ndarray:
    """Every model's reference set: bool ``[M, N]``.

    Args:
      keep: bool ``[M, N]`` (or ``[N]`` for one model), the members.
      reference: ``"authors"``: all non-members ``~keep``; ``"disjoint"``: the non-members
        in :func:`reference_half` (the other half's non-members are never seen in training,
        so an evaluation may score only them as non-members).

    Returns:
      bool array of ``keep``'s shape.

    Example:
      >>> reference_mask([[True, False, False, True]]).tolist()
      [[False, True, True, False]]
    """
    validation.check_choice("reference", reference, ADVREG_REFERENCES)
    keep = np.asarray(keep, bool)
    out = ~keep
    if reference == "disjoint":
        out &= reference_half(keep.shape[-1])
    return out


def round_schedule(num_batches: Any, round_index: Any, attack_steps: int,
                   classifier_steps: int) -> tuple[Any, Any, Any, Any]:
    """Where round ``round_index`` of a ``"rounds"`` game epoch starts and how many steps it
    makes (HAMP code; traceable, and elementwise over arrays).

    Args:
      num_batches: ``c = floor(n / batch_size)``, full member batches of the model.
      round_index: ``i``; rounds ``i >= c // 2`` make no steps.
      attack_steps, classifier_steps: ``A`` and ``K`` of the spec.

    Returns:
      ``(attack_start, attack_count, classifier_start, classifier_count)``: the first batch
      ``A i mod c`` and ``min(A, c - start)`` steps (0 past the last round), likewise for
      the classifier with ``K``.

    Example:
      >>> [int(v) for v in round_schedule(60, 1, 52, 2)]
      [52, 8, 2, 2]
    """
    c = jnp.asarray(num_batches, jnp.int32)
    i = jnp.asarray(round_index, jnp.int32)
    active = i < c // 2
    safe = jnp.maximum(c, 1)
    a_start = (attack_steps * i) % safe
    k_start = (classifier_steps * i) % safe
    a_count = jnp.where(active, jnp.minimum(attack_steps, c - a_start), 0)
    k_count = jnp.where(active, jnp.minimum(classifier_steps, c - k_start), 0)
    return a_start, a_count, k_start, k_count


@dataclasses.dataclass(frozen=True)
class GameShape:
    """Static step counts of an AdvReg run (maxima over its models, from the keep matrix).

    Attributes:
      batches: ``max_m floor(n_m / B)``, full member batches of a ``"rounds"`` epoch.
      rounds: ``batches // 2``.
      warmup_steps: steps of a warm-up classifier epoch (batch ``warmup_batch_size``).
      warmup_attack_steps: steps of one warm-up inference-model epoch.
      attack_epoch_steps: steps of one inference-model epoch of a ``"epochs"`` game.
    """

    batches: int
    rounds: int
    warmup_steps: int
    warmup_attack_steps: int
    attack_epoch_steps: int


def _zip_steps(members: np.ndarray, references: np.ndarray, batch_size: int) -> int:
    return max(1, int(np.max(np.minimum(np.ceil(members / batch_size),
                                        np.ceil(references / batch_size)))))


def game_shape(recipe: Recipe, keep: np.ndarray) -> GameShape:
    """The static shape of an AdvReg run on ``keep``.

    Raises:
      ValueError: when a model has no reference example, or (``game="rounds"``) fewer than
        two full batches of members.
    """
    spec, adv = recipe.spec, recipe.spec.adversary
    keep = np.asarray(keep, bool)
    members = keep.sum(axis=1)
    references = reference_mask(keep, adv.reference).sum(axis=1)
    if references.min() == 0:
        m = int(np.argmin(references))
        raise ValueError(f"keep row {m} leaves no reference example for AdvReg "
                         f"(adversary.reference={adv.reference!r}): every model needs "
                         f"non-members")
    batches = members // spec.batch_size
    if adv.game == "rounds" and batches.min() < 2:
        m = int(np.argmin(batches))
        raise ValueError(f"AdvReg's rounds need at least 2 full batches of members per model; "
                         f"keep row {m} has {int(members[m])} members for batch_size="
                         f"{spec.batch_size}")
    warm = adv.warmup_batch_size or spec.batch_size
    return GameShape(
        batches=int(batches.max()), rounds=int(batches.max()) // 2,
        warmup_steps=max(1, math.ceil(int(members.max()) / warm)),
        warmup_attack_steps=_zip_steps(members, references, adv.warmup_attack_batch_size),
        attack_epoch_steps=_zip_steps(members, references, adv.attack_batch_size),
    )


@dataclasses.dataclass(frozen=True)
class GameConfig:
    """What one model's AdvReg epoch needs besides its state and data (static for a run).

    Attributes:
      epoch: the classifier's :class:`~hampjax.training.epoch.EpochConfig` (game epochs).
      warmup: the same with the warm-up batch size (warm-up epochs).
      adversary: the inference model and its optimizer.
      shape: the static step counts (:func:`game_shape`).
      num_examples: candidates N (the ``"disjoint"`` half is fixed by it).
    """

    epoch: EpochConfig
    warmup: EpochConfig
    adversary: Adversary
    shape: GameShape
    num_examples: int

    def reference_row(self, keep_row: jax.Array) -> jax.Array:
        row = jnp.logical_not(keep_row)
        if self.adversary.spec.reference == "disjoint":
            row = row & jnp.asarray(reference_half(self.num_examples))
        return row


def _order(key_or_uniform: jax.Array, row: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A random order of the rows with ``row`` True (first), and their count; from a key or
    from uniform draws ``[N]`` (one random call for several orders: XLA compiles every
    random call site on its own, ~0.4 s of CPU each)."""
    u = key_or_uniform
    if jax.dtypes.issubdtype(u.dtype, jax.dtypes.prng_key):
        u = jax.random.uniform(u, row.shape)
    return (jnp.argsort(jnp.where(row, u, u + 2.0)).astype(jnp.int32),
            jnp.sum(row).astype(jnp.int32))


def _adv_key(key: jax.Array, epoch: jax.Array, phase: int) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, _ADV), epoch), phase)


def attack_step(adversary: Adversary, apply_fn: Callable, adv: AdvState, cls_variables: dict,
                members: tuple[jax.Array, jax.Array, jax.Array],
                references: tuple[jax.Array, jax.Array, jax.Array],
                valid: jax.Array) -> tuple[AdvState, jax.Array]:
    """One optimizer step of one model's inference model (no model axis).

    Args:
      adversary: the inference model and its optimizer.
      apply_fn: the classifier's ``apply_fn`` (run in eval mode, no gradient).
      adv: the inference model's state.
      cls_variables: the classifier's variables.
      members, references: ``(x [b, ...], y [b], where [b])`` each.
      valid: bool scalar; False leaves ``adv`` untouched (as does a step without real rows).

    Returns:
      ``(new_adv, loss)``: the mean squared error over the real rows before the step.
    """
    xm, ym, wm = members
    xr, yr, wr = references
    logits = apply_fn(cls_variables, jnp.concatenate([xm, xr]), train=False)[0]
    logits = jax.lax.stop_gradient(logits)
    labels = jnp.concatenate([ym, yr])
    is_member = jnp.concatenate([jnp.ones(ym.shape, bool), jnp.zeros(yr.shape, bool)])
    where = jnp.concatenate([wm, wr])
    count = jnp.sum(where).astype(jnp.float32)
    params = adv.variables["params"]

    def loss_fn(p):
        scores = adversary.scores({**adv.variables, "params": p}, logits, labels)
        per_example = jnp.where(where, membership_mse(scores, is_member), 0.0)
        return jnp.sum(per_example) / jnp.maximum(count, 1.0)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = adversary.optimizer.update(grads, adv.opt_state, params)
    new = AdvState({**adv.variables, "params": optax.apply_updates(params, updates)}, opt_state,
                   adv.attack_steps + 1, adv.classifier_steps)
    return _select(valid & (count > 0), new, adv), loss


def attack_epochs(config: GameConfig, adv: AdvState, cls_variables: dict, key: jax.Array,
                  keep_row: jax.Array, data: TrainData, *, num_epochs: int, batch_size: int,
                  num_steps: int) -> AdvState:
    """``num_epochs`` epochs of the inference model alone (one model, classifier fixed).

    Each epoch walks a fresh order of the members and of the reference set together, in
    steps of ``batch_size`` of each, until the shorter one ends (last partial batches kept);
    ``num_steps`` is the static maximum over the run's models.
    """
    adversary, apply_fn = config.adversary, config.epoch.fns.apply_fn
    ref_row = config.reference_row(keep_row)
    positions = jnp.arange(batch_size, dtype=jnp.int32)

    def one_epoch(adv, e):
        u = jax.random.uniform(jax.random.fold_in(key, e), (2,) + keep_row.shape)
        m_order, n = _order(u[0], keep_row)
        r_order, r = _order(u[1], ref_row)
        steps = jnp.minimum((n + batch_size - 1) // batch_size, (r + batch_size - 1) // batch_size)

        def step(adv, j):
            pos = j * batch_size + positions
            mi, ri = m_order[pos % jnp.maximum(n, 1)], r_order[pos % jnp.maximum(r, 1)]
            adv, _ = attack_step(adversary, apply_fn, adv, cls_variables,
                                 (data.x[mi], data.y[mi], pos < n),
                                 (data.x[ri], data.y[ri], pos < r), j < steps)
            return adv, None

        adv, _ = jax.lax.scan(step, adv, jnp.arange(num_steps))
        return adv, None

    adv, _ = jax.lax.scan(one_epoch, adv, jnp.arange(num_epochs))
    return adv


def warmup_epoch(config: GameConfig, state: TrainState, key: jax.Array, keep_row: jax.Array,
                 epoch: jax.Array, data: TrainData) -> tuple[TrainState, EpochMetrics]:
    """A warm-up epoch of one model: the engine's plain epoch (warm-up batch size), then the
    inference model's warm-up epochs. Never selected (the best-so-far snapshot is kept)."""
    new, metrics = train_epoch(config.warmup, state, key, keep_row, epoch, data)
    new = new._replace(best_variables=state.best_variables, best_val_acc=state.best_val_acc,
                       best_epoch=state.best_epoch)
    adv = state.aux
    spec = config.adversary.spec
    if spec.warmup_attack_epochs:
        adv = attack_epochs(config, adv, new.variables, _adv_key(key, epoch, _WARMUP), keep_row,
                            data, num_epochs=spec.warmup_attack_epochs,
                            batch_size=spec.warmup_attack_batch_size,
                            num_steps=config.shape.warmup_attack_steps)
    return new._replace(aux=adv), metrics


def _game_rounds(config: GameConfig, state: TrainState, key: jax.Array, keep_row: jax.Array,
                 epoch: jax.Array, data: TrainData) -> tuple[TrainState, EpochMetrics]:
    cfg, adversary = config.epoch, config.adversary
    spec, fns, x, y = adversary.spec, cfg.fns, data.x, data.y
    A, K, b = spec.attack_steps, spec.classifier_steps, spec.attack_batch_size
    step_state, example_state, steps = epoch_start(cfg, state, key, keep_row, epoch, y, None)
    last = cfg.num_steps - 1
    c = jnp.sum(keep_row).astype(jnp.int32) // cfg.recipe.batch_size
    ref_row = config.reference_row(keep_row)
    round_key = _adv_key(key, epoch, _ROUNDS)
    positions = jnp.arange(b, dtype=jnp.int32)

    def one_round(carry, i):
        step_state, adv, sums = carry
        a_start, a_count, k_start, k_count = round_schedule(c, i, A, K)
        r_order, r = _order(jax.random.fold_in(round_key, i), ref_row)
        cls_variables = step_state.variables

        def attack(adv, j):
            batch = jnp.minimum(a_start + j, last)
            mi = steps.indices[batch, :b]
            ri = r_order[(j * b + positions) % jnp.maximum(r, 1)]
            adv, _ = attack_step(adversary, fns.apply_fn, adv, cls_variables,
                                 (x[mi], y[mi], steps.where[batch, :b]),
                                 (x[ri], y[ri], jnp.broadcast_to(r > 0, (b,))), j < a_count)
            return adv, None

        adv, _ = jax.lax.scan(attack, adv, jnp.arange(A))
        penalized = dataclasses.replace(fns, loss=adversary.penalized(fns.loss, adv.variables))

        def classify(carry, j):
            st, su = carry
            batch = jnp.minimum(k_start + j, last)
            idx, step_keys = steps.indices[batch], steps.keys[batch]
            where = steps.where[batch] & (j < k_count)
            st, out = train_step(penalized, st, Batch(x[idx], y[idx], where, example_state[idx],
                                                      step_keys[0], step_keys[1]), epoch)
            su = EpochSums(su.loss + out.loss * out.count, su.correct + out.hits,
                           su.seen + out.count)
            return (st, su), None

        (step_state, sums), _ = jax.lax.scan(classify, (step_state, sums), jnp.arange(K))
        adv = adv._replace(classifier_steps=adv.classifier_steps + k_count)
        return (step_state, adv, sums), None

    sums = EpochSums(jnp.float32(0), jnp.float32(0), jnp.float32(0))
    (step_state, adv, sums), _ = jax.lax.scan(one_round, (step_state, state.aux, sums),
                                              jnp.arange(config.shape.rounds))
    val_logits = None
    if cfg.has_val:
        val_logits = epoch_lib._eval_logits(fns.apply_fn, step_state.variables, data.x_val,
                                            cfg.eval_batch_size, epoch)
    new, metrics = epoch_end(cfg, state, step_state, sums, example_state, val_logits, epoch,
                             data.y_val)
    return new._replace(aux=adv), metrics


def _game_epochs(config: GameConfig, state: TrainState, key: jax.Array, keep_row: jax.Array,
                 epoch: jax.Array, data: TrainData) -> tuple[TrainState, EpochMetrics]:
    cfg, adversary = config.epoch, config.adversary
    adv = attack_epochs(config, state.aux, state.variables, _adv_key(key, epoch, _ATTACK_EPOCH),
                        keep_row, data, num_epochs=1, batch_size=adversary.spec.attack_batch_size,
                        num_steps=config.shape.attack_epoch_steps)
    fns = dataclasses.replace(cfg.fns, loss=adversary.penalized(cfg.fns.loss, adv.variables))
    new, metrics = train_epoch(dataclasses.replace(cfg, fns=fns), state, key, keep_row, epoch,
                               data)
    n = jnp.sum(keep_row).astype(jnp.int32)
    b = cfg.recipe.batch_size
    return new._replace(aux=adv._replace(
        classifier_steps=adv.classifier_steps + (n + b - 1) // b)), metrics


def game_epoch(config: GameConfig, state: TrainState, key: jax.Array, keep_row: jax.Array,
               epoch: jax.Array, data: TrainData) -> tuple[TrainState, EpochMetrics]:
    """One game epoch of one model (no model axis): ``"rounds"`` or ``"epochs"`` (see the
    module docstring). ``state.aux`` is the model's :class:`AdvState`."""
    if config.adversary.spec.game == "rounds":
        return _game_rounds(config, state, key, keep_row, epoch, data)
    return _game_epochs(config, state, key, keep_row, epoch, data)


class AdvRegLoop:
    """A chunk's AdvReg epoch, ``(state, keys, keep, epoch, data) -> (state, metrics)`` like
    the engine's epoch program: the jitted warm-up program for ``epoch < warmup_epochs``,
    the jitted game program after (both vmapped over the chunk's models)."""

    def __init__(self, config: GameConfig, *, donate: bool):
        self.config = config

        def program(one_model, donate_state):
            over_models = epoch_lib._per_model(functools.partial(one_model, config),
                                               (0, 0, 0, None, None))

            def run(state, keys, keep, epoch, data):
                TRACE_COUNTS["epoch"] += 1
                return over_models(state, keys, keep, epoch, data)

            return jax.jit(run, donate_argnums=(0,) if donate_state else ())

        self.warmup = program(warmup_epoch, donate)
        self.game = program(game_epoch, donate)
        self.footprint_program = program(game_epoch, False)  # what measure_footprint compiles

    def __call__(self, state, keys, keep, epoch, data):
        warm = int(epoch) < self.config.adversary.spec.warmup_epochs
        return (self.warmup if warm else self.game)(state, keys, keep, epoch, data)


def _make_init(init_fn, optimizer, learning_rate, adversary: Adversary, num_classes: int,
               num_examples: int):
    """The jitted initializer of a chunk: ``(keys [M], sample_x) -> TrainState`` with the
    inference model in ``aux`` (the classifier initialized as by the engine)."""

    def one(key, sample_x):
        variables = dict(init_fn(jax.random.fold_in(key, epoch_lib._INIT), sample_x))
        opt_state = epoch_lib._with_learning_rate(optimizer.init(variables["params"]),
                                                  learning_rate(0))
        adv_variables = adversary.init(jax.random.fold_in(key, _ADV_INIT), num_classes)
        aux = AdvState(adv_variables, adversary.optimizer.init(adv_variables["params"]),
                       jnp.int32(0), jnp.int32(0))
        return TrainState(variables=variables, opt_state=opt_state, best_variables=variables,
                          best_val_acc=jnp.float32(-1.0), best_epoch=jnp.int32(-1),
                          example_state=jnp.zeros((num_examples,), jnp.float32), aux=aux)

    return jax.jit(jax.vmap(one, in_axes=(0, None)))


_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_MAX_PROGRAMS = 4


def build_programs(model: Any, init_fn: Callable, apply_fn: Callable, recipe: Recipe, *,
                   keep: np.ndarray, sample_x: Any, has_val: bool, eval_batch_size: int,
                   donate: bool) -> Programs:
    """The compiled pieces of an AdvReg run (the engine's :class:`Programs`, with an
    :class:`AdvRegLoop` as ``epoch_fn``); cached across runs of the same model, recipe
    settings and shapes.

    Raises:
      ValueError: from :func:`game_shape`.
    """
    if recipe.adversary is None:
        raise ValueError("recipe.spec.adversary.kind must be 'advreg' for the AdvReg programs")
    spec = recipe.spec
    adv = spec.adversary
    keep = np.asarray(keep, bool)
    shape = game_shape(recipe, keep)
    num_examples = keep.shape[1]
    num_steps = epoch_lib._num_steps(keep, spec.batch_size)
    recipe_key = (recipe.loss, recipe.optimizer, recipe.learning_rate, recipe.adversary,
                  spec.batch_size, spec.selection, spec.min_improvement,
                  spec.reset_optimizer_each_epoch, spec.shuffle)
    key = (model, recipe_key, shape, num_steps, has_val, eval_batch_size, donate,
           num_examples)
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
        return _PROGRAMS[key]
    optimizer = optax.inject_hyperparams(recipe.optimizer)(learning_rate=recipe.learning_rate(0))
    fns = StepFns(apply_fn, recipe.loss, optimizer)
    epoch_config = EpochConfig(recipe=recipe, fns=fns, num_steps=num_steps, has_val=has_val,
                               eval_batch_size=eval_batch_size)
    warm_batch = adv.warmup_batch_size or spec.batch_size
    # The warm-up epochs are plain epochs of the recipe at the warm-up batch size.
    warm_recipe = dataclasses.replace(recipe, spec=spec.replace(batch_size=warm_batch,
                                                                adversary=AdversarySpec()))
    warmup_config = dataclasses.replace(epoch_config, recipe=warm_recipe,
                                        num_steps=shape.warmup_steps)
    config = GameConfig(epoch=epoch_config, warmup=warmup_config, adversary=recipe.adversary,
                        shape=shape, num_examples=num_examples)
    variables_shape = jax.eval_shape(lambda: init_fn(jax.random.key(0), jnp.asarray(sample_x)))
    logits_shape = jax.eval_shape(lambda v: apply_fn(v, jnp.asarray(sample_x), train=False)[0],
                                  variables_shape)
    programs = Programs(
        optimizer,
        _make_init(init_fn, optimizer, recipe.learning_rate, recipe.adversary,
                   int(logits_shape.shape[-1]), num_examples),
        AdvRegLoop(config, donate=donate),
        epoch_config,
    )
    _PROGRAMS[key] = programs
    while len(_PROGRAMS) > _MAX_PROGRAMS:
        _PROGRAMS.popitem(last=False)
    return programs


engine.EPOCH_PROGRAMS["advreg"] = build_programs
