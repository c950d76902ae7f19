"""Score-based attacks under non-member distribution shift ("To Trust or Not To Trust", B.2-B.3).

The question of the paper: a score-based membership attack fitted on a shadow model's own
members / non-members is applied, unchanged, to the target model; what fraction of
non-members from OTHER distributions (test data, other datasets, permuted or scaled images)
does it flag as members? For ReLU networks the answer for scaled inputs is "almost all"
(Theorem 1: ``max softmax f(delta x) -> 1`` as ``delta`` grows).

Attacks (all fitted by :func:`fit_score_attacks` on the SHADOW model's outputs), each with an
internal score oriented so that HIGHER = more likely member, and the rule
"member iff ``score >= threshold``":

===========  ==================================  ==========================================
name         score (higher = member)             threshold
===========  ==================================  ==========================================
max_score    :func:`max_score_logit` (logit of   Youden's J (``argmax TPR - FPR``) on the
             the max softmax probability)        shadow ROC; "max prob > t" in the paper
entropy      ``-H(softmax(z))``                  accuracy-maximizing on the shadow data;
                                                 "entropy < t" in the paper
top3         pre-sigmoid output of the Salem     0 (sigmoid output >= 0.5)
             top-3 NN (:mod:`hampjax.attacks.nn`)
loss         ``z_y - logsumexp_{j != y} z_j``    Youden's J; "loss < t" (label-aware)
             (decreasing in the CE loss)
===========  ==================================  ==========================================

Saturation: float32 ``softmax`` rounds the max probability to exactly 1.0 once the top-1
logit gap exceeds about 17, which is every scaled input. A threshold on the probability then
merges all such examples into one value, and a strict ``>`` rule with a threshold equal to
that value silently flags none of them (FPR 0). The max-score and loss scores are therefore
computed as exact logits (finite and strictly ordered for logits of any finite magnitude), and
the decision rule is ``>=`` with the threshold taken from the exact ROC of the shadow scores,
which reproduces the fitted ROC point exactly. Entropy is computed from ``log_softmax``
(:func:`hampjax.scores.entropy`): it stays positive and ordered until every non-top logit
gap exceeds about 100 (float32; about 740 in float64), where it reaches exactly 0 and all
such examples tie; with the ``>=`` rule ties at the threshold count as members.

Logits or log-probabilities may be passed everywhere (log-probabilities are valid logits).

:func:`evaluate_shift` applies the fitted attacks to the target's members and each non-member
set and returns FPR, precision, recall, accuracy, AUROC, AUPR, FPR at 95% TPR and the mean max
prediction score (MMPS) per confusion cell. Scores are JAX; evaluation is host-side NumPy
(float64), like :mod:`hampjax.metrics`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import scores as _scores
from hampjax import validation
from hampjax.attacks.metric import youden_threshold
from hampjax.attacks.nn import Top3Attack, top3_features, train_top3_attack
from hampjax.metrics.calibration import (
    expected_calibration_error,
    mean_max_prediction_score,
    overconfidence_error,
)
from hampjax.metrics.roc import auc, roc_curve
from hampjax.metrics.shift_keys import COUNT_KEYS, FLOAT_KEYS

__all__ = [
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
]

SCORE_ATTACKS: tuple[str, ...] = ("max_score", "entropy", "top3", "loss")
"""Names of the attacks :func:`fit_score_attacks` can fit, in report order."""

LABEL_AWARE_ATTACKS: frozenset[str] = frozenset({"loss"})
"""Attacks that need the class label of every example they score."""



# --------------------------------------------------------------------------------------------
# Scores (JAX).
# --------------------------------------------------------------------------------------------


def _check_logits(name: str, logits: Any, *, ndim: int | None = None) -> int:
    """Floating logits ``[..., C]`` with ``C >= 2`` (finite when concrete); return C."""
    if ndim is None:
        validation.check_rank_at_least(name, logits, 1)
    else:
        validation.check_ndim(name, logits, ndim)
        validation.check_nonempty(name, logits)
    validation.check_floating(name, logits)
    validation.check_finite(name, logits)
    return validation.check_num_classes(validation.shape_of(logits)[-1], name=f"{name}.shape[-1]")


def max_score_logit(logits: jax.Array) -> jax.Array:
    """Logit of the max softmax probability, ``log p_max - log(1 - p_max)``, saturation-safe.

    Computed exactly as ``-logsumexp_{j != argmax}(z_j - z_max)``: finite for logits of any
    finite magnitude and strictly increasing in ``p_max``, also where float32 ``softmax``
    returns a max probability of exactly 1.0. ``p_max = sigmoid(score)``. When several classes
    share the maximum the score is ``<= 0`` (``p_max <= 1/2``), still exact.

    Args:
      logits: ``[..., C]`` float logits (or log-probabilities), ``C >= 2``; finite when
        concrete.

    Returns:
      ``[...]`` scores in the dtype of ``logits``.

    Raises:
      ValueError: if ``logits`` is not floating, has no class axis, fewer than 2 classes or
        non-finite values.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> z = jnp.array([[30.0, 0.0], [40.0, 0.0], [0.0, 0.0]])
      >>> jax.nn.softmax(z).max(-1).tolist()  # float32 saturates for the first two
      [1.0, 1.0, 0.5]
      >>> max_score_logit(z).tolist()
      [30.0, 40.0, 0.0]
    """
    num_classes = _check_logits("logits", logits)
    logits = jnp.asarray(logits)
    top = jnp.argmax(logits, axis=-1)
    z_max = jnp.max(logits, axis=-1, keepdims=True)
    is_top = jax.nn.one_hot(top, num_classes, dtype=bool)
    others = jnp.where(is_top, -jnp.inf, logits - z_max)
    return 0.0 - jax.nn.logsumexp(others, axis=-1)  # 0.0 - x: no -0.0 for ties


def max_prediction_score(logits: Any) -> np.ndarray:
    """Max softmax probability per example in float64 (host-side NumPy), from logits.

    ``p_max = 1 / sum_j exp(z_j - z_max)`` evaluated in float64, so it is 1.0 only where the
    float64 value rounds to 1 (top-1 gap beyond about 37), not at float32's gap of about 17.

    Args:
      logits: ``[N, C]`` finite float logits (or log-probabilities), ``N >= 1``, ``C >= 2``.

    Returns:
      ``[N]`` float64 in ``(0, 1]``.

    Raises:
      ValueError: if ``logits`` is not 2-D, non-empty, floating and finite with ``C >= 2``.

    Example:
      >>> max_prediction_score([[0.0, 0.0], [2.0, 0.0]]).round(4).tolist()
      [0.5, 0.8808]
    """
    _check_logits("logits", logits, ndim=2)
    z = np.asarray(logits, dtype=np.float64)
    return 1.0 / np.sum(np.exp(z - z.max(axis=1, keepdims=True)), axis=1)


@functools.partial(jax.jit, static_argnames=("model",))
def _top3_logit(model, params, logits):
    return model.apply({"params": params}, top3_features(logits))


def _score(name: str, top3: Top3Attack | None, logits: jax.Array, labels: jax.Array | None):
    if name == "max_score":
        return max_score_logit(logits)
    if name == "entropy":
        return -_scores.entropy(logits)
    if name == "loss":
        return _scores.logit_scaled_score(logits, labels)
    return _top3_logit(top3.model, top3.params, logits.astype(jnp.float32))


# --------------------------------------------------------------------------------------------
# Fitted attacks.
# --------------------------------------------------------------------------------------------


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["threshold", "top3"],
    meta_fields=["name", "num_classes"],
)
@dataclasses.dataclass(frozen=True)
class FittedScoreAttack:
    """One fitted score attack: member iff ``score(logits, labels) >= threshold``.

    A pytree (``threshold`` and ``top3`` are leaves, ``name`` and ``num_classes`` static), so
    it can be passed through ``jax.jit``.

    Attributes:
      name: one of :data:`SCORE_ATTACKS`.
      num_classes: the number of classes ``C`` of the model it was fitted on.
      threshold: decision threshold on the oriented score (see the module table); a float.
      top3: the trained :class:`~hampjax.attacks.nn.Top3Attack` for ``name == "top3"``, else
        None.
    """

    name: str
    num_classes: int
    threshold: Any
    top3: Top3Attack | None = None

    @property
    def needs_labels(self) -> bool:
        """True for label-aware attacks (:data:`LABEL_AWARE_ATTACKS`)."""
        return self.name in LABEL_AWARE_ATTACKS

    def score(self, logits: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """Oriented membership score, higher = member (works under ``jit`` and ``vmap``).

        Args:
          logits: ``[..., C]`` float logits of the attacked model, ``C == num_classes``.
          labels: ``[...]`` integer labels in ``[0, C)``; required iff :attr:`needs_labels`.

        Returns:
          ``[...]`` scores (dtype of ``logits``; float32 for ``top3``).

        Raises:
          ValueError: on a class-count mismatch, invalid logits or labels, or missing labels
            for a label-aware attack.
        """
        _check_logits("logits", logits)
        validation.check_last_dim("logits", logits, self.num_classes)
        if self.needs_labels:
            if labels is None:
                raise ValueError(f"labels must be given for the label-aware {self.name!r} attack")
            validation.check_logits_labels(logits, labels)
            labels = jnp.asarray(labels)
        return _score(self.name, self.top3, jnp.asarray(logits), labels)

    def predict(self, logits: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """Membership decision ``score >= threshold`` (bool, same shape as the score)."""
        s = self.score(logits, labels)
        return s >= jnp.asarray(self.threshold, s.dtype)


def _accuracy_threshold(scores: np.ndarray, member: np.ndarray) -> float:
    """ROC threshold maximizing accuracy ``(TP + TN) / N`` (rule ``score >= t``).

    Counts are exact integers; ties go to the highest threshold.
    """
    roc = roc_curve(scores, member.astype(np.int8))
    num_pos = int(member.sum())
    num_neg = member.size - num_pos
    tps = np.rint(roc.tpr * num_pos).astype(np.int64)
    fps = np.rint(roc.fpr * num_neg).astype(np.int64)
    return float(roc.thresholds[int(np.argmax(tps - fps))])


def fit_score_attacks(
    shadow_logits: Any,
    shadow_labels: Any,
    shadow_is_member: Any,
    *,
    key: jax.Array,
    names: Sequence[str] = SCORE_ATTACKS,
    top3_max_epochs: int = 200,
) -> dict[str, FittedScoreAttack]:
    """Fit the score attacks on a shadow model's own (balanced) members and non-members.

    Thresholds: Youden's J for ``max_score`` and ``loss``
    (:func:`hampjax.attacks.metric.youden_threshold`), accuracy on the shadow data for
    ``entropy``, 0 on the pre-sigmoid output of the trained top-3 NN for ``top3``
    (:func:`hampjax.attacks.nn.train_top3_attack`, Salem et al. settings).

    Args:
      shadow_logits: ``[N, C]`` finite float logits of the shadow model, ``C >= 2``
        (``C >= 3`` when ``"top3"`` is fitted).
      shadow_labels: ``[N]`` integer class labels in ``[0, C)``; may be None when ``"loss"``
        is not in ``names``.
      shadow_is_member: ``[N]`` 0/1 (or bool) membership; both classes present.
      key: a ``jax.random`` key (used by the top-3 NN: initialization and shuffling).
      names: which attacks to fit, a non-empty subset of :data:`SCORE_ATTACKS`, no repeats.
      top3_max_epochs: upper bound on the top-3 NN's epochs (early stopping, patience 15).

    Returns:
      ``{name: FittedScoreAttack}`` with exactly the keys of ``names``, in that order.

    Raises:
      ValueError: if the logits, labels or membership are invalid, ``names`` is empty,
        repeats a name or holds an unknown one, ``"loss"`` is requested without labels,
        ``"top3"`` with ``C < 3``, ``key`` is not a key or ``top3_max_epochs < 1``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> z = jnp.array([[6.0, 0.0], [5.0, 0.0], [0.5, 0.0], [0.2, 0.0]])
      >>> fitted = fit_score_attacks(z, jnp.array([0, 0, 0, 0]), jnp.array([1, 1, 0, 0]),
      ...                            key=jax.random.key(0), names=("max_score", "loss"))
      >>> fitted["max_score"].threshold, fitted["max_score"].predict(z).tolist()
      (5.0, [True, True, False, False])
    """
    num_classes = _check_logits("shadow_logits", shadow_logits, ndim=2)
    n = validation.shape_of(shadow_logits)[0]
    member = np.asarray(shadow_is_member)
    validation.check_binary_labels(member, name="shadow_is_member")
    validation.check_shape("shadow_is_member", member, (n,), what="shadow_logits.shape[:1]")
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ValueError(f"names must be a non-empty sequence of {SCORE_ATTACKS}, got {names!r}")
    for name in names:
        validation.check_choice("names", name, SCORE_ATTACKS)
    if len(set(names)) != len(names):
        raise ValueError(f"names must not repeat an attack, got {tuple(names)!r}")
    if shadow_labels is None:
        if "loss" in names:
            raise ValueError("shadow_labels must be given ([N] integer labels) to fit 'loss'")
    else:
        validation.check_logits_labels(shadow_logits, shadow_labels)
        shadow_labels = jnp.asarray(shadow_labels)
    if "top3" in names and num_classes < 3:
        raise ValueError(
            f"shadow_logits must have at least 3 classes to fit 'top3', got {num_classes}"
        )
    validation.check_key(key)
    top3_max_epochs = validation.check_positive_int("top3_max_epochs", top3_max_epochs)

    logits = jnp.asarray(shadow_logits)
    member = member.astype(np.int64) == 1
    fitted: dict[str, FittedScoreAttack] = {}
    for name in names:
        if name == "top3":
            top3 = train_top3_attack(logits, member, key=key, max_epochs=top3_max_epochs)
            fitted[name] = FittedScoreAttack(name, num_classes, 0.0, top3)
            continue
        s = np.asarray(_score(name, None, logits, shadow_labels), dtype=np.float64)
        if name == "entropy":
            threshold = _accuracy_threshold(s, member)
        else:
            threshold = youden_threshold(s, member)
        fitted[name] = FittedScoreAttack(name, num_classes, threshold, None)
    return fitted


# --------------------------------------------------------------------------------------------
# Evaluation (host-side NumPy).
# --------------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def _cell_mean(values: np.ndarray, mask: np.ndarray) -> float:
    return float(np.mean(values[mask])) if mask.any() else float("nan")


def _ranking_metrics(scores: np.ndarray, is_member: np.ndarray) -> tuple[float, float, float]:
    """(AUROC, AUPR as average precision, FPR at 95% TPR) from the exact ROC."""
    roc = roc_curve(scores, is_member)
    num_pos = int(is_member.sum())
    num_neg = is_member.size - num_pos
    tps = np.rint(roc.tpr * num_pos).astype(np.int64)
    fps = np.rint(roc.fpr * num_neg).astype(np.int64)
    # Average precision: sum_i (R_i - R_{i-1}) P_i over ROC points (ties merged), as sklearn.
    predicted = np.maximum(tps + fps, 1)
    aupr = float(np.sum(np.diff(tps) / num_pos * (tps[1:] / predicted[1:])))
    # Smallest FPR among points with TPR >= 95%, compared in integers (100 TP >= 95 P).
    first = int(np.argmax(100 * tps >= 95 * num_pos))
    return auc(scores, is_member), aupr, float(fps[first] / num_neg)


def _skipped(reason: str, num_members: int, num_nonmembers: int) -> dict[str, Any]:
    out: dict[str, Any] = {k: float("nan") for k in FLOAT_KEYS}
    out.update({k: 0 for k in COUNT_KEYS})
    out.update(num_members=num_members, num_nonmembers=num_nonmembers)
    out.update(skipped=True, skip_reason=reason)
    return out


def _evaluate_pair(
    threshold: float,
    mem_scores: np.ndarray,
    mem_pmax: np.ndarray,
    non_scores: np.ndarray,
    non_pmax: np.ndarray,
    non_correct: np.ndarray | None,
) -> dict[str, Any]:
    mem_pred = mem_scores >= threshold
    non_pred = non_scores >= threshold
    tp, fn = int(mem_pred.sum()), int((~mem_pred).sum())
    fp, tn = int(non_pred.sum()), int((~non_pred).sum())
    scores = np.concatenate([mem_scores, non_scores])
    is_member = np.concatenate(
        [np.ones(mem_scores.size, np.int8), np.zeros(non_scores.size, np.int8)]
    )
    auroc, aupr, fpr95 = _ranking_metrics(scores, is_member)
    out: dict[str, Any] = {
        "threshold": float(threshold),
        "fpr": _ratio(fp, fp + tn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
        "auroc": auroc,
        "aupr": aupr,
        "fpr@95%tpr": fpr95,
        "mmps_tp": _cell_mean(mem_pmax, mem_pred),
        "mmps_fp": _cell_mean(non_pmax, non_pred),
        "mmps_fn": _cell_mean(mem_pmax, ~mem_pred),
        "mmps_tn": _cell_mean(non_pmax, ~non_pred),
    }
    if non_correct is None:
        eq = ne = float("nan")
        num_eq = num_ne = 0
    else:
        num_eq, num_ne = int(non_correct.sum()), int((~non_correct).sum())
        eq = _cell_mean(non_pred.astype(np.float64), non_correct)
        ne = _cell_mean(non_pred.astype(np.float64), ~non_correct)
    out.update(fpr_argmax_eq_label=eq, fpr_argmax_ne_label=ne)
    out.update(
        num_members=int(mem_scores.size), num_nonmembers=int(non_scores.size),
        tp=tp, fp=fp, fn=fn, tn=tn, num_argmax_eq_label=num_eq, num_argmax_ne_label=num_ne,
        skipped=False, skip_reason=None,
    )
    return out


def _check_attacks(attacks: Any) -> dict[str, FittedScoreAttack]:
    if not isinstance(attacks, Mapping) or not attacks:
        raise ValueError(
            f"attacks must be a non-empty mapping name -> FittedScoreAttack, got {attacks!r}"
        )
    for name, attack in attacks.items():
        if not isinstance(name, str):
            raise ValueError(f"attacks keys must be strings, got {name!r}")
        if not isinstance(attack, FittedScoreAttack):
            raise ValueError(
                f"attacks[{name!r}] must be a FittedScoreAttack from fit_score_attacks, "
                f"got {type(attack)}"
            )
        validation.check_choice(f"attacks[{name!r}].name", attack.name, SCORE_ATTACKS)
        if np.ndim(attack.threshold) != 0 or not np.isfinite(float(attack.threshold)):
            raise ValueError(
                f"attacks[{name!r}].threshold must be a finite scalar, got {attack.threshold!r}"
            )
    return dict(attacks)


def _check_labeled_set(
    name: str, labels_name: str, logits: Any, labels: Any, num_classes: int | None
) -> int:
    """Validate one ``(logits [N, C], labels [N] or None)``; return C."""
    k = _check_logits(name, logits, ndim=2)
    if num_classes is not None and k != num_classes:
        raise ValueError(
            f"{name} must have a last axis of size num_classes={num_classes} (as member_logits), "
            f"got shape {validation.shape_of(logits)}"
        )
    if labels is not None:
        n = validation.shape_of(logits)[0]
        validation.check_shape(labels_name, labels, (n,), what=f"{name}.shape[:1]")
        validation.check_labels(labels, k, name=labels_name)
    return k


def evaluate_shift(
    attacks: Mapping[str, FittedScoreAttack],
    member_logits: Any,
    member_labels: Any,
    nonmember_sets: Mapping[str, tuple[Any, Any]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Apply fitted attacks to the target's members combined with each non-member set.

    Members are scored once per attack; for every non-member set the members (positives) and
    that set (negatives) form one evaluation set.

    Every result has one fixed structure: the :data:`FLOAT_KEYS` (Python floats), the
    :data:`COUNT_KEYS` (ints), ``"skipped"`` (bool) and ``"skip_reason"`` (str, or None when
    not skipped). Definitions (``tp``/``fn`` members predicted member / non-member, ``fp``/``tn``
    non-members predicted member / non-member):

    * ``fpr = fp / (fp + tn)``, ``precision = tp / (tp + fp)`` (NaN if nothing is predicted
      member), ``recall = tp / (tp + fn)``, ``accuracy = (tp + tn) / (members + non-members)``.
    * ``auroc``: :func:`hampjax.metrics.auc`; ``aupr``: average precision
      ``sum_i (R_i - R_{i-1}) P_i`` over the exact ROC points (ties merged; equals
      ``sklearn.metrics.average_precision_score``); ``fpr@95%tpr``: the smallest FPR of an
      ROC point with TPR >= 95%.
    * ``mmps_<cell>``: mean max softmax probability (:func:`max_prediction_score`) of the
      examples in that confusion cell; NaN for an empty cell.
    * ``fpr_argmax_eq_label`` / ``fpr_argmax_ne_label``: FPR among the set's non-members whose
      predicted class equals / differs from their label, with counts ``num_argmax_eq_label`` /
      ``num_argmax_ne_label``; NaN (counts 0) for a set without labels or an empty group.
    * ``threshold``: the attack's threshold on its oriented score.

    A label-aware attack (``loss``) on a set without labels (or with ``member_labels=None``)
    is not evaluated: its result has ``skipped=True``, the reason in ``skip_reason``, every
    float NaN and the confusion counts 0 (``num_members`` / ``num_nonmembers`` still hold the
    set sizes).

    Args:
      attacks: ``{name: FittedScoreAttack}`` from :func:`fit_score_attacks`, non-empty.
      member_logits: ``[M, C]`` finite float logits of the target on its members, ``M >= 1``.
      member_labels: ``[M]`` integer labels of the members, or None.
      nonmember_sets: ``{set_name: (logits [N, C], labels [N] or None)}``, non-empty.

    Returns:
      ``{set_name: {attack_name: result}}`` in the order of the inputs.

    Raises:
      ValueError: if ``attacks`` is empty or holds something other than fitted attacks,
        ``nonmember_sets`` is empty or not a mapping of pairs, logits are not 2-D, non-empty,
        floating and finite, class counts differ (between sets or from the fitted attacks),
        or labels have the wrong shape, dtype or range.

    Example:
      >>> import jax.numpy as jnp
      >>> attack = FittedScoreAttack("max_score", 2, 1.0)
      >>> members = jnp.array([[3.0, 0.0], [0.0, 2.0]])
      >>> out = evaluate_shift({"max_score": attack}, members, None,
      ...                      {"scaled": (1e3 * jnp.array([[0.1, 0.0], [0.0, 0.2]]), None)})
      >>> out["scaled"]["max_score"]["fpr"], out["scaled"]["max_score"]["mmps_tn"]
      (1.0, nan)
    """
    attacks = _check_attacks(attacks)
    num_classes = _check_labeled_set(
        "member_logits", "member_labels", member_logits, member_labels, None
    )
    for name, attack in attacks.items():
        if attack.num_classes != num_classes:
            raise ValueError(
                f"member_logits must have num_classes={attack.num_classes} (attack {name!r} was "
                f"fitted on {attack.num_classes} classes), got {num_classes}"
            )
    if not isinstance(nonmember_sets, Mapping) or not nonmember_sets:
        raise ValueError(
            "nonmember_sets must be a non-empty mapping name -> (logits [N, C], labels [N] or None)"
        )
    for set_name, pair in nonmember_sets.items():
        if not isinstance(set_name, str):
            raise ValueError(f"nonmember_sets keys must be strings, got {set_name!r}")
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"nonmember_sets[{set_name!r}] must be a pair (logits, labels or None)"
            )
        prefix = f"nonmember_sets[{set_name!r}]"
        _check_labeled_set(f"{prefix} logits", f"{prefix} labels", pair[0], pair[1], num_classes)

    def prepare(logits, labels):
        z = jnp.asarray(logits)
        y = None if labels is None else jnp.asarray(labels)
        return z, y, max_prediction_score(z)

    mem_z, mem_y, mem_pmax = prepare(member_logits, member_labels)
    mem_scores = {}
    for name, attack in attacks.items():
        if attack.needs_labels and mem_y is None:
            continue
        mem_scores[name] = np.asarray(attack.score(mem_z, mem_y), dtype=np.float64)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for set_name, (logits, labels) in nonmember_sets.items():
        z, y, pmax = prepare(logits, labels)
        correct = None if y is None else np.asarray(jnp.argmax(z, axis=-1) == y)
        results[set_name] = {}
        for name, attack in attacks.items():
            if attack.needs_labels and (mem_y is None or y is None):
                missing = (
                    "member_labels is None" if mem_y is None else f"set {set_name!r} has no labels"
                )
                reason = f"label-aware attack {attack.name!r} needs class labels; {missing}"
                results[set_name][name] = _skipped(reason, mem_z.shape[0], z.shape[0])
                continue
            non_scores = np.asarray(attack.score(z, y), dtype=np.float64)
            results[set_name][name] = _evaluate_pair(
                float(attack.threshold), mem_scores[name], mem_pmax, non_scores, pmax, correct
            )
    return results


def calibration_summary(logits: Any, labels: Any, *, num_bins: int = 15) -> dict[str, Any]:
    """Calibration of a model on one labelled set: ECE, OE, accuracy and MMPS.

    Probabilities are ``softmax(logits)`` in float64; ECE and OE use ``num_bins`` equal-width
    bins (:func:`hampjax.metrics.expected_calibration_error`,
    :func:`hampjax.metrics.overconfidence_error`).

    Args:
      logits: ``[N, C]`` finite float logits (or log-probabilities), ``N >= 1``, ``C >= 2``.
      labels: ``[N]`` integer labels in ``[0, C)``.
      num_bins: number of confidence bins, ``>= 1`` (paper: 15).

    Returns:
      ``{"ece", "oe", "accuracy", "mmps"}`` (Python floats) and ``"num_examples"`` (int).

    Raises:
      ValueError: if ``logits`` or ``labels`` is invalid or ``num_bins < 1``.

    Example:
      >>> out = calibration_summary([[3.0, 0.0], [0.0, 3.0]], [0, 0])
      >>> round(out["accuracy"], 2), round(out["mmps"], 4)
      (0.5, 0.9526)
    """
    num_bins = validation.check_positive_int("num_bins", num_bins)
    _check_labeled_set("logits", "labels", logits, labels, None)
    if labels is None:
        raise ValueError("labels must be given ([N] integer class labels)")
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)
    y = np.asarray(labels)
    return {
        "ece": expected_calibration_error(probs, y, num_bins=num_bins),
        "oe": overconfidence_error(probs, y, num_bins=num_bins),
        "accuracy": float(np.mean(np.argmax(probs, axis=1) == y)),
        "mmps": mean_max_prediction_score(probs),
        "num_examples": int(y.size),
    }
