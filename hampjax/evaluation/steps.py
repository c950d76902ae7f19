"""The evaluation's steps, each callable and testable alone.

1. :func:`train_models` - target and shadows (one batched ``train_many`` per recipe) on the
   paired keep matrix (a distillation defense's teachers first, :func:`train_recipe`;
   SELENA's Split-AI sub-models of every model first; the early-stopping snapshots of
   ``recipe.spec.early_stopping_epochs`` kept);
2. :func:`predict_outputs` - every model's released outputs, through the defense's output
   transform (HAMP: each model's own pool of outputs on random inputs; MemGuard: every
   model's undefended logits post-processed with the defender's classifier,
   :func:`memguard_outputs`);
3. :func:`score_attacks` - every attack family (:mod:`hampjax.evaluation.families`), with
   finished families loaded from a store;
4. :func:`statistics` - the target's accuracies and output entropies.

Randomness derives from the evaluation seed: ``keys = split(fold_in(key(seed), 7), 4)``;
``keys[0]`` draws the random inputs of the pools (MemGuard: trains the defender's classifiers),
``keys[1]`` / ``keys[2]`` the pool rows for the candidates / the held-out set (MemGuard:
``keys[1]`` Phase II's draws), ``keys[3]`` the attacks
(:func:`~hampjax.evaluation.families.attack_key`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation
from hampjax.defenses.memguard import memguard_many, train_memguard_classifiers
from hampjax.defenses.output_modification import OutputModifier
from hampjax.evaluation import families as _families
from hampjax.evaluation import store as _store
from hampjax.evaluation.setup import AttackSettings, Defense, EvalData, attack_roles
from hampjax.scores import entropy
from hampjax.training import (
    DEFENSES,
    QuerySet,
    Recipe,
    TrainResult,
    build_recipe,
    paired_keep,
    predict_many,
    teacher_spec,
    train_many,
    train_selena,
)
from hampjax.training.reference import ReferenceInputs, train_students

__all__ = ["TrainedModels", "Predictions", "train_models", "train_recipe", "output_modifier",
           "memguard_outputs", "predict_outputs", "attack_inputs", "score_attacks", "statistics",
           "evaluation_keep"]


@functools.lru_cache(maxsize=32)
def _cached_apply_fn(model: Any) -> Any:
    from hampjax.models.registry import model_functions

    return model_functions(model)[1]


def _apply_fn(model: Any) -> Any:
    """``model_functions(model)[1]``, one per model (Flax modules hash by their fields):
    ``predict_many`` jit-compiles per ``apply_fn``, so every defense, step and evaluation of
    the same model reuses the compiled programs."""
    try:
        return _cached_apply_fn(model)
    except TypeError:  # an unhashable module
        from hampjax.models.registry import model_functions

        return model_functions(model)[1]


def _keys(seed: int) -> jax.Array:
    return jax.random.split(jax.random.fold_in(jax.random.key(seed), 7), 4)


def evaluation_keep(num_models: int, num_examples: int, *, seed: int) -> np.ndarray:
    """The keep matrix of an evaluation: :func:`~hampjax.training.paired_keep`.

    Complementary pairs, prefix-stable (``evaluation_keep(M', ...)[:M]`` equals
    ``evaluation_keep(M, ...)`` for ``M' > M``), so a finished run extends to more models.
    """
    return paired_keep(num_models, num_examples, seed=seed)


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedModels:
    """What :func:`train_models` returns.

    Attributes:
      variables: every model's variables, stacked ``[M, ...]`` (host arrays).
      keep: the keep matrix ``[M, N]``.
      models_trained, models_loaded: models this call trained / loaded from finished runs
        (teachers included).
      seconds: wall time of the step.
      snapshots: ``{E: variables [M, ...]}``, every model after ``E`` epochs for each ``E``
        of ``recipe.spec.early_stopping_epochs`` (``{}`` without early stopping).
      dp_overflow: ``[M]`` DP-SGD Poisson members sampled beyond the cap and dropped over
        the whole run (:attr:`~hampjax.training.TrainResult.dp_overflow`), or None.
    """

    variables: Any
    keep: np.ndarray
    models_trained: int
    models_loaded: int
    seconds: float
    snapshots: dict = dataclasses.field(default_factory=dict)
    dp_overflow: np.ndarray | None = None


def _counts(*results: Any) -> tuple[int, int]:
    return (sum(int(r.models_trained) for r in results),
            sum(int(r.models_loaded) for r in results))


def train_recipe(model: Any, recipe: Recipe, x: np.ndarray, y: np.ndarray, keep: np.ndarray,
                 *, seed: int, val_data: Any = None, workdir: str | None = None,
                 progress: bool = False, reference: ReferenceInputs | None = None,
                 ) -> tuple[TrainResult, TrainResult | None]:
    """``train_many`` of one recipe, with its teachers first when its loss reads them.

    A defense kind with ``DEFENSES[kind].targets == "teacher_logits"`` (distillation) first
    trains :func:`~hampjax.training.teacher_spec` of the recipe (plain cross-entropy, same
    optimizer and schedule) on the same keep rows and seed (``workdir/teacher``), takes each
    teacher's eval-mode logits on the candidates ``x`` as the student's per-example targets
    ``[M, N, C]`` and trains the students with them (``workdir/student``); with the same seed,
    teacher ``m`` is the model ``m`` that the plain cross-entropy recipe trains. Otherwise one
    ``train_many`` in ``workdir``. The snapshots of ``recipe.spec.early_stopping_epochs`` are
    kept (``train_many(snapshot_epochs=[E - 1, ...])``: after ``E`` epochs).

    SELENA (``recipe.spec.split_ai.kind == "selena"``): :func:`~hampjax.training.train_selena`,
    ``K`` Split-AI sub-models per model in one ``train_many`` (``workdir/teachers``), their
    soft labels as the students' targets (``workdir/student``); ``teacher_result`` is then
    the ``M * K`` sub-models.
    DMP (``recipe.spec.reference.kind != "none"``): after the teachers, the students train only
    on their reference sets (:func:`hampjax.training.reference.train_students`): a GAN per
    model on its members (``workdir/gan``), whose regenerated samples (or the given set) the
    teacher labels inside each step (``workdir/student``). ``reference`` carries the inputs'
    normalization and the given set (:class:`~hampjax.training.reference.ReferenceInputs`).

    Returns:
      ``(result, teacher_result)``; ``teacher_result`` is None without teachers.
    """
    snapshot_epochs = [e - 1 for e in recipe.spec.early_stopping_epochs]
    needs = DEFENSES[recipe.spec.defense.kind].targets
    if needs == "none":
        return train_many(model, recipe, x, y, keep, seed=seed, val_data=val_data,
                          workdir=workdir, progress=progress,
                          snapshot_epochs=snapshot_epochs), None
    if recipe.spec.split_ai.kind == "selena":
        return train_selena(model, recipe, x, y, keep, seed=seed, val_data=val_data,
                            workdir=workdir, progress=progress, snapshot_epochs=snapshot_epochs,
                            apply_fn=_apply_fn(model))
    sub = (lambda name: os.path.join(workdir, name)) if workdir else (lambda name: None)
    teacher = train_many(model, build_recipe(teacher_spec(recipe.spec)), x, y, keep, seed=seed,
                         val_data=val_data, workdir=sub("teacher"), progress=progress)
    if recipe.spec.reference.kind != "none":  # DMP: GANs then students on reference sets
        if recipe.spec.early_stopping_epochs:
            raise ValueError("early_stopping_epochs cannot be combined with reference.kind="
                             f"{recipe.spec.reference.kind!r}")
        dmp = train_students(model, recipe, teacher.variables, x, y, keep, seed=seed,
                             inputs=reference or ReferenceInputs(), val_data=val_data,
                             workdir=workdir, progress=progress)
        return dmp.students, teacher
    targets = np.asarray(predict_many(_apply_fn(model), teacher.variables, x))[:, :, 0]
    student = train_many(model, recipe, x, y, keep, seed=seed, val_data=val_data,
                         workdir=sub("student"), progress=progress,
                         snapshot_epochs=snapshot_epochs, targets=targets)
    return student, teacher


def _snapshots(result: TrainResult, recipe: Recipe) -> dict:
    return {e: result.snapshots[e - 1] for e in recipe.spec.early_stopping_epochs}


def train_models(model: Any, defense: Defense, data: EvalData, *, num_models: int, seed: int,
                 target: int = 0, workdir: str | None = None,
                 progress: bool = False) -> TrainedModels:
    """Step 1: train the target and the shadows on :func:`evaluation_keep`.

    Adaptive attacker (``defense.shadow_recipe is None``): all ``num_models`` models in one
    ``train_many`` with the defense's recipe, resumable under ``workdir``. Non-adaptive: the
    shadows with ``shadow_recipe`` (``workdir/shadows``) and the target alone with the recipe
    (``workdir/target``). Each recipe trains through :func:`train_recipe` (teachers first for
    distillation; early-stopping snapshots kept).

    Args:
      model: a Flax module of :mod:`hampjax.models` (``defense.model`` replaces it when set).
      defense, data: what to train and on which candidates.
      num_models: models in total (target + shadows), even and ``>= 4``.
      seed: integer ``>= 0`` (keep matrix and training).
      target: the target's model index.
      workdir: optional training directory (resumable).
      progress: show the training progress bar.

    Returns:
      A :class:`TrainedModels`.
    """
    num_models = validation.check_positive_int("num_models", num_models, minimum=4)
    validation.check_in_range("target", target, 0, num_models)
    model = model if defense.model is None else defense.model
    x, y = np.asarray(data.x), np.asarray(data.y)
    t0 = time.perf_counter()
    keep = evaluation_keep(num_models, len(x), seed=seed)
    val = (data.x_val, data.y_val) if data.x_val is not None else None
    train_recipe_ = functools.partial(train_recipe, reference=ReferenceInputs(  # DMP's inputs
        normalization=data.normalization, x_reference=data.x_reference))
    snapshots = {}
    if defense.shadow_recipe is None:
        trained, teacher = train_recipe_(model, defense.recipe, x, y, keep, seed=seed,
                                        val_data=val, workdir=workdir, progress=progress)
        variables = trained.variables
        overflow = trained.dp_overflow
        snapshots = _snapshots(trained, defense.recipe)
        counts = _counts(*[r for r in (trained, teacher) if r is not None])
    else:  # Non-adaptive: shadows with their own recipe, the target on its own.
        sub = (lambda name: os.path.join(workdir, name)) if workdir else (lambda name: None)
        shadows, shadow_teacher = train_recipe_(model, defense.shadow_recipe, x, y, keep,
                                               seed=seed, val_data=val,
                                               workdir=sub("shadows"), progress=progress)
        alone, teacher = train_recipe_(model, defense.recipe, x, y, keep[target:target + 1],
                                      seed=seed, val_data=val, workdir=sub("target"),
                                      progress=progress)
        variables = jax.tree_util.tree_map(
            lambda s, t: np.concatenate([np.asarray(s)[:target], np.asarray(t),
                                         np.asarray(s)[target + 1:]]),
            shadows.variables, alone.variables)
        overflow = (None if shadows.dp_overflow is None or alone.dp_overflow is None else
                    np.concatenate([shadows.dp_overflow[:target], alone.dp_overflow,
                                    shadows.dp_overflow[target + 1:]]))
        counts = _counts(*[r for r in (shadows, shadow_teacher, alone, teacher)
                           if r is not None])
    return TrainedModels(variables=variables, keep=keep, models_trained=counts[0],
                         models_loaded=counts[1], seconds=time.perf_counter() - t0,
                         snapshots=snapshots,
                         dp_overflow=None if overflow is None else np.asarray(overflow))


@dataclasses.dataclass(frozen=True, eq=False)
class Predictions:
    """Released outputs of every model: ``outputs [M, N, Q, C]`` on the candidates,
    ``test_outputs [M, Nt, Q, C]`` on the held-out set (logits, as the defense releases
    them); ``seconds`` of the step; ``stats``: the output transform's own figures for the
    result's stats (MemGuard: :func:`memguard_outputs`; ``{}`` otherwise)."""

    outputs: np.ndarray
    test_outputs: np.ndarray
    seconds: float
    stats: dict = dataclasses.field(default_factory=dict)


def output_modifier(apply_fn: Any, variables: Any, defense: Defense, data: EvalData, *,
                    seed: int) -> OutputModifier | None:
    """The defense's output transform for every model (``None`` for kind ``"none"``).

    HAMP: ``pool_size`` random inputs drawn with ``keys[0]``, each model's outputs on them
    as its pool, ``OutputModifier.from_pools(pools [M, P, C])``.

    Raises:
      ValueError: if the transform needs ``data.random_inputs`` and it is missing.
    """
    output = defense.output
    if output["kind"] != "hamp":  # MemGuard post-processes in predict_outputs.
        return None
    if data.random_inputs is None:
        raise ValueError("data.random_inputs is required when the defense's recipe modifies "
                         "its outputs (recipe.spec.output.kind == 'hamp')")
    inputs = np.asarray(data.random_inputs(_keys(seed)[0], output["pool_size"]))
    pools = predict_many(apply_fn, variables, inputs)[:, :, 0]  # [M, P, C]
    return OutputModifier.from_pools(jnp.asarray(pools), break_ties=output["break_ties"])


# MemGuard ------------------------------------------------------------------------------------


def memguard_outputs(outputs: np.ndarray, test_outputs: np.ndarray, keep: np.ndarray,
                     settings: dict[str, Any], *, target: int, seed: int,
                     chunk_size: int = 1024) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """MemGuard on every model's undefended logits (:mod:`hampjax.defenses.memguard`).

    The defender's classifier ``g`` of model ``m`` is trained (``keys[0]`` of the module doc,
    folded with ``m``) on ``m``'s outputs on the candidates (query 0), its members
    (``keep[m]``) vs its non-members. ``settings["classifier"] == "target"`` (HAMP code): only
    the target's ``g``, which then post-processes every model's outputs (the shadows',
    so the attacker's shadows and the NN attack's known members / non-members are released
    as the target releases its own); ``"per_shadow"``: each model's own ``g`` on its own
    outputs (the target's ``g`` is the same in both, up to float rounding: it trains
    alone or batched with the others). Every query (candidates and held-out
    set, every test-time query) goes through Phase I, then Phase II when
    ``settings["phase2"]`` (draws from ``keys[1]``; the candidates' queries first, then
    the held-out set's, :func:`~hampjax.defenses.memguard.memguard_many`), and is released as
    ``settings["release"]`` says (default ``log_softmax`` of the result: the logits of the
    defended confidence vector).

    Args:
      outputs, test_outputs: undefended logits ``[M, N, Q, C]``, ``[M, Nt, Q, C]``.
      keep: the keep matrix ``[M, N]``.
      settings: ``recipe.spec.output.memguard`` as a dict
        (:class:`~hampjax.training.MemGuardSpec` fields).
      target: the target's model index.
      seed: the evaluation seed.
      chunk_size: queries per compiled call (performance only).

    Returns:
      ``(outputs, test_outputs, stats)``: the released logits (same shapes, float32) and
      ``{"memguard_success_members", "memguard_success_nonmembers",
      "memguard_success_test", "memguard_steps"}``: the target's fraction of queries
      whose search succeeded on its members / non-members / the held-out set, and its
      mean gradient steps per candidate query.
    """
    outputs, test_outputs = np.asarray(outputs), np.asarray(test_outputs)
    num_models = outputs.shape[0]
    validation.check_shape("keep", keep, outputs.shape[:2])
    validation.check_in_range("target", target, 0, num_models)
    keys = _keys(seed)
    per_shadow = settings["classifier"] == "per_shadow"
    ids = np.arange(num_models) if per_shadow else np.array([target])
    classifiers = train_memguard_classifiers(
        keys[0], outputs[ids, :, 0], np.asarray(keep)[ids], model_ids=ids,
        hidden_sizes=tuple(settings["hidden_sizes"]), epochs=settings["epochs"],
        learning_rate=settings["learning_rate"], batch_size=settings["batch_size"])
    if not per_shadow:
        classifiers = jax.tree_util.tree_map(lambda a: a[0], classifiers)
    search = {name: settings[name] for name in (
        "c1", "c2", "c3_initial", "c3_factor", "c3_rounds", "step_size", "max_steps",
        "tolerance", "phase2")}
    search.update(hidden_sizes=tuple(settings["hidden_sizes"]),
                  distortion_budget=settings["distortion_budget"], release=settings["release"])

    # Candidates and held-out set in one call (one compiled program).
    m, n, q, c = outputs.shape
    both = np.concatenate([outputs.reshape(m, n * q, c),
                           test_outputs.reshape(m, -1, c)], axis=1)
    released, success, steps = memguard_many(classifiers, both, shared=not per_shadow,
                                              key=keys[1], chunk_size=chunk_size, **search)
    released_test = released[:, n * q:].reshape(test_outputs.shape)
    released = released[:, :n * q].reshape(outputs.shape)
    success_test = success[:, n * q:]
    success, steps = success[:, :n * q].reshape(m, n, q), steps[:, :n * q].reshape(m, n, q)
    member = np.asarray(keep)[target]
    stats = {"memguard_success_members": float(success[target][member].mean()),
             "memguard_success_nonmembers": float(success[target][~member].mean()),
             "memguard_success_test": float(success_test[target].mean()),
             "memguard_steps": float(steps[target].mean())}
    return released, released_test, stats


def predict_outputs(model: Any, variables: Any, defense: Defense, data: EvalData, *, seed: int,
                    queries: QuerySet = QuerySet.none(), keep: np.ndarray | None = None,
                    target: int = 0) -> Predictions:
    """Step 2: every model's outputs on the candidates and the held-out set, as released.

    Args:
      model: the Flax module the variables belong to.
      variables: stacked ``[M, ...]`` variables (:attr:`TrainedModels.variables`).
      defense: its recipe's output transform is applied (HAMP: :func:`output_modifier`;
        MemGuard: :func:`memguard_outputs` of the undefended logits).
      data: candidates, held-out set and random inputs.
      seed: the evaluation seed (pool inputs and draws, see the module doc).
      queries: test-time queries.
      keep: the keep matrix ``[M, N]`` (the defender's classifiers learn membership from
        it); required with MemGuard, unused otherwise.
      target: the target's model index (MemGuard's ``"target"`` classifier).

    Returns:
      :class:`Predictions` (logits).

    Raises:
      ValueError: with MemGuard and no ``keep``.
    """
    t0 = time.perf_counter()
    apply_fn = _apply_fn(model)
    keys = _keys(seed)
    output = defense.output
    if output["kind"] == "memguard" and keep is None:
        raise ValueError("keep (the keep matrix [M, N]) is required when the defense's recipe "
                         "post-processes its outputs with MemGuard (recipe.spec.output.kind == "
                         "'memguard')")
    modifier = output_modifier(apply_fn, variables, defense, data, seed=seed)
    kwargs = lambda key: {} if modifier is None else dict(output_modifier=modifier, output_key=key)  # noqa: E731
    outputs = predict_many(apply_fn, variables, np.asarray(data.x), queries=queries, **kwargs(keys[1]))
    test_outputs = predict_many(apply_fn, variables, np.asarray(data.x_test), queries=queries,
                                **kwargs(keys[2]))
    stats = {}
    if output["kind"] == "memguard":
        outputs, test_outputs, stats = memguard_outputs(outputs, test_outputs, keep,
                                                        output["memguard"], target=target,
                                                        seed=seed)
    return Predictions(np.asarray(outputs), np.asarray(test_outputs), time.perf_counter() - t0,
                       stats)


def attack_inputs(model: Any, variables: Any, predictions: Predictions, data: EvalData,
                  keep: np.ndarray, *, target: int, seed: int,
                  settings: AttackSettings) -> _families.AttackInputs:
    """What the attack families read, for the target ``target``."""
    apply_fn = _apply_fn(model)
    target_vars = jax.tree_util.tree_map(lambda a: a[target], variables)
    # Output modification preserves the ranking of classes and MemGuard the top class, so
    # predicted labels are those of the undefended apply function.
    target_logits = jax.jit(lambda inputs: apply_fn(target_vars, inputs, train=False)[0])
    predict_labels = jax.jit(lambda inputs: jnp.argmax(target_logits(inputs), -1))
    return _families.AttackInputs(
        outputs=predictions.outputs, test_outputs=predictions.test_outputs,
        x=np.asarray(data.x), y=np.asarray(data.y), y_test=np.asarray(data.y_test), keep=keep,
        target=target, roles=attack_roles(keep[target], seed=seed, fractions=settings.role_fractions),
        settings=settings, key=_families.attack_key(seed), seed=seed,
        predict_labels=predict_labels, image_shape=data.image_shape,
        binary_features=data.binary_features, target_logits=target_logits)


def score_attacks(inputs: _families.AttackInputs, *, attack_dir: str | None = None,
                  config: Any = None, target_variables: Any = None, write: bool = True,
                  ) -> tuple[_families.Scores, dict[str, float]]:
    """Step 3: run every attack family in order; with ``attack_dir``, resume from stored ones.

    A family's scores are stored in ``attack_dir/<family>.npz`` as soon as it finishes
    (:mod:`hampjax.evaluation.store`), fingerprinted with ``config`` and the bytes of the
    outputs, inputs, labels, keep matrix and ``target_variables``; a rerun loads every stored
    family whose fingerprint matches and computes only the rest.

    Args:
      inputs: :func:`attack_inputs`.
      attack_dir: optional directory of stored families.
      config: JSON-able settings the scores depend on (the defense's config).
      target_variables: the target's variables (the label-only attacks query it).
      write: store finished families (False on processes other than 0).

    Returns:
      ``(scores, seconds)``: ``{attack: (scores, is_member)}`` in report order and
      ``{family: seconds}`` (the stored time for a loaded family).
    """
    scores: _families.Scores = {}
    seconds: dict[str, float] = {}
    base = None
    if attack_dir is not None:
        base = _store.fingerprint(config, {
            "outputs": inputs.outputs, "test_outputs": inputs.test_outputs, "x": inputs.x,
            "y": inputs.y, "y_test": inputs.y_test, "keep": inputs.keep,
            "roles": inputs.roles, "target_variables": target_variables})
    for family in _families.FAMILY_ORDER:
        if family == "boundary" and not inputs.settings.boundary_samples:
            continue
        stamp = None if base is None else _store.fingerprint(
            {"base": base, "family": family}, {})
        stored = None if stamp is None else _store.load_family(attack_dir, family, fingerprint=stamp)
        if stored is not None:
            result, took = stored
        else:
            t0 = time.perf_counter()
            result = _families.score_family(family, inputs)
            took = time.perf_counter() - t0
            if stamp is not None and write:
                _store.save_family(attack_dir, family, result, fingerprint=stamp, seconds=took)
        scores.update(result)
        seconds[family] = took
    return scores, seconds


def statistics(predictions: Predictions, data: EvalData, keep: np.ndarray, *,
               target: int) -> tuple[float, float, dict[str, float]]:
    """Step 4: the target's train/test accuracy and output entropies.

    Returns:
      ``(train_acc, test_acc, stats)``: accuracy of the released outputs on the target's
      members and on the held-out set, and the mean prediction entropy (nats) of its
      released outputs on members (``"entropy_members"``) and non-members
      (``"entropy_nonmembers"``), HAMP Table IV.
    """
    y, y_test = np.asarray(data.y), np.asarray(data.y_test)
    is_member = keep[target]
    outputs = predictions.outputs[target][:, 0]
    entropies = np.asarray(entropy(jnp.asarray(outputs, jnp.float32)), np.float64)
    stats = {"entropy_members": float(entropies[is_member].mean()),
             "entropy_nonmembers": float(entropies[~is_member].mean())}
    train_acc = float(np.mean(np.argmax(outputs[is_member], -1) == y[is_member]))
    test_acc = float(np.mean(np.argmax(predictions.test_outputs[target][:, 0], -1) == y_test))
    return train_acc, test_acc, stats
