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

This module holds :class:`RecipeSpec` and re-exports the rest: its parts in
:mod:`~hampjax.training.spec_parts`, the defense parameters and :data:`DEFENSES` in
:mod:`~hampjax.training.defense_params`, the shared machinery (``to_dict`` / ``from_dict`` /
``replace``, the field checks, :func:`diff_paths`) in :mod:`~hampjax.training.spec_base`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from hampjax import validation
from hampjax.training.defense_params import (
    DEFENSES,
    ConfidencePenaltyParams,
    CrossEntropyParams,
    DefenseKind,
    DefenseParams,
    DistillationParams,
    HampParams,
    LabelSmoothingParams,
    RelaxLossParams,
    SmoothLabelsParams,
    WeightedSmoothingParams,
)
from hampjax.training.spec_base import (
    ADVREG_REFERENCES,
    SELECTIONS,
    SHUFFLES,
    TARGETS,
    _Spec,
    _bool,
    _choice,
    _float,
    _int,
    _set,
    diff_paths,
)
from hampjax.training.spec_parts import (
    AdversarySpec,
    ExampleStateSpec,
    MemGuardSpec,
    OptimizerSpec,
    OutputSpec,
    PrivacySpec,
    ReferenceSpec,
    ScheduleSpec,
    SplitAISpec,
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
    "ADVREG_REFERENCES",
    "teacher_spec",
    "diff_paths",
]


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
