"""The adaptive evaluation pipeline: train target + shadows, predict, attack, report.

Above training, attacks and report in the layer order. The steps are public and testable
alone:

* :mod:`~hampjax.evaluation.setup` - :class:`Defense` (a recipe; its spec names the output
  transform), :class:`EvalData`, :class:`AttackSettings`, :func:`attack_roles`.
* :mod:`~hampjax.evaluation.steps` - 1. :func:`train_models`, 2. :func:`predict_outputs`,
  3. :func:`score_attacks` (resumable), 4. :func:`statistics`.
* :mod:`~hampjax.evaluation.families` - the attack families (metric, lira, rmia, nn,
  label_only, boundary).
* :mod:`~hampjax.evaluation.store` - finished attack families on disk.
* :mod:`~hampjax.evaluation.pipeline` - :func:`evaluate_defense` (one
  :class:`hampjax.report.DefenseResult`) and :func:`evaluate_defenses` (the
  :class:`hampjax.report.Evaluation` and its report).
"""

from hampjax.evaluation.families import FAMILIES, FAMILY_ORDER, AttackInputs, attack_key, score_family
from hampjax.evaluation.pipeline import defense_config, evaluate_defense, evaluate_defenses, run_config
from hampjax.evaluation.setup import AttackSettings, Defense, EvalData, attack_roles, output_config
from hampjax.evaluation.steps import (
    Predictions,
    TrainedModels,
    attack_inputs,
    evaluation_keep,
    output_modifier,
    predict_outputs,
    score_attacks,
    statistics,
    train_models,
)

__all__ = [
    "AttackInputs",
    "AttackSettings",
    "Defense",
    "EvalData",
    "FAMILIES",
    "FAMILY_ORDER",
    "Predictions",
    "TrainedModels",
    "attack_inputs",
    "attack_key",
    "attack_roles",
    "defense_config",
    "evaluate_defense",
    "evaluate_defenses",
    "evaluation_keep",
    "output_config",
    "output_modifier",
    "predict_outputs",
    "run_config",
    "score_attacks",
    "score_family",
    "statistics",
    "train_models",
]
