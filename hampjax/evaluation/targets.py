"""Several targets: each of the first ``T`` models in turn the target, the others its shadows.

With one target, the metric attacks' AUCs on a small data set are dominated by how hard that
one split's members happen to be. Every model of an evaluation is trained the same way on its
own row of the keep matrix, so any of them can be the target (spec section 1.4: leave one model
out). :func:`multi_target_summary` scores the attacks that are cheap to repeat, the metric
attacks, the LiRA variants (:func:`hampjax.attacks.lira.leave_one_out`: every target's
statistics from one sort) and RMIA, on each target's own evaluated half, and reports per
attack the mean, the sample standard deviation and the per-target values of AUC,
TPR@0.1%FPR and TNR@0.1%FNR. Target 0's values are those of the evaluation's main results.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from hampjax.attacks.lira import LIRA_VARIANT_NAMES, global_threshold_score, leave_one_out
from hampjax.attacks.metric import metric_attack_scores
from hampjax.attacks.rmia import rmia, true_class_probs
from hampjax.evaluation.setup import AttackSettings, attack_roles
from hampjax.metrics import summarize
from hampjax.scores import logit_scaled_score

__all__ = ["MULTI_TARGET_METRICS", "multi_target_scores", "multi_target_summary"]

MULTI_TARGET_METRICS = ("auc", "tpr@0.1%fpr", "tnr@0.1%fnr")
"""The metrics summarized over targets (keys of :func:`hampjax.metrics.summarize`)."""

_LIRA_OPTIONS = {
    "lira_online": dict(online=True, fix_variance=False),
    "lira_online_fixed_variance": dict(online=True, fix_variance=True),
    "lira_offline": dict(online=False, fix_variance=False),
    "lira_offline_fixed_variance": dict(online=False, fix_variance=True),
}


def _labels_like(outputs: np.ndarray, y: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(np.broadcast_to(y[None, :, None], outputs.shape[:3]))


def multi_target_scores(outputs: np.ndarray, test_outputs: np.ndarray, y: np.ndarray,
                        y_test: np.ndarray, keep: np.ndarray, *, targets: Sequence[int],
                        seed: int, settings: AttackSettings
                        ) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Scores of the metric, LiRA and RMIA attacks on each target's evaluated examples.

    Args:
      outputs: every model's released outputs on the candidates ``[M, N, Q, C]``.
      test_outputs: on the held-out set ``[M, Nt, Q, C]`` (RMIA's population).
      y, y_test: labels of the candidates and of the held-out set.
      keep: the keep matrix ``[M, N]``.
      targets: distinct model indices; each is attacked with all other models as shadows.
      seed: the evaluation seed (each target's evaluated half:
        :func:`~hampjax.evaluation.setup.attack_roles` of its keep row).
      settings: the attack settings (role fractions, RMIA's ``a``).

    Returns:
      ``{attack: [(scores [E_t], is_member [E_t]) per target]}`` in report order; for the
      target ``t = targets[i]`` the entry ``i`` equals the evaluation's scores with target ``t``.
    """
    targets = [int(t) for t in targets]
    y, y_test, keep = np.asarray(y), np.asarray(y_test), np.asarray(keep)
    evaluated = [attack_roles(keep[t], seed=seed, fractions=settings.role_fractions) == 2
                 for t in targets]

    def select(per_target_scores):
        return [(np.asarray(s, np.float64)[e], keep[t][e])
                for t, s, e in zip(targets, per_target_scores, evaluated)]

    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    metric = [metric_attack_scores(outputs[t][:, 0], y) for t in targets]
    for name in metric[0]:
        out[name] = select([m[name] for m in metric])
    lss = np.asarray(logit_scaled_score(jnp.asarray(outputs), _labels_like(outputs, y)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LiRA with per-example variances",
                                category=UserWarning)
        for name in LIRA_VARIANT_NAMES:
            if name in _LIRA_OPTIONS:
                out[name] = select(leave_one_out(lss, keep, targets=targets,
                                                 **_LIRA_OPTIONS[name]).scores)
            else:
                out[name] = select([global_threshold_score(lss[t]) for t in targets])
    probs = np.asarray(true_class_probs(jnp.asarray(outputs), _labels_like(outputs, y)))
    probs_z = np.asarray(true_class_probs(jnp.asarray(test_outputs), _labels_like(test_outputs, y_test)))
    rmia_scores = []
    for t in targets:
        others = np.delete(np.arange(keep.shape[0]), t)
        rmia_scores.append(rmia(probs[t], probs[others], keep[others], probs_z[t], probs_z[others],
                                online=True, a=settings.rmia_a))
    out["rmia"] = select(rmia_scores)
    return out


def _spread(values: Sequence[float]) -> dict[str, Any]:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)),
            "per_target": values}


def multi_target_summary(outputs: np.ndarray, test_outputs: np.ndarray, y: np.ndarray,
                         y_test: np.ndarray, keep: np.ndarray, *, targets: Sequence[int],
                         seed: int, settings: AttackSettings) -> dict[str, Any]:
    """Mean and spread over targets of the cheap attacks' metrics and the accuracies.

    Args:
      outputs, test_outputs, y, y_test, keep, seed, settings: as :func:`multi_target_scores`.
      targets: at least 2 distinct model indices.

    Returns:
      The JSON-ready ``DefenseResult.multi_target`` dict::

        {"targets": [t, ...], "metrics": ["auc", "tpr@0.1%fpr", "tnr@0.1%fnr"],
         "train_acc": S, "test_acc": S, "attacks": {<attack>: {<metric>: S}}}

      where ``S = {"mean", "std", "per_target": [...]}``: the mean, the sample standard
      deviation (``ddof=1``) and the value of each target in order.

    Raises:
      ValueError: with fewer than 2 targets or repeated targets.
    """
    targets = [int(t) for t in targets]
    if len(targets) < 2 or len(set(targets)) != len(targets):
        raise ValueError(f"targets must be at least 2 distinct model indices, got {targets}")
    scores = multi_target_scores(outputs, test_outputs, y, y_test, keep, targets=targets,
                                 seed=seed, settings=settings)
    y, y_test, keep = np.asarray(y), np.asarray(y_test), np.asarray(keep)
    attacks = {}
    for name, pairs in scores.items():
        summaries = [summarize(s, m.astype(np.int8), fprs=(1e-3,), fnrs=(1e-3,)) for s, m in pairs]
        attacks[name] = {k: _spread([d[k] for d in summaries]) for k in MULTI_TARGET_METRICS}
    predicted, predicted_test = outputs[:, :, 0].argmax(-1), test_outputs[:, :, 0].argmax(-1)
    return {
        "targets": targets,
        "metrics": list(MULTI_TARGET_METRICS),
        "train_acc": _spread([np.mean(predicted[t][keep[t]] == y[keep[t]]) for t in targets]),
        "test_acc": _spread([np.mean(predicted_test[t] == y_test) for t in targets]),
        "attacks": attacks,
    }
