"""Adaptive end-to-end evaluation: train, predict, score every attack family, report.

:func:`evaluate_defense` follows the HAMP paper's threat model with an adaptive attacker
(the steps are in :mod:`hampjax.evaluation.steps`):

1. ``num_models`` models are trained with the defense's recipe in one batched
   :func:`~hampjax.training.train_many` call on a paired keep matrix over the candidate pool
   (complementary pairs, prefix-stable, so a finished run extends to more models). Model
   ``target`` is the target; the others are the attacker's shadow models, trained with the
   same recipe (the attacker knows the defense).
2. Every model answers every query through the defended output: with HAMP's output
   modification (``recipe.spec.output``) each model gets its own pool of outputs on random
   inputs, and every answer is modified (shadows included); with MemGuard
   (``output.kind="memguard"``, test time only: the recipe trains undefended models) every
   model's logits go through the defender's classifier's search, the target's classifier on
   every model or each model its own (``output.memguard.classifier``), so the shadows' and the
   NN attack's known members' outputs are post-processed too; the target's search successes
   go to ``stats`` (``memguard_*``).
3. The target's members and non-members are each split into known-train (45%), known-val (5%)
   and evaluated (50%) parts; the NN and top-3 attacks learn from the known parts (the attacker
   knows half the members), and every attack is scored on the evaluated part
   (:mod:`hampjax.evaluation.families`).
4. Accuracies and output entropies of the target; for a DP-SGD recipe (``recipe.spec.privacy``)
   also its epsilon at delta on the target's members (``stats["dp_epsilon"]`` and the other
   ``dp_*`` entries, :func:`hampjax.defenses.privacy_stats`).
5. With ``targets=T > 1``: each of the first ``T`` models in turn is the target, the others
   its shadows, for the attacks that are cheap to repeat (metric, LiRA, RMIA); their mean and
   spread over targets go to ``DefenseResult.multi_target``
   (:func:`~hampjax.evaluation.targets.multi_target_summary`). The per-attack results stay
   those of model ``target`` (model 0 by default).
6. Early stopping (``recipe.spec.early_stopping_epochs``): steps 2-5 again for the models as
   they were after each of those epoch counts ``E`` (the same run's snapshots; the shadows'
   snapshots after ``E`` epochs are the attacker's shadows), each as its own result
   ``<defense>_e<E>`` (:func:`~hampjax.evaluation.setup.snapshot_name`) with
   ``config["early_stopping_epoch"] = E`` (:func:`evaluate_defense_results`).

The result is a :class:`hampjax.report.DefenseResult`; :func:`evaluate_defenses` collects
them into the :class:`hampjax.report.Evaluation` that :func:`hampjax.report.write_report`
writes. Run directory of :func:`evaluate_defenses`::

    RUN_DIR/
      train/<defense>/           train_many's resumable workdir (non-adaptive: shadows/, target/;
                                 distillation: teacher/, student/; DMP: teacher/, gan/,
                                 student/)
      attacks/<defense>/<family>.npz   finished attack families (hampjax.evaluation.store)
      attacks/<defense>_e<E>/    the same for an early-stopping snapshot
      scores.npz, evaluation.json, report.json, report.md, roc_*.png, manifest.json
                                 hampjax.report (manifest.json last)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
import warnings
from typing import Any

import jax
import numpy as np

from hampjax import atomic, validation
from hampjax.defenses.dp_accounting import privacy_stats
from hampjax.evaluation import steps
from hampjax.evaluation.targets import multi_target_summary
from hampjax.evaluation.setup import (
    AttackSettings,
    Defense,
    EvalData,
    model_record,
    snapshot_name,
    snapshot_spec,
)
from hampjax.report import DefenseResult, Evaluation, verify_run_dir, write_report
from hampjax.runlock import RunLock
from hampjax.training import QuerySet

__all__ = ["evaluate_defense", "evaluate_defense_results", "evaluate_defenses",
           "defense_config", "run_config"]


def run_config(*, num_models: int, seed: int, target: int, queries: QuerySet,
               settings: AttackSettings) -> dict[str, Any]:
    """The settings an evaluation shares across its defenses (``Evaluation.config``)."""
    return {"num_models": num_models, "seed": seed, "target": target,
            "queries": list(queries.names), "settings": dataclasses.asdict(settings)}


def defense_config(defense: Defense, **run: Any) -> dict[str, Any]:
    """A defense's config (``DefenseResult.config``): recipe spec, output transform, shadow
    recipe (non-adaptive attacker), the defense's own model (``"model"``,
    :func:`~hampjax.evaluation.setup.model_record`, only when ``defense.model`` is set) and the
    run's settings (:func:`run_config` keywords)."""
    config = {"recipe": dict(defense.recipe.config), "output": defense.output,
              "shadow_recipe": None if defense.shadow_recipe is None
              else dict(defense.shadow_recipe.config), **run_config(**run)}
    if defense.model is not None:
        config["model"] = model_record(defense.model)
    return config


def evaluate_defense(
    model: Any,
    defense: Defense,
    data: EvalData,
    *,
    num_models: int,
    seed: int,
    target: int = 0,
    queries: QuerySet = QuerySet.none(),
    settings: AttackSettings = AttackSettings(),
    workdir: str | None = None,
    attack_dir: str | None = None,
    progress: bool = False,
    targets: int = 1,
) -> DefenseResult:
    """Train the defense's target and shadows, run every attack on the target (module doc).

    Args:
      model: a Flax module of :mod:`hampjax.models` (``defense.model`` replaces it when set).
      defense: what to evaluate.
      data: candidate pool, test set and data properties.
      num_models: models trained in total (target + shadows), even and >= 4.
      seed: integer >= 0 (keep matrix, training, roles, attack models, random inputs).
      target: which model is the target.
      queries: test-time queries (images only).
      settings: attack hyperparameters.
      workdir: optional directory for resumable training.
      attack_dir: optional directory of finished attack families (resumable attack phase).
      progress: show the training progress bar.
      targets: ``T >= 1``; with ``T > 1`` models ``0 .. T-1`` are each in turn the target of
        the metric, LiRA and RMIA attacks (module doc, step 5). Adaptive attacker only.

    Returns:
      A :class:`hampjax.report.DefenseResult` of the run's selected models (early-stopping
      snapshots: :func:`evaluate_defense_results`) with the per-attack scores, accuracies,
      ``config`` (:func:`defense_config`), ``stats``, ``timings`` (seconds of ``train``,
      ``predict``, each attack family and, with ``T > 1``, ``multi_target``), the models
      trained / loaded and ``multi_target`` (``{}`` for ``T = 1``).

    Raises:
      ValueError: on invalid arguments, or ``targets > 1`` with a non-adaptive attacker
        (only model ``target`` is trained with the defense's recipe).
    """
    return _evaluate(model, defense, data, num_models=num_models, seed=seed, target=target,
                     queries=queries, settings=settings, workdir=workdir,
                     attack_dir=attack_dir, progress=progress, targets=targets,
                     snapshots=False)[defense.name]


def evaluate_defense_results(
    model: Any,
    defense: Defense,
    data: EvalData,
    *,
    num_models: int,
    seed: int,
    target: int = 0,
    queries: QuerySet = QuerySet.none(),
    settings: AttackSettings = AttackSettings(),
    workdir: str | None = None,
    attack_dir: str | None = None,
    progress: bool = False,
    targets: int = 1,
) -> dict[str, DefenseResult]:
    """:func:`evaluate_defense` plus one result per early-stopping epoch (module doc, step 6).

    Arguments as :func:`evaluate_defense`. Snapshot ``E``'s attack families are stored in
    ``attack_dir + "_e<E>"`` (``attacks/<defense>_e<E>`` under a run directory).

    Returns:
      ``{name: DefenseResult}`` in :attr:`Defense.result_names` order: ``defense.name`` (the
      run's selected models) first, then ``<name>_e<E>`` for each ``E`` of
      ``recipe.spec.early_stopping_epochs`` (the models after ``E`` epochs;
      ``config["early_stopping_epoch"] = E``, ``timings["train"] = 0`` and 0 models trained /
      loaded: the training is the first result's).
    """
    return _evaluate(model, defense, data, num_models=num_models, seed=seed, target=target,
                     queries=queries, settings=settings, workdir=workdir,
                     attack_dir=attack_dir, progress=progress, targets=targets,
                     snapshots=True)


def _evaluate(model, defense, data, *, num_models, seed, target, queries, settings, workdir,
              attack_dir, progress, targets, snapshots: bool) -> dict[str, DefenseResult]:
    num_models = validation.check_positive_int("num_models", num_models, minimum=4)
    if num_models % 2:
        raise ValueError(f"num_models must be an even integer >= 4 (complementary pairs), "
                         f"got {num_models}")
    validation.check_in_range("target", target, 0, num_models)
    seed = validation.check_positive_int("seed", seed, minimum=0)
    targets = _check_targets(targets, num_models, defense)
    if defense.output["kind"] == "hamp" and data.random_inputs is None:
        raise ValueError("data.random_inputs is required when the defense's recipe modifies its "
                         "outputs (recipe.spec.output.kind == 'hamp')")
    config = defense_config(defense, num_models=num_models, seed=seed, target=target,
                            queries=queries, settings=settings)
    trained = steps.train_models(model, defense, data, num_models=num_models, seed=seed,
                                 target=target, workdir=workdir, progress=progress)
    model = model if defense.model is None else defense.model
    score = functools.partial(_score, model, defense, data, trained.keep, seed=seed,
                              target=target, queries=queries, settings=settings,
                              targets=targets)
    results = {defense.name: score(trained.variables, config=config, attack_dir=attack_dir,
                                   train=(trained.seconds, trained.models_trained,
                                          trained.models_loaded),
                                   dp_overflow=trained.dp_overflow)}
    if snapshots:
        for epochs, variables in trained.snapshots.items():
            results[snapshot_name(defense.name, epochs)] = score(
                variables, config={**config, "early_stopping_epoch": epochs},
                attack_dir=None if attack_dir is None else f"{attack_dir}_e{epochs}",
                train=(0.0, 0, 0), epochs=epochs)
    return results


def _score(model, defense, data, keep, variables, *, seed, target, queries, settings, targets,
           config, attack_dir, train, epochs: int | None = None,
           dp_overflow: np.ndarray | None = None) -> DefenseResult:
    """Steps 2-5 for stacked ``variables`` (the run's models, or a snapshot of them after
    ``epochs`` epochs). ``dp_overflow``: the run's per-model DP-SGD Poisson overflow, recorded
    as ``stats["dp_poisson_overflow"]`` (the target's dropped members) with Poisson sampling."""
    predictions = steps.predict_outputs(model, variables, defense, data, seed=seed,
                                        queries=queries, keep=keep, target=target)
    inputs = steps.attack_inputs(model, variables, predictions, data, keep,
                                 target=target, seed=seed, settings=settings)
    target_variables = jax.tree_util.tree_map(lambda a: a[target], variables)
    attacks, family_seconds = steps.score_attacks(
        inputs, attack_dir=attack_dir, config=config, target_variables=target_variables,
        write=jax.process_index() == 0)
    train_acc, test_acc, stats = steps.statistics(predictions, data, keep, target=target)
    # DP-SGD: epsilon at delta of the target's recipe on its members (dp_* entries; none for
    # recipes without privacy), for the epochs these models trained (a snapshot's fewer).
    spec = defense.recipe.spec if epochs is None else snapshot_spec(defense.recipe.spec, epochs)
    stats.update(privacy_stats(spec, int(np.sum(keep[target]))))
    if (dp_overflow is not None and spec.privacy.kind == "dp_sgd"
            and spec.privacy.sampling == "poisson"):
        stats["dp_poisson_overflow"] = int(dp_overflow[target])
    stats.update(predictions.stats)  # MemGuard: the target's search successes.
    seconds, models_trained, models_loaded = train
    timings = {"train": seconds, "predict": predictions.seconds, **family_seconds}
    multi = {}
    if targets > 1:
        t0 = time.perf_counter()
        multi = multi_target_summary(predictions.outputs, predictions.test_outputs, data.y,
                                     data.y_test, keep, targets=range(targets),
                                     seed=seed, settings=settings)
        timings["multi_target"] = time.perf_counter() - t0
    return DefenseResult(
        train_acc=train_acc, test_acc=test_acc, attacks=attacks, config=config, stats=stats,
        timings=timings, models_trained=models_trained, models_loaded=models_loaded,
        multi_target=multi)


def _check_targets(targets: int, num_models: int, defense: Defense) -> int:
    targets = validation.check_positive_int("targets", targets)
    if targets > num_models:
        raise ValueError(f"targets must be at most num_models={num_models}, got {targets}")
    if targets > 1 and defense.shadow_recipe is not None:
        raise ValueError("targets > 1 needs an adaptive attacker (shadow_recipe=None): with a "
                         "non-adaptive one only the target is trained with the defense's recipe")
    return targets


def _run_lock(run_dir: str | None):
    # Every process of a multi-host run shares run_dir; process 0 owns it (lock, writes).
    if run_dir is None or jax.process_index() != 0:
        return contextlib.nullcontext()
    return RunLock(run_dir, what="evaluation")


def evaluate_defenses(
    model: Any,
    defenses: list[Defense],
    data: EvalData,
    *,
    num_models: int,
    seed: int,
    run_dir: str | None = None,
    queries: QuerySet = QuerySet.none(),
    settings: AttackSettings = AttackSettings(),
    progress: bool = False,
    bootstrap_resamples: int = 200,
    plots: bool = True,
    targets: int = 1,
) -> tuple[Evaluation, dict | None]:
    """Evaluate several defenses on the same data and keep matrix; write a report to ``run_dir``.

    Training of each defense resumes from ``run_dir/train/<defense>`` and its finished attack
    families from ``run_dir/attacks/<defense>``; asking a finished run for more models trains
    only the new ones (the keep matrix is prefix-stable). ``run_dir`` is locked for the
    duration (``hampjax.runlock.RunLock``) and temp files of interrupted writes in it are
    removed (``hampjax.atomic.clean_stale_temps``). A report left stale by an interrupted earlier
    write is detected (``hampjax.report.verify_run_dir``), warned about and rewritten.

    Args:
      model, data, num_models, seed, queries, settings, progress, targets: as
        :func:`evaluate_defense` (target 0; ``targets`` is recorded in ``Evaluation.config``).
      defenses: the defenses, distinct names; a defense with early-stopping epochs adds one
        result per epoch (:func:`evaluate_defense_results`).
      run_dir: optional run directory (resumable; the report is written there).
      bootstrap_resamples, plots: report settings (:func:`hampjax.report.write_report`).

    Returns:
      ``(evaluation, report)``: the :class:`hampjax.report.Evaluation` and the report dict
      (``None`` without ``run_dir`` and on processes other than 0, which train their share
      of the models but do not write the report).

    Raises:
      ValueError: on repeated defense names or invalid arguments.
      hampjax.runlock.RunLockError: when another live process holds ``run_dir``.
    """
    names = [d.name for d in defenses]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"defenses must be a non-empty list with distinct names, got {names}")
    result_names = [r for d in defenses for r in d.result_names]
    if len(set(result_names)) != len(result_names):
        raise ValueError(f"the defenses' result names (early-stopping snapshots included) must "
                         f"be distinct, got {result_names}")
    for defense in defenses:  # Before any training.
        _check_targets(targets, num_models, defense)
    with _run_lock(run_dir):
        if run_dir is not None and jax.process_index() == 0:
            atomic.clean_stale_temps(run_dir)
        if run_dir is not None and os.path.isfile(os.path.join(run_dir, "report.json")):
            try:
                verify_run_dir(run_dir)
            except ValueError as err:
                warnings.warn(f"{err} -- this run rewrites the report", UserWarning, stacklevel=2)
        results = {}
        for defense in defenses:
            sub = (lambda kind: os.path.join(run_dir, kind, defense.name)) if run_dir else (lambda kind: None)
            results.update(evaluate_defense_results(
                model, defense, data, num_models=num_models, seed=seed, queries=queries,
                settings=settings, workdir=sub("train"), attack_dir=sub("attacks"),
                progress=progress, targets=targets))
        evaluation = Evaluation(
            defenses=results, num_models=num_models, num_queries=queries.size,
            seeds={"seed": seed}, timings={},
            config={**run_config(num_models=num_models, seed=seed, target=0, queries=queries,
                                 settings=settings), "targets": targets},
            keep=steps.evaluation_keep(num_models, len(data.x), seed=seed))
        report = None
        if run_dir is not None and jax.process_index() == 0:  # Every process trains; one writes.
            report = write_report(run_dir, evaluation, bootstrap_resamples=bootstrap_resamples,
                                  seed=seed, plots=plots)
    return evaluation, report
