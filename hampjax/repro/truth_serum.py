"""The Truth-Serum poisoning experiment (HAMP Section V-C; Tramer et al., CCS 2022).

Per cell (``config.cells.<cell>``, the cell fields of :mod:`hampjax.repro.cells`; ``sweep`` and
``non_adaptive_shadows`` must be empty) and per defense:

1. the candidate pool of the cell's split and the evaluation keep matrix
   (:func:`hampjax.evaluation.steps.evaluation_keep`, complementary pairs: every example has IN
   and OUT models whichever model is left out);
2. :func:`hampjax.attacks.poison_dataset`: ``config.poison.num_targets`` targets of the pool,
   each with one wrong label, ``config.poison.replicas`` mislabelled copies in EVERY model's
   training set (the targets' own copies follow the keep matrix);
3. all ``config.num_models`` models trained with the defense's recipe on the poisoned
   candidates (:func:`hampjax.training.train_many`, resumable under
   ``<cell>/train/<defense>``);
4. every model's released outputs on the original candidates and the test set through the
   evaluation pipeline's output step (:func:`hampjax.evaluation.steps.predict_outputs`: HAMP's
   output modification on the target's AND the shadows' outputs, an adaptive attacker);
5. :func:`hampjax.attacks.poisoning_scores`: leave-one-model-out LiRA, online with fixed
   variance, on the targets only, pooled over all ``M x num_targets`` (model, target) points.

Each cell writes a standard report directory (:func:`hampjax.report.write_report`: one attack,
``lira_online_fixed_variance``, on the pooled points; ``report.json`` / ``scores.npz``) and
``stats.json`` (per defense: the mean over models of the accuracies and output entropies, and
the per-target-model mean of the attack's rates), so :func:`hampjax.repro.rundir.read_run`
reads it as any evaluation cell. Accuracies in the report are the mean over all models (each
on its own members and on the test set).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from hampjax import atomic, validation
from hampjax.attacks import leave_one_out_metrics, poison_dataset, poisoning_scores
from hampjax.evaluation import Defense, EvalData
from hampjax.evaluation.steps import evaluation_keep, predict_outputs, statistics
from hampjax.models import get_model
from hampjax.report import DefenseResult, Evaluation, write_report
from hampjax.repro import cells as _cells
from hampjax.repro import rundir
from hampjax.repro.datasets import load_dataset, load_experiment_data
from hampjax.scores import logit_scaled_score
from hampjax.training import build_recipe, train_many

__all__ = ["ATTACK", "check_truth_serum", "run_truth_serum"]

ATTACK = "lira_online_fixed_variance"
"""The attack name in the reports (leave-one-model-out, pooled over the target models)."""


def check_truth_serum(config: Any) -> None:
    """Check the cells (:func:`hampjax.repro.cells.check_cells`) and ``config.poison``.

    Raises:
      ValueError: naming the bad field.
    """
    _cells.check_cells(config)
    for name, cell in config.cells.items():
        for field in ("sweep", "non_adaptive_shadows"):
            if len(cell[field]):
                raise ValueError(f"config.cells.{name}.{field} must be empty for the "
                                 f"truth_serum kind (every defense is adaptive), got "
                                 f"{dict(cell[field])}")
    poison = config.get("poison")
    if poison is None:
        raise ValueError("config.poison (num_targets, replicas) is required")
    validation.check_positive_int("config.poison.num_targets", poison.num_targets)
    validation.check_positive_int("config.poison.replicas", poison.replicas)
    validation.check_choice("config.poison.center", poison.center, ("median", "mean"))


def _mean(values) -> float:
    return float(np.mean(np.asarray(values, np.float64)))


def _run_defense(config: Any, model: Any, name: str, spec: Any, data: EvalData, poisoned: Any,
                 cell_dir: str, progress: bool) -> DefenseResult:
    recipe = build_recipe(spec)
    n = poisoned.num_original
    timings = {}
    t0 = time.perf_counter()
    val = (data.x_val, data.y_val) if data.x_val is not None else None
    trained = train_many(model, recipe, poisoned.x, poisoned.y, poisoned.keep, seed=config.seed,
                         val_data=val, workdir=os.path.join(cell_dir, "train", name),
                         progress=progress)
    timings["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # Released outputs on the original candidates (true labels): the output step of the
    # evaluation pipeline, i.e. HAMP's output modification on every model when the spec asks.
    predictions = predict_outputs(model, trained.variables, Defense(name, recipe), data,
                                  seed=config.seed)
    timings["predict"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    outputs = predictions.outputs  # [M, N, 1, C]
    labels = np.broadcast_to(np.asarray(data.y)[None, :, None], outputs.shape[:3])
    scores = np.asarray(logit_scaled_score(outputs, labels))
    result = poisoning_scores(scores, poisoned, center=config.poison.center)
    per_target = leave_one_out_metrics(result).mean
    timings["attack"] = time.perf_counter() - t0
    keep = poisoned.keep[:, :n]
    per_model = [statistics(predictions, data, keep, target=m) for m in range(keep.shape[0])]
    stats = {"entropy_members": _mean([s["entropy_members"] for _, _, s in per_model]),
             "entropy_nonmembers": _mean([s["entropy_nonmembers"] for _, _, s in per_model])}
    for metric in ("auc", "tpr@0.1%fpr", "tnr@0.1%fnr"):
        stats[f"per_target_mean/{metric}"] = float(per_target[metric])
    return DefenseResult(
        train_acc=_mean([a for a, _, _ in per_model]), test_acc=_mean([t for _, t, _ in per_model]),
        attacks={ATTACK: (result.scores.ravel(), result.labels.ravel())},
        config={"recipe": recipe.config, "poison": dict(config.poison),
                "targets": [int(t) for t in poisoned.target_index]},
        stats=stats, timings=timings, models_trained=trained.models_trained,
        models_loaded=trained.models_loaded)


def run_truth_serum(config: Any, workdir: str, progress: bool) -> list[str]:
    """Run every cell of ``config.cells`` (skipping finished ones); returns the cell names."""
    for name, cell in config.cells.items():
        cell_dir = os.path.join(workdir, name)
        specs = _cells.cell_specs(cell, f"config.cells.{name}")
        ds = load_dataset(cell.dataset, data_dir=config.get("data_dir"), download=config.download,
                          accept_texas_terms=config.accept_texas_terms)
        data = load_experiment_data(cell.dataset, seed=config.seed, scheme=cell.scheme,
                                    train_size=cell.train_size, ds=ds)
        rundir.record_cell_data(workdir, name, data.record)
        rundir.record_cell_info(workdir, name, {"dataset": cell.dataset,
                                                "train_size": cell.train_size, "sweep": {}})
        if rundir.cell_done(cell_dir):
            print(f"[{name}] done already, skipped")
            continue
        eval_data = data.eval_data
        keep = evaluation_keep(config.num_models, len(eval_data.x), seed=config.seed)
        poisoned = poison_dataset(eval_data.x, eval_data.y, keep,
                                  num_targets=config.poison.num_targets,
                                  replicas=config.poison.replicas,
                                  num_classes=data.num_classes, seed=config.seed)
        model = get_model(cell.model, data.num_classes, **dict(cell.model_kwargs))
        t0 = time.perf_counter()
        results = {d: _run_defense(config, model, d, spec, eval_data, poisoned, cell_dir, progress)
                   for d, spec in specs.items()}
        if rundir.is_main_process():
            evaluation = Evaluation(
                results, num_models=config.num_models, num_queries=1,
                seeds={"keep": config.seed, "poison": config.seed, "train": config.seed},
                config=rundir.config_dict(config),
                timings={"total": time.perf_counter() - t0})
            write_report(cell_dir, evaluation, bootstrap_resamples=config.bootstrap_resamples,
                         seed=config.seed, plots=config.plots)
            atomic.write_json(os.path.join(cell_dir, "stats.json"),
                              {d: dict(r.stats) for d, r in results.items()}, sort_keys=True)
        print(f"[{name}] {len(results)} defenses in {time.perf_counter() - t0:.0f} s")
    return list(config.cells)
