"""Membership inference attacks.

Convention everywhere: a higher score means "more likely member"; members are the positive
class (label 1).

* :mod:`~hampjax.attacks.metric` - loss, confidence, entropy, modified entropy, correctness;
  ROC sweep and calibrated (global / per-class) thresholds.
* :mod:`~hampjax.attacks.lira` - LiRA online/offline, fixed/per-example variance.
* :mod:`~hampjax.attacks.leave_one_out` - leave-one-model-out LiRA, all targets at once.
* :mod:`~hampjax.attacks.rmia` - RMIA with an O((N + Z) log Z) sorted path.
* :mod:`~hampjax.attacks.shokri` - Shokri et al. per-class shadow-model attack models.
* :mod:`~hampjax.attacks.risk_score` - Song & Mittal's privacy risk score.
* :mod:`~hampjax.attacks.poisoning` - Truth-Serum poisoning: poisoned candidates and evaluation.
* :mod:`~hampjax.attacks.nn` - the Nasr et al. NN attack and the Salem et al. top-3 attack.
* :mod:`~hampjax.attacks.label_only` - gap, noise and augmentation robustness, HopSkipJump and
  CW-L2 boundary distances.
* :mod:`~hampjax.attacks.shift` - fitted score attacks under non-member distribution shift.

The adaptive evaluation (train target + shadows, run every attack) is :mod:`hampjax.evaluation`.
"""

from hampjax.attacks.label_only import (
    augmentation_scores,
    cw_l2_distance,
    distance_to_score,
    gap_attack_scores,
    hop_skip_jump_distance,
    labels_from_logits,
    noise_robustness_scores,
)
from hampjax.attacks.leave_one_out import (
    LeaveOneOutMetrics,
    LeaveOneOutResult,
    leave_one_out,
    leave_one_out_metrics,
)
from hampjax.attacks.lira import LIRA_VARIANT_NAMES, global_threshold_score, lira, lira_variants
from hampjax.attacks.metric import (
    METRIC_SCORES,
    Thresholds,
    apply_thresholds,
    fit_thresholds,
    metric_attack_scores,
    yeom_predict,
    yeom_threshold,
    youden_threshold,
)
from hampjax.attacks.nn import (
    NNAttack,
    Top3Attack,
    nn_attack_scores,
    top3_attack_scores,
    train_nn_attack,
    train_top3_attack,
)
from hampjax.attacks.rmia import rmia, true_class_probs, tune_offline_a
from hampjax.attacks.poisoning import PoisonedData, poison_dataset, poisoning_scores
from hampjax.attacks.risk_score import privacy_risk_scores
from hampjax.attacks.shokri import (
    SHOKRI_FEATURES,
    ShokriAttack,
    shokri_attack_scores,
    shokri_features,
    train_shokri_attack,
)
from hampjax.attacks.shift import (
    COUNT_KEYS,
    FLOAT_KEYS,
    FittedScoreAttack,
    LABEL_AWARE_ATTACKS,
    SCORE_ATTACKS,
    calibration_summary,
    evaluate_shift,
    fit_score_attacks,
    max_prediction_score,
    max_score_logit,
)

__all__ = [
    "PoisonedData",
    "poison_dataset",
    "poisoning_scores",
    "privacy_risk_scores",
    "SHOKRI_FEATURES",
    "ShokriAttack",
    "shokri_attack_scores",
    "shokri_features",
    "train_shokri_attack",
    "SCORE_ATTACKS",
    "LABEL_AWARE_ATTACKS",
    "FLOAT_KEYS",
    "COUNT_KEYS",
    "max_score_logit",
    "max_prediction_score",
    "FittedScoreAttack",
    "fit_score_attacks",
    "evaluate_shift",
    "calibration_summary",
    "LIRA_VARIANT_NAMES",
    "LeaveOneOutMetrics", "LeaveOneOutResult", "METRIC_SCORES", "NNAttack", "Thresholds",
    "Top3Attack", "apply_thresholds", "augmentation_scores", "cw_l2_distance",
    "distance_to_score", "fit_thresholds",
    "gap_attack_scores", "global_threshold_score", "hop_skip_jump_distance",
    "labels_from_logits", "leave_one_out", "leave_one_out_metrics", "lira", "lira_variants",
    "metric_attack_scores", "nn_attack_scores", "noise_robustness_scores", "rmia",
    "top3_attack_scores", "train_nn_attack", "train_top3_attack",
    "true_class_probs", "tune_offline_a", "yeom_predict", "yeom_threshold", "youden_threshold",
]
