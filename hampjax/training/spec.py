"""Recipe specs: every setting that changes what a model learns, as frozen plain data.

A :class:`RecipeSpec` names the defense and its parameters, the optimizer, the learning-rate
schedule, epochs, batch size, model selection, batch order, optimizer resets, per-example state
and the test-time output transform. It holds only plain values (str / int / float / bool /
None / tuples), round-trips through JSON (:meth:`RecipeSpec.to_dict`,
:meth:`RecipeSpec.from_dict`) and is hashable. :func:`hampjax.training.build_recipe` derives
the callables the engine runs from it, so what a run records is what it trained::

    spec -> build_recipe(spec) -> Recipe(loss, optimizer, learning_rate, example_state, ...)

Change settings with :meth:`RecipeSpec.replace`, dotted keys reaching into the parts:

>>> from hampjax.training import preset_spec
>>> spec = preset_spec("hamp", "purchase100")
>>> fast = spec.replace(epochs=3, **{"optimizer.learning_rate": 0.1})
>>> fast.optimizer.learning_rate, fast.schedule.milestones
(0.1, (60, 90, 150))
>>> diff_paths(spec.to_dict(), fast.to_dict())
['epochs', 'optimizer.learning_rate']

Defenses are registered once, in :data:`DEFENSES`: kind -> (parameter class, loss builder).
Every value is checked when a spec is made; errors name the dotted field and the allowed range
(``ValueError: optimizer.learning_rate must be in (0, inf), got 0.0``). Settings a kind does
not use must keep their defaults (an SGD spec cannot carry a changed Adam ``b2``), so a recorded
spec never holds a value that did not act.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from hampjax import validation
from hampjax.defenses.advreg import ATTACK_ARCHS, ATTACK_HIDDEN, ATTACK_INPUTS
from hampjax.defenses.baselines import (
    LS_STYLES,
    confidence_penalty_loss,
    cross_entropy_loss,
    label_smoothing_loss,
)
from hampjax.defenses.distillation import distillation_loss
from hampjax.defenses.hamp import KL_REDUCTIONS, SOFT_LABEL_METHODS, hamp_loss, hamp_soft_labels
from hampjax.defenses.memguard import MEMGUARD_CLASSIFIERS, MEMGUARD_HIDDEN, MEMGUARD_RELEASES
from hampjax.defenses.relaxloss import RELAXLOSS_SCHEDULES, RELAXLOSS_VARIANTS, relaxloss_loss
from hampjax.defenses.selena import SPLIT_AI_AVERAGES
from hampjax.defenses.weighted_smoothing import (
    WS_DEFAULT_FLOOR,
    WS_NOISE_START_EPOCH,
    WS_NOISE_TARGETS,
    WS_NORMALIZATIONS,
    WS_SCORES,
    WS_WEIGHTS,
    weighted_smoothing_loss,
)

__all__ = [
    "RecipeSpec",
    "OptimizerSpec",
    "ScheduleSpec",
    "ExampleStateSpec",
    "OutputSpec",
    "MemGuardSpec",
    "AdversarySpec",
    "PrivacySpec",
    "SplitAISpec",
    "DefenseParams",
    "CrossEntropyParams",
    "HampParams",
    "LabelSmoothingParams",
    "SmoothLabelsParams",
    "ConfidencePenaltyParams",
    "RelaxLossParams",
    "WeightedSmoothingParams",
    "DistillationParams",
    "ReferenceSpec",
    "DefenseKind",
    "DEFENSES",
    "TARGETS",
    "teacher_spec",
    "diff_paths",
]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "exponential", "cosine")
EXAMPLE_STATES = ("none", "ws_noise_scale")
OUTPUTS = ("none", "hamp", "memguard")
RANDOM_INPUTS = ("dataset",)
SELECTIONS = ("last", "best_val")
SHUFFLES = ("every_epoch", "once")
TARGETS = ("none", "teacher_logits")
"""Values of :attr:`DefenseKind.targets`: the per-example targets a defense's loss reads."""
ADVERSARIES = ("none", "advreg")
ADVREG_GAMES = ("rounds", "epochs")
ADVREG_REFERENCES = ("authors", "disjoint")
PRIVACY_KINDS = ("none", "dp_sgd")
DP_SAMPLINGS = ("poisson", "shuffle")
DP_CONVERSIONS = ("classic", "opacus_improved")
DP_ACCOUNTANTS = ("rdp", "pld")
DP_PER_EXAMPLE = ("auto", "dense", "generic")
SPLIT_AI_KINDS = ("none", "selena")


# ----------------------------------------------------------------------------------------------
# Checks that also normalize (ints given for floats become floats, lists become tuples), so
# equal settings give equal, equally-hashing specs and the same JSON.


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


def _float(obj: Any, field: str, low: float = -math.inf, high: float = math.inf, *,
           low_inclusive: bool = True, high_inclusive: bool = False) -> None:
    name, value = obj._prefix + field, getattr(obj, field)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    validation.check_in_range(name, value, low, high, low_inclusive=low_inclusive,
                              high_inclusive=high_inclusive)
    _set(obj, field, float(value))


def _int(obj: Any, field: str, minimum: int) -> None:
    _set(obj, field, validation.check_positive_int(obj._prefix + field, getattr(obj, field),
                                                   minimum=minimum))


def _bool(obj: Any, field: str) -> None:
    _set(obj, field, validation.check_bool(obj._prefix + field, getattr(obj, field)))


def _choice(obj: Any, field: str, allowed: Sequence[str]) -> None:
    validation.check_choice(obj._prefix + field, getattr(obj, field), allowed)


def _unused(obj: Any, fields: Sequence[str]) -> None:
    """Settings the chosen kind ignores must keep their defaults (no silent no-ops)."""
    defaults = {f.name: f.default for f in dataclasses.fields(obj)}
    for field in fields:
        if getattr(obj, field) != defaults[field]:
            raise ValueError(
                f"{obj._prefix}{field} is not used with {obj._prefix}kind={obj.kind!r}; leave it "
                f"at its default {defaults[field]!r}, got {getattr(obj, field)!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, _Spec):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _unknown_field(name: str, valid: Sequence[str]) -> ValueError:
    return ValueError(f"unknown field {name!r}; valid fields: {', '.join(valid)}")


class _Spec:
    """Shared behaviour of the frozen spec dataclasses (to_dict / from_dict / replace)."""

    _prefix: ClassVar[str] = ""  # Where this part sits in a RecipeSpec ("optimizer.").
    _nested: ClassVar[Mapping[str, type]] = types.MappingProxyType({})  # Field -> part class.

    def to_dict(self) -> dict[str, Any]:
        """Nested plain JSON data (tuples become lists); :meth:`from_dict` inverts it."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def _init_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def _coerce(cls, field: str, value: Any) -> Any:
        nested = cls._nested.get(field)
        if nested is not None and isinstance(value, Mapping):
            return nested.from_dict(value)
        if nested is not None and not isinstance(value, nested):
            raise ValueError(f"{cls._prefix + field} must be a dict or a {nested.__name__}, "
                             f"got {value!r}")
        if isinstance(value, list):
            return tuple(value)
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        """The spec that :meth:`to_dict` wrote (every field present, no others).

        Raises:
          ValueError: naming the dotted field when one is unknown, missing or invalid.
        """
        where = cls._prefix[:-1] or "recipe spec"
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a dict, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise _unknown_field(cls._prefix + str(key), names)
        for name in names:
            if name not in data:
                raise ValueError(f"missing field {cls._prefix + name!r} ({where} needs: "
                                 f"{', '.join(names)})")
        init = cls._init_names()
        return cls(**{k: cls._coerce(k, data[k]) for k in init})

    def replace(self, **changes: Any):
        """A copy with some fields changed; dotted keys reach into nested parts.

        ``spec.replace(epochs=3, **{"optimizer.learning_rate": 0.1})``. A nested part may also
        be given whole, as a spec or as its :meth:`to_dict` form.

        Raises:
          ValueError: naming the dotted field when one is unknown or its new value is invalid.
        """
        names = self._init_names()
        whole: dict[str, Any] = {}
        dotted: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            head, dot, rest = key.partition(".")
            if head not in names:
                if head in {f.name for f in dataclasses.fields(self)}:  # a params class's kind
                    raise ValueError(
                        f"{self._prefix + head} cannot be changed by itself; pass "
                        f"{self._prefix[:-1]}= the parameters of the new kind, e.g. "
                        f"defense=CrossEntropyParams()")
                raise _unknown_field(self._prefix + key, names)
            if dot:
                dotted.setdefault(head, {})[rest] = value
            else:
                whole[head] = self._coerce(head, value)
        values = dict(whole)
        for head, sub in dotted.items():
            part = values.get(head, getattr(self, head))
            if not isinstance(part, _Spec):
                raise ValueError(f"{self._prefix + head} has no fields; cannot set "
                                 f"{self._prefix + head}.{next(iter(sub))}")
            values[head] = part.replace(**sub)
        return dataclasses.replace(self, **values)


# ----------------------------------------------------------------------------------------------
# Optimizer, schedule, per-example state, output transform.


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerSpec(_Spec):
    """The optax optimizer (built by :func:`hampjax.training.build_recipe`).

    The chain is ``[clip_by_global_norm(clip_norm)] + [add_decayed_weights(weight_decay)] +
    [sgd | adam]`` with coupled (PyTorch L2-style) decay, parts left out when unset; Adam with
    ``coupled_weight_decay=False`` is AdamW (decay applied by optax.adamw, after the moments).

    Attributes:
      kind: ``"sgd"`` or ``"adam"``.
      learning_rate: base learning rate > 0 (the schedule scales it per epoch).
      momentum: SGD momentum in [0, 1) (0: plain SGD). SGD only.
      nesterov: Nesterov momentum (needs ``momentum > 0``). SGD only.
      b1, b2: Adam's moment decay rates in [0, 1). Adam only.
      eps: Adam's denominator epsilon >= 0. Adam only.
      weight_decay: >= 0.
      coupled_weight_decay: True: decay added to the gradient before the optimizer (PyTorch's
        ``weight_decay=``); False: decoupled (AdamW; Adam only).
      clip_norm: global gradient-norm clip > 0, or None for none.
    """

    _prefix: ClassVar[str] = "optimizer."

    kind: str
    learning_rate: float
    momentum: float = 0.0
    nesterov: bool = False
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    coupled_weight_decay: bool = True
    clip_norm: float | None = None

    def __post_init__(self):
        _choice(self, "kind", OPTIMIZERS)
        _float(self, "learning_rate", 0.0, low_inclusive=False)
        _float(self, "momentum", 0.0, 1.0)
        _bool(self, "nesterov")
        _float(self, "b1", 0.0, 1.0)
        _float(self, "b2", 0.0, 1.0)
        _float(self, "eps", 0.0)
        _float(self, "weight_decay", 0.0)
        _bool(self, "coupled_weight_decay")
        if self.clip_norm is not None:
            _float(self, "clip_norm", 0.0, low_inclusive=False)
        if self.kind == "sgd":
            _unused(self, ("b1", "b2", "eps"))
            if self.nesterov and self.momentum == 0.0:
                raise ValueError("optimizer.nesterov needs optimizer.momentum > 0")
            if not self.coupled_weight_decay:
                raise ValueError("optimizer.coupled_weight_decay=False (decoupled decay) is only "
                                 "available with optimizer.kind='adam' (AdamW)")
        else:
            _unused(self, ("momentum", "nesterov"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScheduleSpec(_Spec):
    """Learning rate per epoch, as a multiple of ``optimizer.learning_rate``.

    Attributes:
      kind: ``"constant"``; ``"step"``: times ``factor`` at the start of each milestone epoch
        (PyTorch MultiStepLR); ``"exponential"``: times ``decay ** epoch``; ``"cosine"``:
        times ``0.5 * (1 + cos(pi * epoch / (epochs + 1)))`` with ``epochs`` the recipe's
        (the HAMP authors' DP-SGD schedule; no parameters).
      milestones: strictly increasing 0-based epochs (``"step"`` only).
      factor: step factor > 0 (``"step"`` only).
      decay: per-epoch factor > 0 (``"exponential"`` only).
    """

    _prefix: ClassVar[str] = "schedule."

    kind: str = "constant"
    milestones: tuple[int, ...] = ()
    factor: float = 0.1
    decay: float = 1.0

    def __post_init__(self):
        _choice(self, "kind", SCHEDULES)
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, Sequence):
            raise ValueError(f"schedule.milestones must be a sequence of epochs, got "
                             f"{self.milestones!r}")
        milestones = tuple(validation.check_positive_int(f"schedule.milestones[{i}]", m, minimum=0)
                           for i, m in enumerate(self.milestones))
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"schedule.milestones must be strictly increasing, got {milestones}")
        _set(self, "milestones", milestones)
        _float(self, "factor", 0.0, low_inclusive=False)
        _float(self, "decay", 0.0, low_inclusive=False)
        _unused(self, {"constant": ("milestones", "factor", "decay"),
                       "step": ("decay",), "exponential": ("milestones", "factor"),
                       "cosine": ("milestones", "factor", "decay")}[self.kind])


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExampleStateSpec(_Spec):
    """Per-example state computed from an eval-mode pass at the start of each epoch.

    Attributes:
      kind: ``"none"`` or ``"ws_noise_scale"`` (Weighted Smoothing's noise factors,
        :func:`hampjax.defenses.ws_noise_scale` of :func:`hampjax.defenses.ws_sample_scores`).
      score: ``"mentr"`` or ``"cross_entropy"``.
      normalization: ``"zscore"`` or ``"minmax"``.
      weight: ``"one_minus_z"`` or ``"relu_one_minus_z"``.
      start_epoch: first 0-based epoch with nonzero state (zeros before it).
    """

    _prefix: ClassVar[str] = "example_state."

    kind: str = "none"
    score: str = "mentr"
    normalization: str = "zscore"
    weight: str = "one_minus_z"
    start_epoch: int = WS_NOISE_START_EPOCH

    def __post_init__(self):
        _choice(self, "kind", EXAMPLE_STATES)
        _choice(self, "score", WS_SCORES)
        _choice(self, "normalization", WS_NORMALIZATIONS)
        _choice(self, "weight", WS_WEIGHTS)
        _int(self, "start_epoch", 0)
        if self.kind == "none":
            _unused(self, ("score", "normalization", "weight", "start_epoch"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class MemGuardSpec(_Spec):
    """MemGuard's settings (Jia et al. 2019; :mod:`hampjax.defenses.memguard`), used with
    ``output.kind="memguard"``. Defaults: the HAMP authors' code.

    Attributes:
      classifier: the defender's classifier ``g`` that post-processes a shadow's outputs:
        ``"target"`` (the target's ``g`` on every model, HAMP code) or ``"per_shadow"``
        (each model its own ``g``, trained on its own members vs non-members).
      hidden_sizes: ``g``'s hidden layers (256, 128, 64; ReLU, Glorot uniform, sigmoid out).
      epochs, learning_rate, batch_size: ``g``'s training, BCE with plain SGD (400, 0.001,
        256; the last partial batch kept).
      c1, c2: weights >= 0 of ``|g_logit|`` and of the label-margin hinge (1, 10).
      c3_initial, c3_factor, c3_rounds: the distortion weights ``c3_initial * c3_factor**r``,
        ``r < c3_rounds`` (0.1, 10, 7: 0.1 .. 1e5).
      step_size: the normalized gradient step (0.1).
      max_steps: gradient steps per round at most (299).
      tolerance: a query with ``|g(z0) - 0.5| <= tolerance`` is released unchanged (1e-5).
      phase2: the paper's Phase II, each query's noise applied with probability
        ``min(1, distortion_budget / L1 distortion)`` (default False, as the HAMP code).
      distortion_budget: Phase II's expected L1 distortion budget in ``[0, 2]`` (phase2 only).
      release: the released logits, ``"log_softmax"`` (default: those of the defended
        confidence vector, what MemGuard releases) or ``"logits"`` (the searched logits, whose
        mean is the undefended logits' mean; :data:`hampjax.defenses.MEMGUARD_RELEASES`).

    With several targets (``evaluate_defense(targets=T > 1)``), ``classifier="target"``
    post-processes every model with model ``target``'s classifier; ``"per_shadow"`` makes each
    model a MemGuard deployment of its own.
    """

    _prefix: ClassVar[str] = "output.memguard."

    classifier: str = "target"
    hidden_sizes: tuple[int, ...] = MEMGUARD_HIDDEN
    epochs: int = 400
    learning_rate: float = 1e-3
    batch_size: int = 256
    c1: float = 1.0
    c2: float = 10.0
    c3_initial: float = 0.1
    c3_factor: float = 10.0
    c3_rounds: int = 7
    step_size: float = 0.1
    max_steps: int = 299
    tolerance: float = 1e-5
    phase2: bool = False
    distortion_budget: float = 1.0
    release: str = "log_softmax"

    def __post_init__(self):
        _choice(self, "classifier", MEMGUARD_CLASSIFIERS)
        _choice(self, "release", MEMGUARD_RELEASES)
        sizes = self.hidden_sizes
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
            raise ValueError(f"output.memguard.hidden_sizes must be a non-empty sequence of "
                             f"widths, got {sizes!r}")
        _set(self, "hidden_sizes", tuple(validation.check_positive_int(
            f"output.memguard.hidden_sizes[{i}]", h) for i, h in enumerate(sizes)))
        _int(self, "epochs", 1)
        _float(self, "learning_rate", 0.0, low_inclusive=False)
        _int(self, "batch_size", 1)
        _float(self, "c1", 0.0)
        _float(self, "c2", 0.0)
        _float(self, "c3_initial", 0.0, low_inclusive=False)
        _float(self, "c3_factor", 0.0, low_inclusive=False)
        _int(self, "c3_rounds", 1)
        _float(self, "step_size", 0.0, low_inclusive=False)
        _int(self, "max_steps", 1)
        _float(self, "tolerance", 0.0, 0.5)
        _bool(self, "phase2")
        _float(self, "distortion_budget", 0.0, 2.0, high_inclusive=True)
        default = MemGuardSpec.__dataclass_fields__["distortion_budget"].default
        if not self.phase2 and self.distortion_budget != default:
            raise ValueError(f"output.memguard.distortion_budget is not used with "
                             f"output.memguard.phase2=False; leave it at its default "
                             f"{default!r}, got {self.distortion_budget!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OutputSpec(_Spec):
    """The test-time output transform, applied by the evaluation to every model's outputs.

    Attributes:
      kind: ``"none"``, ``"hamp"`` (HAMP's output modification,
        :func:`hampjax.defenses.modify_output`) or ``"memguard"`` (MemGuard's adversarial
        noise on the logits, :mod:`hampjax.defenses.memguard`; settings in ``memguard``).
      pool_size: random outputs precomputed per model (``"hamp"``).
      random_inputs: where random inputs come from; ``"dataset"``: the evaluation data's own
        generator (uniform pixels for images, random bits for binary features) (``"hamp"``).
      break_ties: separate tied random values (see :func:`hampjax.defenses.modify_output`)
        (``"hamp"``).
      memguard: :class:`MemGuardSpec` (``"memguard"``; defaults otherwise).
    """

    _prefix: ClassVar[str] = "output."
    _nested: ClassVar[Mapping[str, type]] = types.MappingProxyType({"memguard": MemGuardSpec})

    kind: str = "none"
    pool_size: int = 1000
    random_inputs: str = "dataset"
    break_ties: bool = True
    memguard: MemGuardSpec = MemGuardSpec()

    def __post_init__(self):
        _choice(self, "kind", OUTPUTS)
        _int(self, "pool_size", 1)
        _choice(self, "random_inputs", RANDOM_INPUTS)
        _bool(self, "break_ties")
        if not isinstance(self.memguard, MemGuardSpec):
            raise ValueError(f"output.memguard must be a dict or a MemGuardSpec, got "
                             f"{self.memguard!r}")
        if self.kind != "hamp":
            _unused(self, ("pool_size", "random_inputs", "break_ties"))
        if self.kind != "memguard" and self.memguard != MemGuardSpec():
            changed = diff_paths(self.memguard.to_dict(), MemGuardSpec().to_dict())
            raise ValueError(
                f"output.memguard is not used with output.kind={self.kind!r}; leave it at its "
                f"defaults, got changed: "
                + ", ".join(f"output.memguard.{p}" for p in changed))


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdversarySpec(_Spec):
    """An adversary trained against the classifier during training (AdvReg, Nasr et al. 2018).

    ``kind="advreg"``: the min-max game of :mod:`hampjax.training.advreg` with the inference
    model of :mod:`hampjax.defenses.advreg`. Defaults are the HAMP authors' code; the RelaxLoss
    code's settings are presets (:data:`hampjax.training.presets.ADVREG`).

    Attributes:
      kind: ``"none"`` or ``"advreg"``.
      weight: lambda >= 0, the weight of the classifier's privacy term
        ``lambda * (mean h - 0.5)`` (default 1.0; HAMP's table: 3 / 10 / 10 / 6).
      attack_input: what the inference model sees, ``"logits"`` (HAMP code, default),
        ``"softmax"`` (Nasr et al.) or ``"sorted_logits"`` (RelaxLoss code).
      attack_arch: ``"hamp"`` (default), ``"relaxloss_tabular"`` or ``"relaxloss_cifar"``
        (:class:`hampjax.defenses.advreg.InferenceModel`).
      attack_hidden: ``"trainable"`` (default) or ``"frozen"``: the RelaxLoss CIFAR model's
        hidden layer, which the authors' code never trains (``attack_arch="relaxloss_cifar"``
        only).
      attack_learning_rate: the inference model's Adam learning rate (constant; default 1e-4,
        HAMP code; RelaxLoss 1e-3).
      game: the alternation after the warm-up. ``"rounds"`` (default; HAMP and RelaxLoss
        tabular code): ``floor(n / batch_size) // 2`` rounds per epoch, each
        ``attack_steps`` inference-model steps then ``classifier_steps`` classifier steps;
        ``"epochs"`` (RelaxLoss CIFAR code): one inference-model epoch, then one classifier
        epoch.
      attack_steps: inference-model steps per round (default 52; RelaxLoss 50); ``"rounds"``
        only.
      classifier_steps: classifier steps per round (default 2); ``"rounds"`` only.
      attack_batch_size: members per inference-model step of the game, with as many
        reference examples (default 32: half of HAMP's batch of 64).
      warmup_epochs: leading epochs of plain training, each followed by
        ``warmup_attack_epochs`` inference-model epochs, never selected (default 1; RelaxLoss
        CIFAR 3). Must be < ``epochs``.
      warmup_attack_epochs: inference-model epochs after each warm-up epoch (default 5).
      warmup_batch_size: batch size of the warm-up epochs; None (default) for ``batch_size``
        (HAMP code: 32).
      warmup_attack_batch_size: members (and as many reference examples) per warm-up
        inference-model step (default 8; HAMP CIFAR 128).
      reference: the reference set of model m. ``"authors"`` (default): all its non-members
        ``pool[~keep[m]]`` (HAMP's LiRA shadows; as the authors' Location and CIFAR
        targets, whose reference overlaps the evaluation's non-members);
        ``"disjoint"``: only its non-members in a fixed half of the pool
        (:func:`hampjax.training.advreg.reference_mask`), so the other half's non-members
        stay unseen by the defense.
      double_decay: the HAMP code steps its classifier learning-rate scheduler twice per
        milestone (x0.01 instead of ``schedule.factor`` 0.1): True (default) reproduces it,
        False is the paper's intent. Acts only with ``schedule.kind="step"``.
    """

    _prefix: ClassVar[str] = "adversary."

    kind: str = "none"
    weight: float = 1.0
    attack_input: str = "logits"
    attack_arch: str = "hamp"
    attack_hidden: str = "trainable"
    attack_learning_rate: float = 1e-4
    game: str = "rounds"
    attack_steps: int = 52
    classifier_steps: int = 2
    attack_batch_size: int = 32
    warmup_epochs: int = 1
    warmup_attack_epochs: int = 5
    warmup_batch_size: int | None = None
    warmup_attack_batch_size: int = 8
    reference: str = "authors"
    double_decay: bool = True

    def __post_init__(self):
        _choice(self, "kind", ADVERSARIES)
        _float(self, "weight", 0.0)
        _choice(self, "attack_input", ATTACK_INPUTS)
        _choice(self, "attack_arch", ATTACK_ARCHS)
        _choice(self, "attack_hidden", ATTACK_HIDDEN)
        _float(self, "attack_learning_rate", 0.0, low_inclusive=False)
        _choice(self, "game", ADVREG_GAMES)
        _int(self, "attack_steps", 1)
        _int(self, "classifier_steps", 1)
        _int(self, "attack_batch_size", 1)
        _int(self, "warmup_epochs", 0)
        _int(self, "warmup_attack_epochs", 0)
        if self.warmup_batch_size is not None:
            _int(self, "warmup_batch_size", 1)
        _int(self, "warmup_attack_batch_size", 1)
        _choice(self, "reference", ADVREG_REFERENCES)
        _bool(self, "double_decay")
        if self.kind == "none":
            _unused(self, [f.name for f in dataclasses.fields(self) if f.name != "kind"])
            return
        if self.attack_hidden != "trainable" and self.attack_arch != "relaxloss_cifar":
            raise ValueError(f"adversary.attack_hidden={self.attack_hidden!r} is only available "
                             f"with adversary.attack_arch='relaxloss_cifar', got "
                             f"{self.attack_arch!r}")
        if self.game == "epochs":
            _unused(self, ("attack_steps", "classifier_steps"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrivacySpec(_Spec):
    """Differentially private training (DP-SGD): how per-example gradients are aggregated.

    Any defense's loss composes with it: DP-SGD only changes how the step turns per-example
    losses into an update (clip every example's gradient to ``clip_norm``, sum, add Gaussian
    noise of std ``noise_multiplier * clip_norm``, divide by the expected batch size), before
    the optimizer (so coupled weight decay is added after the noise). See
    :mod:`hampjax.defenses.dp_sgd` and :func:`hampjax.defenses.recipe_epsilon`.

    Attributes:
      kind: ``"none"`` (ordinary mean-of-batch gradients) or ``"dp_sgd"``.
      noise_multiplier: sigma >= 0 (noise std over the clip norm; 0: clipping only).
      clip_norm: per-example L2 clip norm C > 0 (flat, over all parameters); ``inf``: no
        clipping.
      sampling: ``"poisson"``: every member enters each step's batch with probability
        ``q = 1 / ceil(N / B)``, ``ceil(N / B)`` steps per epoch, sum divided by
        ``int(N q)`` (Opacus 1.1.2 ``make_private``, HAMP code); ``"shuffle"``: the ordinary
        shuffled batches of ``batch_size`` (last partial batch kept), sum divided by the
        batch's size (Opacus 0.14 on a DataLoader, RelaxLoss code; accounted as q = B / N).
      delta: target delta in (0, 1) of the reported epsilon.
      eps_conversion: the headline RDP-to-(eps, delta) conversion, ``"classic"`` (the HAMP
        paper's numbers) or ``"opacus_improved"``; both are always reported.
      accountant: ``"rdp"`` or ``"pld"`` (headline; all are reported).
      poisson_cap: ``"poisson"`` only: a step's batch is padded to the static size
        ``B + ceil(poisson_cap * sqrt(B))``; members sampled beyond it are dropped and
        counted (``TrainResult.dp_overflow``).
      per_example: how per-example gradient norms are computed: ``"dense"`` (from each dense
        layer's inputs and output gradients, no per-example gradients; every parameter must
        belong to a ``flax.linen.Dense`` layer), ``"generic"`` (``vmap`` of ``grad``, any
        model), ``"auto"`` (dense where it applies). Models with BatchNorm are refused.
    """

    _prefix: ClassVar[str] = "privacy."

    kind: str = "none"
    noise_multiplier: float = 1.0
    clip_norm: float = 1.0
    sampling: str = "poisson"
    delta: float = 1e-5
    eps_conversion: str = "classic"
    accountant: str = "rdp"
    poisson_cap: float = 6.0
    per_example: str = "auto"

    def __post_init__(self):
        _choice(self, "kind", PRIVACY_KINDS)
        _float(self, "noise_multiplier", 0.0)
        _float(self, "clip_norm", 0.0, math.inf, low_inclusive=False, high_inclusive=True)
        _choice(self, "sampling", DP_SAMPLINGS)
        _float(self, "delta", 0.0, 1.0, low_inclusive=False)
        _choice(self, "eps_conversion", DP_CONVERSIONS)
        _choice(self, "accountant", DP_ACCOUNTANTS)
        _float(self, "poisson_cap", 0.0, low_inclusive=False)
        _choice(self, "per_example", DP_PER_EXAMPLE)
        if self.kind == "none":
            _unused(self, ("noise_multiplier", "clip_norm", "sampling", "delta",
                           "eps_conversion", "accountant", "poisson_cap", "per_example"))
        elif self.sampling == "shuffle":
            _unused(self, ("poisson_cap",))
        if self.noise_multiplier > 0 and math.isinf(self.clip_norm) and self.kind != "none":
            raise ValueError("privacy.clip_norm must be finite when privacy.noise_multiplier > 0 "
                             "(the noise std is noise_multiplier * clip_norm)")
        if self.accountant == "pld" and self.eps_conversion != "classic":
            raise ValueError("privacy.eps_conversion applies to privacy.accountant='rdp' only; "
                             f"leave it at 'classic', got {self.eps_conversion!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SplitAISpec(_Spec):
    """SELENA's Split-AI (Tang et al. 2022): the distilled targets come from sub-models.

    ``kind="selena"``: the evaluation (:func:`hampjax.evaluation.train_recipe`) trains, for
    each model ``m`` of the keep matrix, ``num_submodels`` sub-models with
    :func:`teacher_spec` of the recipe, each member of ``m`` left out of ``num_excluded`` of
    them (:func:`hampjax.defenses.split_ai_keep`), and distills into ``m`` (the released
    model) each member's average over the sub-models that did not train on it
    (:func:`hampjax.defenses.split_ai_soft_labels`). Needs a defense whose loss reads
    ``"teacher_logits"`` (``defense.kind="distillation"``; SELENA: temperature 1, kl_weight 1).

    Attributes:
      kind: ``"none"`` (default) or ``"selena"``.
      num_submodels: K >= 2 (SELENA: 25).
      num_excluded: L in [1, K), the sub-models each member is left out of (SELENA: 10).
      average: ``"logits"`` (default; the HAMP code averages the logits) or ``"probs"`` (the
        SELENA paper: the log of the mean probabilities is distilled).
      assignment_seed: integer >= 0; model ``m``'s assignment is drawn from
        ``SeedSequence((assignment_seed, m))`` (SELENA code: seed 0).
    """

    _prefix: ClassVar[str] = "split_ai."

    kind: str = "none"
    num_submodels: int = 25
    num_excluded: int = 10
    average: str = "logits"
    assignment_seed: int = 0

    def __post_init__(self):
        _choice(self, "kind", SPLIT_AI_KINDS)
        _int(self, "num_submodels", 2)
        _int(self, "num_excluded", 1)
        _choice(self, "average", SPLIT_AI_AVERAGES)
        _int(self, "assignment_seed", 0)
        if self.kind == "none":
            _unused(self, ("num_submodels", "num_excluded", "average", "assignment_seed"))
        if self.num_excluded >= self.num_submodels:
            raise ValueError(f"split_ai.num_excluded must be in [1, split_ai.num_submodels="
                             f"{self.num_submodels}), got {self.num_excluded}")


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


# ----------------------------------------------------------------------------------------------
# DMP's reference set (Shejwalkar & Houmansadr 2021): the student's training data.

REFERENCE_KINDS = ("none", "gan", "given")
GENERATORS = ("dcgan", "tabular")
SAMPLE_MODES = ("train_bn", "eval_bn")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReferenceSpec(_Spec):
    """The reference set a distillation student trains on instead of the candidates (DMP).

    With ``kind != "none"`` the student (a defense reading ``"teacher_logits"``) never sees the
    private members: each model ``m`` trains only on its own reference set, labelled by the
    eval-mode logits of its teacher (:func:`teacher_spec`, trained on model ``m``'s members).
    The engine regenerates and labels every batch inside the jitted step
    (:mod:`hampjax.training.reference`), so ``M x R`` inputs or teacher outputs are never
    stored.

    Attributes:
      kind: ``"none"`` (default: the ordinary candidates), ``"gan"`` (a GAN per model trained
        on its members, :mod:`hampjax.training.gan`; ``size`` samples regenerated from the
        model's key) or ``"given"`` (a public / held-out set of unlabeled inputs shared by
        every model, the evaluation's ``EvalData.x_reference``, checked against
        ``given_sha256``).
      size: ``"gan"``: synthetic rows per model ``R >= 1`` (DMP: Texas 100k, Location 10k,
        CIFAR 150k). Other kinds: 0.
      passes_per_epoch: passes over the reference set per student epoch (DMP code: 2 on
        Location30, 1 elsewhere). ``"gan"`` and ``"given"``.
      generator: ``"dcgan"`` (images: transposed-conv generator with BatchNorm and a Tanh
        output, :class:`hampjax.models.gan.DCGenerator`) or ``"tabular"`` (MLP generator with
        BatchNorm, sigmoid outputs in [0, 1], :class:`hampjax.models.gan.TabularGenerator`).
      gan_epochs, gan_batch_size: GAN training epochs over the model's members and batch size.
      gan_learning_rate, beta1, beta2: Adam settings of generator and discriminator (DC-GAN:
        2e-4, 0.5, 0.999; CTGAN: 2e-4, 0.5, 0.9).
      noise_dim: generator input size (DC-GAN nz 100).
      filters: ``"dcgan"`` only: filters of the generator's last hidden layer and the
        discriminator's first (ngf = ndf = 64).
      image_size: ``"dcgan"`` only: side of the generated images, a power of 2 >= 8 (64:
        members are resized to 64 for training, samples back to the data's size).
      hidden: ``"tabular"`` only: hidden widths of generator and discriminator.
      sample_mode: BatchNorm of the generator when sampling: ``"train_bn"`` (batch statistics
        over each batch of generated rows; DMP code, default) or ``"eval_bn"`` (running
        statistics: every sample independent of its batch).
      threshold: ``"tabular"`` only: samples ``> threshold`` become 1 and the rest 0 (binary
        features; CTGAN's samples thresholded at 0.5), or None (default) for continuous
        features mapped back to the data's scale.
      given_sha256: ``"given"`` only: :func:`hampjax.training.reference.reference_sha256` of the
        given set (shape, dtype and bytes), required, so a recorded spec names exactly the set
        it trained on; checked before training.
    """

    _prefix: ClassVar[str] = "reference."

    kind: str = "none"
    size: int = 0
    passes_per_epoch: int = 1
    generator: str = "dcgan"
    gan_epochs: int = 100
    gan_batch_size: int = 256
    gan_learning_rate: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    noise_dim: int = 100
    filters: int = 64
    image_size: int = 64
    hidden: tuple[int, ...] = (256, 256)
    sample_mode: str = "train_bn"
    threshold: float | None = None
    given_sha256: str = ""

    def __post_init__(self):
        _choice(self, "kind", REFERENCE_KINDS)
        _int(self, "size", 0)
        _int(self, "passes_per_epoch", 1)
        _choice(self, "generator", GENERATORS)
        _int(self, "gan_epochs", 1)
        _int(self, "gan_batch_size", 1)
        _float(self, "gan_learning_rate", 0.0, low_inclusive=False)
        _float(self, "beta1", 0.0, 1.0)
        _float(self, "beta2", 0.0, 1.0)
        _int(self, "noise_dim", 1)
        _int(self, "filters", 1)
        _int(self, "image_size", 8)
        if self.image_size & (self.image_size - 1):
            raise ValueError(f"reference.image_size must be a power of 2 >= 8, got "
                             f"{self.image_size}")
        hidden = self.hidden
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not hidden:
            raise ValueError(f"reference.hidden must be a non-empty sequence of widths, got "
                             f"{hidden!r}")
        _set(self, "hidden", tuple(validation.check_positive_int(f"reference.hidden[{i}]", h)
                                   for i, h in enumerate(hidden)))
        _choice(self, "sample_mode", SAMPLE_MODES)
        if self.threshold is not None:
            _float(self, "threshold", 0.0, 1.0, low_inclusive=False)
        if not isinstance(self.given_sha256, str):
            raise ValueError(f"reference.given_sha256 must be a string, got "
                             f"{self.given_sha256!r}")
        gan = ("size", "generator", "gan_epochs", "gan_batch_size", "gan_learning_rate",
               "beta1", "beta2", "noise_dim", "filters", "image_size", "hidden",
               "sample_mode", "threshold")
        if self.kind == "none":
            _unused(self, gan + ("passes_per_epoch", "given_sha256"))
        elif self.kind == "given":
            _unused(self, gan)
            if len(self.given_sha256) != 64 or any(c not in "0123456789abcdef"
                                                   for c in self.given_sha256):
                raise ValueError(
                    "reference.given_sha256 must be the 64 lowercase hex digits of "
                    "hampjax.training.reference.reference_sha256(x_reference) with "
                    f"reference.kind='given', got {self.given_sha256!r}")
        else:
            _unused(self, ("given_sha256",))
            if self.size < 1:
                raise ValueError(f"reference.size (synthetic rows per model) must be >= 1 with "
                                 f"reference.kind='gan', got {self.size}")
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for field in (("hidden", "threshold") if self.generator == "dcgan"
                          else ("filters", "image_size")):
                if getattr(self, field) != defaults[field]:
                    raise ValueError(
                        f"reference.{field} is not used with reference.generator="
                        f"{self.generator!r}; leave it at its default {defaults[field]!r}, got "
                        f"{getattr(self, field)!r}")


# ----------------------------------------------------------------------------------------------
# The recipe spec.


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecipeSpec(_Spec):
    """Every setting that changes what a model learns (performance settings live elsewhere).

    Attributes:
      name: short identifier for run directories and reports.
      defense: the training objective, a registered :class:`DefenseParams` (see :data:`DEFENSES`).
      optimizer: :class:`OptimizerSpec`.
      schedule: :class:`ScheduleSpec` (learning rate per epoch).
      epochs: >= 1.
      batch_size: >= 1 (the last partial batch of an epoch is kept).
      selection: ``"last"`` or ``"best_val"`` (best validation accuracy; needs validation data).
      min_improvement: ``"best_val"`` only: a new epoch wins only if its validation accuracy is
        higher by more than this fraction (HAMP's CIFAR rule: 0.01).
      shuffle: ``"every_epoch"`` or ``"once"`` (one fixed order, as the HAMP authors).
      reset_optimizer_each_epoch: re-initialize the optimizer state every epoch (the HAMP
        authors re-create their optimizer per epoch).
      example_state: :class:`ExampleStateSpec`; must be the kind the defense reads.
      output: :class:`OutputSpec`, the test-time output transform.
      early_stopping_epochs: strictly increasing epoch counts ``E`` in ``[1, epochs]`` at which
        the model is also evaluated as it was after ``E`` epochs (early stopping as a defense:
        one run with the full schedule; the evaluation reports each as its own defense result
        ``<defense>_e<E>``, the shadows' snapshots after ``E`` epochs being the attacker's
        shadows). ``()``: none. The run's selected model is evaluated as well.
      adversary: :class:`AdversarySpec`, an adversary trained in a min-max game with the
        classifier (AdvReg); ``kind="none"`` (default) for none.
      privacy: :class:`PrivacySpec`, differentially private training (DP-SGD).
      teacher: the recipe of the teachers whose eval-mode logits a defense reading
        ``"teacher_logits"`` distills (:func:`teacher_spec`), or ``None`` (the default): the
        same recipe with plain cross-entropy. SELENA's sub-models and DMP's undefended
        teacher train with their own optimizer and epochs. A teacher recipe has no teacher,
        output transform or early-stopping epochs of its own.
      split_ai: :class:`SplitAISpec`, SELENA's Split-AI: the teachers are ``K`` sub-models per
        model, each member distilled from those that did not train on it; ``kind="none"``
        (default) for one teacher per model. ``"selena"`` needs a defense that reads
        ``"teacher_logits"``.
      reference: :class:`ReferenceSpec`, the set a distillation student trains on instead of
        the candidates (DMP: GAN samples or a given set, labelled by the teacher);
        ``kind="none"`` (default) for the candidates.
    """

    _nested: ClassVar[Mapping[str, type]] = types.MappingProxyType({
        "defense": DefenseParams, "optimizer": OptimizerSpec, "schedule": ScheduleSpec,
        "example_state": ExampleStateSpec, "output": OutputSpec, "adversary": AdversarySpec,
        "privacy": PrivacySpec, "split_ai": SplitAISpec, "reference": ReferenceSpec,
    })

    name: str
    defense: DefenseParams
    optimizer: OptimizerSpec
    schedule: ScheduleSpec = ScheduleSpec()
    epochs: int
    batch_size: int
    selection: str = "last"
    min_improvement: float = 0.0
    shuffle: str = "every_epoch"
    reset_optimizer_each_epoch: bool = False
    example_state: ExampleStateSpec = ExampleStateSpec()
    output: OutputSpec = OutputSpec()
    early_stopping_epochs: tuple[int, ...] = ()
    adversary: AdversarySpec = AdversarySpec()
    privacy: PrivacySpec = PrivacySpec()
    teacher: RecipeSpec | None = None
    split_ai: SplitAISpec = SplitAISpec()
    reference: ReferenceSpec = ReferenceSpec()

    _optional: ClassVar[frozenset[str]] = frozenset({"teacher"})  # Nested parts that may be None.

    @classmethod
    def _coerce(cls, field: str, value: Any) -> Any:
        if field in cls._optional and value is None:
            return None
        if field == "teacher" and isinstance(value, Mapping):
            try:
                return RecipeSpec.from_dict(value)
            except ValueError as e:
                raise ValueError(f"teacher (the teachers' recipe): {e}") from None
        return super()._coerce(field, value)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for field, cls in self._nested.items():
            value = getattr(self, field)
            if field in self._optional and value is None:
                continue
            if not isinstance(value, cls) or (cls is DefenseParams and (
                    value.kind not in DEFENSES or type(value) is not DEFENSES[value.kind].params)):
                raise ValueError(f"{field} must be a {cls.__name__}"
                                 + (f" of a kind in {', '.join(DEFENSES)}"
                                    if cls is DefenseParams else "") + f", got {value!r}")
        _int(self, "epochs", 1)
        _int(self, "batch_size", 1)
        _choice(self, "selection", SELECTIONS)
        _float(self, "min_improvement", 0.0, 1.0)
        _choice(self, "shuffle", SHUFFLES)
        _bool(self, "reset_optimizer_each_epoch")
        epochs = self.early_stopping_epochs
        if isinstance(epochs, (str, bytes)) or not isinstance(epochs, Sequence):
            raise ValueError(f"early_stopping_epochs must be a sequence of epoch counts, got "
                             f"{epochs!r}")
        epochs = tuple(validation.check_positive_int(f"early_stopping_epochs[{i}]", e)
                       for i, e in enumerate(epochs))
        if any(b <= a for a, b in zip(epochs, epochs[1:])):
            raise ValueError(f"early_stopping_epochs must be strictly increasing, got {epochs}")
        if epochs and epochs[-1] > self.epochs:
            raise ValueError(f"early_stopping_epochs must be in [1, epochs={self.epochs}], got "
                             f"{epochs[-1]}")
        _set(self, "early_stopping_epochs", epochs)
        needs = DEFENSES[self.defense.kind].example_state
        if self.example_state.kind != needs:
            raise ValueError(
                f"example_state.kind must be {needs!r} for defense.kind="
                f"{self.defense.kind!r}, got {self.example_state.kind!r}")
        if self.adversary.kind == "advreg":
            if self.adversary.warmup_epochs >= self.epochs:
                raise ValueError(f"adversary.warmup_epochs must be < epochs ({self.epochs}), got "
                                 f"{self.adversary.warmup_epochs}")
            if self.example_state.kind != "none":
                raise ValueError(f"adversary.kind='advreg' cannot be combined with "
                                 f"example_state.kind={self.example_state.kind!r}")
            if (self.adversary.game == "rounds"
                    and self.adversary.attack_batch_size > self.batch_size):
                raise ValueError(f"adversary.attack_batch_size must be <= batch_size "
                                 f"({self.batch_size}) with adversary.game='rounds' (its members "
                                 f"come from the classifier's batches), got "
                                 f"{self.adversary.attack_batch_size}")
        if (self.privacy.kind == "dp_sgd" and self.privacy.sampling == "poisson"
                and self.shuffle != "every_epoch"):
            raise ValueError("shuffle must stay 'every_epoch' with privacy.sampling='poisson' "
                             f"(Poisson batches have no order), got {self.shuffle!r}")
        if self.adversary.kind != "none" and self.privacy.kind != "none":
            raise ValueError(f"adversary.kind={self.adversary.kind!r} cannot be combined with "
                             f"privacy.kind={self.privacy.kind!r}")
        if self.teacher is not None:
            if DEFENSES[self.defense.kind].targets != "teacher_logits":
                raise ValueError(f"teacher is only used by a defense whose loss reads teacher "
                                 f"logits (e.g. defense.kind='distillation'); leave it None for "
                                 f"defense.kind={self.defense.kind!r}")
            t = self.teacher
            if (t.teacher is not None or t.output.kind != "none" or t.early_stopping_epochs
                    or DEFENSES[t.defense.kind].targets != "none"
                    or t.split_ai.kind != "none" or t.reference.kind != "none"):
                raise ValueError("teacher must be a plain recipe: no teacher of its own, "
                                 "teacher.output.kind='none', no teacher.early_stopping_epochs, "
                                 "teacher.split_ai.kind='none', teacher.reference.kind='none' "
                                 f"and a loss that reads no targets, got {t.name!r}")
        if (self.split_ai.kind != "none"
                and DEFENSES[self.defense.kind].targets != "teacher_logits"):
            raise ValueError(f"split_ai.kind={self.split_ai.kind!r} needs a defense whose loss "
                             f"reads teacher logits (defense.kind='distillation'), got "
                             f"defense.kind={self.defense.kind!r}")
        if self.split_ai.kind != "none" and self.reference.kind != "none":
            raise ValueError(f"split_ai.kind={self.split_ai.kind!r} (SELENA) cannot be combined "
                             f"with reference.kind={self.reference.kind!r} (DMP)")
        if self.reference.kind != "none":  # DMP: the student trains on a reference set only
            if DEFENSES[self.defense.kind].targets != "teacher_logits":
                raise ValueError(f"reference.kind={self.reference.kind!r} needs a defense whose "
                                 f"loss reads teacher logits (defense.kind='distillation'), got "
                                 f"defense.kind={self.defense.kind!r}")
            for part in ("adversary", "privacy", "example_state"):
                if getattr(self, part).kind != "none":
                    raise ValueError(f"reference.kind={self.reference.kind!r} cannot be "
                                     f"combined with {part}.kind="
                                     f"{getattr(self, part).kind!r}")


RecipeSpec._nested = types.MappingProxyType({**RecipeSpec._nested, "teacher": RecipeSpec})


def teacher_spec(spec: RecipeSpec) -> RecipeSpec:
    """The teacher of a defense that reads ``"teacher_logits"`` (:attr:`DefenseKind.targets`):
    ``spec.teacher`` when set; otherwise the same recipe with plain cross-entropy, no output
    transform, no early-stopping epochs and no Split-AI, named ``<name>_teacher``. With
    ``spec.split_ai.kind="selena"`` it is the recipe of SELENA's sub-models.

    Example:
      >>> from hampjax.training import preset_spec
      >>> t = teacher_spec(preset_spec("distillation", "cifar10_resnet20"))
      >>> t.name, t.defense.kind, t.epochs
      ('distillation_teacher', 'cross_entropy', 300)
    """
    if not isinstance(spec, RecipeSpec):
        raise ValueError(f"spec must be a RecipeSpec, got {type(spec).__name__}")
    if spec.teacher is not None:
        return spec.teacher
    return spec.replace(name=spec.name + "_teacher", defense=CrossEntropyParams(),
                        output=OutputSpec(), early_stopping_epochs=(),
                        split_ai=SplitAISpec(), reference=ReferenceSpec())


def diff_paths(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Sorted dotted paths where two nested plain dicts differ (missing keys count).

    Lists and tuples compare as sequences; nested dicts are compared key by key.

    Example:
      >>> diff_paths({"epochs": 3, "optimizer": {"learning_rate": 0.1, "kind": "sgd"}},
      ...            {"epochs": 3, "optimizer": {"learning_rate": 0.2, "kind": "sgd"}, "x": 1})
      ['optimizer.learning_rate', 'x']
    """
    out = []

    def walk(x, y, prefix):
        for key in set(x) | set(y):
            path = f"{prefix}{key}"
            if key not in x or key not in y:
                out.append(path)
            elif isinstance(x[key], Mapping) and isinstance(y[key], Mapping):
                walk(x[key], y[key], path + ".")
            elif _as_list(x[key]) != _as_list(y[key]):
                out.append(path)

    walk(a, b, "")
    return sorted(out)


def _as_list(value: Any) -> Any:
    return [_as_list(v) for v in value] if isinstance(value, (list, tuple)) else value
