"""Song & Mittal's privacy risk score (USENIX Security 2021), as used by Weighted Smoothing.

The privacy risk score of an example is the posterior probability that it is a member given
the model's behaviour on it, estimated from shadow models:

    risk(x) = P(in | s) = p_in(s) / (p_in(s) + p_out(s))

(equal priors, as in the paper), where ``s`` is a per-example score of the target model (the
paper uses the modified-entropy score; see :func:`hampjax.attacks.metric_attack_scores`) and
``p_in`` / ``p_out`` are class-conditional densities of the same score over the shadow models'
IN and OUT examples. Densities are normalized histograms (the paper's choice): for each class,
``num_bins`` equal-width bins spanning the class's shadow scores (IN and OUT together), each
bin left-closed except the last, which is closed (``np.histogram``'s convention). A target
score outside that span falls in the first or last bin. A bin holding no shadow score on either
side gives 0.5 (no evidence either way).

Host-side NumPy (float64); the score transform is the caller's (any score where a monotone
change of variable keeps the bins equal-width, e.g. a negation, gives the same risks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hampjax import validation

__all__ = ["privacy_risk_scores", "DEFAULT_RISK_BINS"]

DEFAULT_RISK_BINS = 30


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value for ``edges [B + 1]``: left-closed bins, last bin closed, clipped."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def privacy_risk_scores(
    target_scores: Any,
    labels: Any,
    shadow_scores: Any,
    shadow_keep: Any,
    *,
    num_bins: int = DEFAULT_RISK_BINS,
    shadow_labels: Any = None,
) -> np.ndarray:
    """Per-example privacy risk scores ``[N]`` in ``[0, 1]`` (higher = more likely member).

    Args:
      target_scores: ``[N]`` float scores of the target model on the evaluated examples.
      labels: ``[N]`` int classes of those examples.
      shadow_scores: ``[S, M]`` float scores of ``S`` shadow models on ``M`` examples.
      shadow_keep: ``[S, M]`` bool, ``True`` iff shadow ``s`` trained on example ``m``.
      num_bins: histogram bins per class.
      shadow_labels: ``[M]`` int classes of the shadow examples (default ``labels``, i.e. the
        shadows were scored on the same ``N`` examples).

    Returns:
      ``[N]`` float64 risk scores.

    Raises:
      ValueError: on inconsistent shapes, non-finite scores, a non-boolean keep, or a class of
        ``labels`` with no IN or no OUT shadow score.

    Example:
      >>> shadow = np.array([[3.0, 2.9, 0.1, 0.2]])
      >>> keep = np.array([[True, True, False, False]])
      >>> risk = privacy_risk_scores(np.array([3.0, 0.0]), np.zeros(2, int), shadow, keep,
      ...                            num_bins=2, shadow_labels=np.zeros(4, int))
      >>> risk.tolist()
      [1.0, 0.0]
    """
    for name, x, ndim in (("target_scores", target_scores, 1), ("shadow_scores", shadow_scores, 2)):
        validation.check_ndim(name, x, ndim)
        validation.check_floating(name, x)
        validation.check_finite(name, x)
    n = validation.shape_of(target_scores)[0]
    s, m = validation.shape_of(shadow_scores)
    validation.check_mask("shadow_keep", shadow_keep, (s, m))
    num_bins = validation.check_positive_int("num_bins", num_bins)
    labels = _int_labels("labels", labels, n)
    shadow_labels = labels if shadow_labels is None else _int_labels("shadow_labels", shadow_labels, m)
    target = np.asarray(target_scores, np.float64)
    shadow = np.asarray(shadow_scores, np.float64)
    keep = np.asarray(shadow_keep)
    out = np.empty(n)
    for c in np.unique(labels):
        cols = shadow_labels == c
        values, is_in = shadow[:, cols].ravel(), keep[:, cols].ravel()
        if not is_in.any() or is_in.all():
            raise ValueError(
                f"shadow scores must include IN and OUT examples of every class in labels; class {int(c)} "
                f"has {int(is_in.sum())} IN and {int((~is_in).sum())} OUT")
        edges = np.linspace(values.min(), values.max(), num_bins + 1)
        idx = _bin_index(values, edges)
        h_in = np.bincount(idx[is_in], minlength=num_bins) / is_in.sum()
        h_out = np.bincount(idx[~is_in], minlength=num_bins) / (~is_in).sum()
        total = h_in + h_out
        risk = np.where(total > 0, h_in / np.where(total > 0, total, 1.0), 0.5)
        rows = labels == c
        out[rows] = risk[_bin_index(target[rows], edges)]
    return out


def _int_labels(name: str, labels: Any, n: int) -> np.ndarray:
    validation.check_shape(name, labels, (n,))
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    return labels
