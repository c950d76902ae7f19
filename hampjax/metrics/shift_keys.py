"""The result schema of the distribution-shift evaluation (Trust experiment).

The keys of every :func:`hampjax.attacks.shift.evaluate_shift` result, shared by the attack
that produces them and the report (:mod:`hampjax.report.trust`) that reads them, so that
neither reaches into the other.
"""

from __future__ import annotations

__all__ = ["FLOAT_KEYS", "COUNT_KEYS"]

FLOAT_KEYS: tuple[str, ...] = (
    "threshold", "fpr", "precision", "recall", "accuracy", "auroc", "aupr", "fpr@95%tpr",
    "mmps_tp", "mmps_fp", "mmps_fn", "mmps_tn", "fpr_argmax_eq_label", "fpr_argmax_ne_label",
)
"""Float entries of every :func:`~hampjax.attacks.shift.evaluate_shift` result (NaN where undefined)."""

COUNT_KEYS: tuple[str, ...] = (
    "num_members", "num_nonmembers", "tp", "fp", "fn", "tn",
    "num_argmax_eq_label", "num_argmax_ne_label",
)
"""Integer entries of every :func:`~hampjax.attacks.shift.evaluate_shift` result."""
