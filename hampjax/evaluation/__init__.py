"""The adaptive evaluation pipeline: train target + shadows, predict, attack, report.

Above training, attacks and report in the layer order. The steps are public and testable
alone:

* :mod:`~hampjax.evaluation.setup` - :class:`Defense` (a recipe; its spec names the output
  transform), :class:`EvalData`, :class:`AttackSettings`, :func:`attack_roles`.
* :mod:`~hampjax.evaluation.steps` - 1. :func:`train_models`, 2. :func:`predict_outputs`,
  3. :func:`score_attacks` (resumable), 4. :func:`statistics`.
* :mod:`~hampjax.evaluation.families` - the attack families (metric, lira, rmia, nn, shokri,
  risk_score, label_only, boundary: CW-L2 on images, HopSkipJump on tabular data).
* :mod:`~hampjax.evaluation.store` - finished attack families on disk.
* :mod:`~hampjax.evaluation.targets` - each of several models in turn the target
  (:func:`multi_target_summary`).
* :mod:`~hampjax.evaluation.pipeline` - :func:`evaluate_defense` (one
  :class:`hampjax.report.DefenseResult`), :func:`evaluate_defense_results` (plus one per
  early-stopping epoch) and :func:`evaluate_defenses` (the
  :class:`hampjax.report.Evaluation` and its report).
"""

from hampjax.evaluation.families import (
    FAMILIES,
    FAMILY_ORDER,
    AttackInputs,
    attack_key,
    boundary_attack,
    score_family,
)
from hampjax.evaluation.pipeline import (
    defense_config,
    evaluate_defense,
    evaluate_defense_results,
    evaluate_defenses,
    run_config,
)
from hampjax.evaluation.setup import (
    BOUNDARY_ATTACKS,
    AttackSettings,
    Defense,
    EvalData,
    attack_roles,
    model_record,
    output_config,
    snapshot_name,
    snapshot_spec,
)
from hampjax.evaluation.steps import (
    Predictions,
    TrainedModels,
    attack_inputs,
    evaluation_keep,
    memguard_outputs,
    output_modifier,
    predict_outputs,
    score_attacks,
    statistics,
    train_models,
    train_recipe,
)
from hampjax.evaluation.targets import MULTI_TARGET_METRICS, multi_target_scores, multi_target_summary

__all__ = [
    "AttackInputs",
    "BOUNDARY_ATTACKS",
    "AttackSettings",
    "Defense",
    "EvalData",
    "FAMILIES",
    "FAMILY_ORDER",
    "MULTI_TARGET_METRICS",
    "Predictions",
    "TrainedModels",
    "attack_inputs",
    "attack_key",
    "attack_roles",
    "boundary_attack",
    "defense_config",
    "evaluate_defense",
    "evaluate_defense_results",
    "evaluate_defenses",
    "evaluation_keep",
    "multi_target_scores",
    "multi_target_summary",
    "memguard_outputs",
    "model_record",
    "output_config",
    "output_modifier",
    "predict_outputs",
    "run_config",
    "score_attacks",
    "score_family",
    "snapshot_name",
    "snapshot_spec",
    "statistics",
    "train_models",
    "train_recipe",
]
