"""Membership-inference and calibration metrics.

Convention: a higher score means "more likely a member"; label 1 = member (positive class).
All functions are host-side NumPy (float64) and accept NumPy or JAX arrays.
"""

from hampjax.metrics.calibration import (
    ReliabilityDiagram,
    expected_calibration_error,
    mean_max_prediction_score,
    overconfidence_error,
    reliability_diagram_data,
    wasserstein_distance,
)
from hampjax.metrics.intervals import (
    Interval,
    bootstrap_interval,
    bootstrap_summary,
    clopper_pearson,
    summary_metric_keys,
)
from hampjax.metrics.roc import (
    ResolutionWarning,
    RocCurve,
    attacker_advantage,
    auc,
    balanced_accuracy,
    below_resolution_key,
    format_rate,
    min_resolvable_fnr,
    min_resolvable_fpr,
    roc_curve,
    summarize,
    tnr_at_fnr,
    tnr_at_fnr_key,
    tpr_at_fpr,
    tpr_at_fpr_key,
)

__all__ = [
    "Interval",
    "ReliabilityDiagram",
    "ResolutionWarning",
    "RocCurve",
    "attacker_advantage",
    "auc",
    "balanced_accuracy",
    "below_resolution_key",
    "bootstrap_interval",
    "bootstrap_summary",
    "clopper_pearson",
    "expected_calibration_error",
    "format_rate",
    "mean_max_prediction_score",
    "min_resolvable_fnr",
    "min_resolvable_fpr",
    "overconfidence_error",
    "reliability_diagram_data",
    "roc_curve",
    "summarize",
    "summary_metric_keys",
    "tnr_at_fnr",
    "tnr_at_fnr_key",
    "tpr_at_fpr",
    "tpr_at_fpr_key",
    "wasserstein_distance",
]
