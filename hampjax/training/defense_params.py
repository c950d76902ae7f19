"""Defense parameters: one frozen class per kind, registered in :data:`DEFENSES` with the
builder of its loss (the one registry of the training objectives).
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from hampjax import validation
from hampjax.defenses.baselines import (
    LS_STYLES,
    confidence_penalty_loss,
    cross_entropy_loss,
    label_smoothing_loss,
)
from hampjax.defenses.distillation import distillation_loss
from hampjax.defenses.hamp import KL_REDUCTIONS, SOFT_LABEL_METHODS, hamp_loss, hamp_soft_labels
from hampjax.defenses.relaxloss import RELAXLOSS_SCHEDULES, RELAXLOSS_VARIANTS, relaxloss_loss
from hampjax.defenses.weighted_smoothing import (
    WS_DEFAULT_FLOOR,
    WS_NOISE_TARGETS,
    weighted_smoothing_loss,
)
from hampjax.training.spec_base import TARGETS, _Spec, _bool, _choice, _float


# ----------------------------------------------------------------------------------------------
# Defense parameters: one frozen class per kind, registered in DEFENSES with its loss.


class DefenseParams(_Spec):
    """Base of the defense parameter classes; ``kind`` says which one (see :data:`DEFENSES`)."""

    _prefix: ClassVar[str] = "defense."
    kind: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DefenseParams":
        """The parameters of ``data["kind"]`` (any registered kind when called on the base)."""
        if cls is not DefenseParams:
            kind = data.get("kind") if isinstance(data, Mapping) else None
            if kind is not None and kind != cls.kind:
                raise ValueError(
                    f"defense.kind must be {cls.kind!r} for {cls.__name__}, got {kind!r}")
            return super().from_dict(data)
        if not isinstance(data, Mapping):
            raise ValueError(f"defense must be a dict, got {type(data).__name__}")
        if "kind" not in data:
            raise ValueError(f"missing field 'defense.kind' (one of {', '.join(DEFENSES)})")
        validation.check_choice("defense.kind", data["kind"], tuple(DEFENSES))
        return DEFENSES[data["kind"]].params.from_dict(data)


def _kind(name: str):
    return dataclasses.field(default=name, init=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CrossEntropyParams(DefenseParams):
    """Plain cross-entropy (undefended training)."""

    kind: str = _kind("cross_entropy")


@dataclasses.dataclass(frozen=True, kw_only=True)
class HampParams(DefenseParams):
    """HAMP's training objective (:func:`hampjax.defenses.hamp_loss` on
    :func:`hampjax.defenses.hamp_soft_labels`).

    Attributes:
      entropy_threshold: gamma in [0, 1).
      alpha: entropy-regularizer weight >= 0.
      method: soft-label search, ``"grid"`` (authors) or ``"exact"``.
      kl_reduction: ``"mean_over_classes"`` (the authors' PyTorch mean; the paper's alpha
        values assume it) or ``"sum"``.
    """

    kind: str = _kind("hamp")
    entropy_threshold: float
    alpha: float
    method: str = "grid"
    kl_reduction: str = "mean_over_classes"

    def __post_init__(self):
        _float(self, "entropy_threshold", 0.0, 1.0)
        _float(self, "alpha", 0.0)
        _choice(self, "method", SOFT_LABEL_METHODS)
        _choice(self, "kl_reduction", KL_REDUCTIONS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelSmoothingParams(DefenseParams):
    """The HAMP authors' label-smoothing baseline: HAMP's soft labels with a small
    ``entropy_threshold`` (0.05 -> p = 0.97 for 100 classes), no entropy regularizer.

    Attributes:
      entropy_threshold: gamma in [0, 1).
      method: soft-label search, ``"grid"`` or ``"exact"``.
    """

    kind: str = _kind("label_smoothing")
    entropy_threshold: float = 0.05
    method: str = "grid"

    def __post_init__(self):
        _float(self, "entropy_threshold", 0.0, 1.0)
        _choice(self, "method", SOFT_LABEL_METHODS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmoothLabelsParams(DefenseParams):
    """Cross-entropy on label-smoothed targets (:func:`hampjax.defenses.label_smoothing_loss`).

    Attributes:
      smoothing: eps in [0, 1).
      style: ``"standard"`` (``optax.smooth_labels``: the true class gets ``1 - eps + eps / C``,
        the others ``eps / C``; RelaxLoss, Trust) or ``"hamp"`` (the HAMP authors' LS baseline:
        the true class gets ``1 - eps``, the others ``eps / (C - 1)``).
    """

    kind: str = _kind("smooth_labels")
    smoothing: float
    style: str = "standard"

    def __post_init__(self):
        _float(self, "smoothing", 0.0, 1.0)
        _choice(self, "style", LS_STYLES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConfidencePenaltyParams(DefenseParams):
    """Cross-entropy minus ``beta`` times the prediction entropy
    (:func:`hampjax.defenses.confidence_penalty_loss`).

    Attributes:
      beta: penalty weight >= 0.
    """

    kind: str = _kind("confidence_penalty")
    beta: float

    def __post_init__(self):
        _float(self, "beta", 0.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RelaxLossParams(DefenseParams):
    """RelaxLoss (:func:`hampjax.defenses.relaxloss_loss`).

    Attributes:
      alpha: target loss level >= 0.
      upper: cap on the soft label's true-class probability, in (0, 1].
      variant: flattening, ``"tabular"`` or ``"cifar"``.
      schedule: branch schedule, ``"code"`` (authors' code) or ``"paper"``.
      stop_gradient: treat the flattening target as a constant (poster) or not (code).
    """

    kind: str = _kind("relaxloss")
    alpha: float
    upper: float = 1.0
    variant: str = "tabular"
    schedule: str = "code"
    stop_gradient: bool = False

    def __post_init__(self):
        _float(self, "alpha", 0.0)
        _float(self, "upper", 0.0, 1.0, low_inclusive=False, high_inclusive=True)
        _choice(self, "variant", RELAXLOSS_VARIANTS)
        _choice(self, "schedule", RELAXLOSS_SCHEDULES)
        _bool(self, "stop_gradient")


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeightedSmoothingParams(DefenseParams):
    """Weighted Smoothing's noisy loss (:func:`hampjax.defenses.weighted_smoothing_loss`); the
    per-example noise scales come from ``example_state`` (kind ``"ws_noise_scale"``).

    Attributes:
      sigma: noise standard deviation >= 0.
      noise_on: ``"probs"`` (authors) or ``"logits"`` (ablation).
      use_margin: scale the noise by the top-1/top-2 margin.
      floor: lower clip of the renormalized probabilities, in (0, 1).
    """

    kind: str = _kind("weighted_smoothing")
    sigma: float
    noise_on: str = "probs"
    use_margin: bool = True
    floor: float = WS_DEFAULT_FLOOR

    def __post_init__(self):
        _float(self, "sigma", 0.0)
        _choice(self, "noise_on", WS_NOISE_TARGETS)
        _bool(self, "use_margin")
        _float(self, "floor", 0.0, 1.0, low_inclusive=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillationParams(DefenseParams):
    """Distillation from a teacher's logits (:func:`hampjax.defenses.distillation_loss`):
    ``kl_weight * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - kl_weight) * CE``.

    The teacher is :func:`teacher_spec` of the recipe (the same recipe with plain
    cross-entropy), trained by the evaluation on the same keep matrix and seed; its eval-mode
    logits on the candidates reach the loss as ``LossContext.targets``
    (``train_many(..., targets=...)``). Defaults: RelaxLoss's distillation baseline.

    Attributes:
      temperature: T > 0 (RelaxLoss 10; SELENA / DMP in the HAMP code 1).
      kl_weight: weight of the KL term in [0, 1]; the cross-entropy gets ``1 - kl_weight``.
      kl_reduction: ``"mean_over_classes"`` (the authors' PyTorch ``'mean'``, an extra 1/C) or
        ``"sum"``.
    """

    kind: str = _kind("distillation")
    temperature: float = 10.0
    kl_weight: float = 0.5
    kl_reduction: str = "mean_over_classes"

    def __post_init__(self):
        _float(self, "temperature", 0.0, low_inclusive=False)
        _float(self, "kl_weight", 0.0, 1.0, high_inclusive=True)
        _choice(self, "kl_reduction", KL_REDUCTIONS)


# Loss builders: params -> loss(logits [B, C], labels [B], ctx: LossContext) -> [B]. Called only
# by build_recipe (which caches them, so equal params give the identical function).


def _cross_entropy(p: CrossEntropyParams):
    del p

    def loss(logits, labels, ctx):
        del ctx
        return cross_entropy_loss(logits, labels)

    return loss


def _hamp(p: HampParams):
    def loss(logits, labels, ctx):
        del ctx
        soft = hamp_soft_labels(labels, logits.shape[-1], p.entropy_threshold, method=p.method)
        return hamp_loss(logits, soft, p.alpha, kl_reduction=p.kl_reduction)

    return loss


def _label_smoothing(p: LabelSmoothingParams):
    def loss(logits, labels, ctx):
        del ctx
        soft = hamp_soft_labels(labels, logits.shape[-1], p.entropy_threshold, method=p.method)
        return hamp_loss(logits, soft, 0.0, kl_reduction="sum")

    return loss


def _smooth_labels(p: SmoothLabelsParams):
    def loss(logits, labels, ctx):
        del ctx
        return label_smoothing_loss(logits, labels, p.smoothing, style=p.style)

    return loss


def _confidence_penalty(p: ConfidencePenaltyParams):
    def loss(logits, labels, ctx):
        del ctx
        return confidence_penalty_loss(logits, labels, p.beta)

    return loss


def _relaxloss(p: RelaxLossParams):
    def loss(logits, labels, ctx):
        return relaxloss_loss(logits, labels, alpha=p.alpha, epoch=ctx.epoch, upper=p.upper,
                              variant=p.variant, schedule=p.schedule,
                              stop_gradient=p.stop_gradient, where=ctx.where)

    return loss


def _weighted_smoothing(p: WeightedSmoothingParams):
    def loss(logits, labels, ctx):
        return weighted_smoothing_loss(logits, labels, ctx.example_state, ctx.key, sigma=p.sigma,
                                       use_margin=p.use_margin, noise_on=p.noise_on,
                                       floor=p.floor)

    return loss


def _distillation(p: DistillationParams):
    def loss(logits, labels, ctx):
        return distillation_loss(logits, labels, ctx.targets, temperature=p.temperature,
                                 kl_weight=p.kl_weight, kl_reduction=p.kl_reduction)

    return loss


@dataclasses.dataclass(frozen=True)
class DefenseKind:
    """One registered defense kind.

    Attributes:
      params: its frozen parameter class.
      loss: ``params -> loss(logits, labels, ctx) -> per-example loss``.
      example_state: the ``example_state`` kind its loss reads (``"none"``: it reads none).
      targets: the per-example targets its loss reads from ``LossContext.targets``
        (:data:`TARGETS`): ``"none"``, or ``"teacher_logits"`` (the eval-mode logits of the
        :func:`teacher_spec` models on the candidates, ``train_many(..., targets=...)``).
    """

    params: type
    loss: Callable[[Any], Callable]
    example_state: str = "none"
    targets: str = "none"

    def __post_init__(self):
        validation.check_choice("targets", self.targets, TARGETS)


DEFENSES: Mapping[str, DefenseKind] = types.MappingProxyType({
    "cross_entropy": DefenseKind(CrossEntropyParams, _cross_entropy),
    "hamp": DefenseKind(HampParams, _hamp),
    "label_smoothing": DefenseKind(LabelSmoothingParams, _label_smoothing),
    "smooth_labels": DefenseKind(SmoothLabelsParams, _smooth_labels),
    "confidence_penalty": DefenseKind(ConfidencePenaltyParams, _confidence_penalty),
    "relaxloss": DefenseKind(RelaxLossParams, _relaxloss),
    "weighted_smoothing": DefenseKind(WeightedSmoothingParams, _weighted_smoothing,
                                      example_state="ws_noise_scale"),
    "distillation": DefenseKind(DistillationParams, _distillation, targets="teacher_logits"),
})
"""Every defense kind: its parameter class, how its loss is built, the state it needs."""
