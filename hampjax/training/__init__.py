"""The batched shadow-model training engine.

* :mod:`~hampjax.training.membership` - balanced and paired keep matrices.
* :mod:`~hampjax.training.spec` - :class:`RecipeSpec`, every setting that changes results, as
  frozen JSON-round-trippable data (its parts: :mod:`~hampjax.training.spec_parts`; the defense
  parameters and their registry: :mod:`~hampjax.training.defense_params`).
* :mod:`~hampjax.training.presets` - the authors' settings of every defense, as spec tables.
* :mod:`~hampjax.training.recipes` - :func:`build_recipe`: spec -> loss, optimizer, schedule.
* :func:`train_many` - M models in one jitted program, sharded over devices, resumable.
* :mod:`~hampjax.training.epoch` - one model's epoch, and the loop strategies and precision
  that run it (:mod:`~hampjax.training.step`: the training step).
* :mod:`~hampjax.training.advreg` - AdvReg's min-max game as train_many's epoch programs.
* :mod:`~hampjax.training.selena` - SELENA: Split-AI sub-models of every model in one
  train_many, then the distilled students (:func:`train_selena`).
* :mod:`~hampjax.training.gan` / :mod:`~hampjax.training.reference` - DMP: a GAN per model on
  its members, and students trained on regenerated, teacher-labelled reference sets.
* :func:`predict_many` - eval-mode outputs of every model on every example and query.
* :mod:`~hampjax.training.distributed` - multi-host setup when the environment asks.
"""

from hampjax.training.distributed import maybe_initialize
from hampjax.training import advreg  # registers AdvReg's epoch programs with the engine
from hampjax.training import reference  # registers DMP students' epoch programs
from hampjax.training.engine import TrainResult, TrainState, epoch_batches, model_key, train_many
from hampjax.training.predict import predict_many, predict_single
from hampjax.training.queries import Query, QuerySet
from hampjax.training.membership import balanced_keep, check_keep, load_keep, paired_keep, save_keep
from hampjax.training.presets import PRESETS, preset_spec
from hampjax.training.recipes import (
    Adversary,
    LossContext,
    Recipe,
    adam,
    advreg_recipe,
    build_recipe,
    cosine_schedule,
    exponential_schedule,
    hamp_recipe,
    TRUST_TRAINING_VARIANTS,
    label_smoothing_recipe,
    trust_recipe,
    relaxloss_recipe,
    sgd,
    step_schedule,
    undefended_recipe,
    weighted_smoothing_recipe,
)
from hampjax.training.selena import split_ai_targets, train_selena
from hampjax.training.spec import (
    DEFENSES,
    AdversarySpec,
    ConfidencePenaltyParams,
    CrossEntropyParams,
    DefenseParams,
    DistillationParams,
    ExampleStateSpec,
    HampParams,
    LabelSmoothingParams,
    OptimizerSpec,
    OutputSpec,
    MemGuardSpec,
    PrivacySpec,
    RecipeSpec,
    RelaxLossParams,
    ScheduleSpec,
    SmoothLabelsParams,
    SplitAISpec,
    WeightedSmoothingParams,
    diff_paths,
    teacher_spec,
)
# DMP (issue 13): reference sets, GANs per model, students.
from hampjax.training.spec import ReferenceSpec
from hampjax.training.gan import GanResult, Scaling, train_gans
from hampjax.training.reference import (
    ReferenceInputs,
    StudentData,
    load_reference_npy,
    reference_sha256,
    train_students,
)

__all__ = [
    "ReferenceSpec",
    "GanResult",
    "Scaling",
    "train_gans",
    "ReferenceInputs",
    "StudentData",
    "load_reference_npy",
    "reference_sha256",
    "train_students",
    "DEFENSES",
    "Adversary",
    "AdversarySpec",
    "advreg_recipe",
    "PRESETS",
    "ConfidencePenaltyParams",
    "CrossEntropyParams",
    "DefenseParams",
    "DistillationParams",
    "ExampleStateSpec",
    "HampParams",
    "LabelSmoothingParams",
    "OptimizerSpec",
    "OutputSpec",
    "MemGuardSpec",
    "PrivacySpec",
    "RecipeSpec",
    "RelaxLossParams",
    "ScheduleSpec",
    "SmoothLabelsParams",
    "SplitAISpec",
    "WeightedSmoothingParams",
    "build_recipe",
    "diff_paths",
    "teacher_spec",
    "preset_spec",
    "Query",
    "QuerySet",
    "predict_many",
    "predict_single",
    "LossContext",
    "Recipe",
    "TrainResult",
    "TrainState",
    "adam",
    "balanced_keep",
    "check_keep",
    "epoch_batches",
    "exponential_schedule",
    "cosine_schedule",
    "hamp_recipe",
    "label_smoothing_recipe",
    "trust_recipe",
    "TRUST_TRAINING_VARIANTS",
    "load_keep",
    "maybe_initialize",
    "model_key",
    "paired_keep",
    "relaxloss_recipe",
    "save_keep",
    "sgd",
    "step_schedule",
    "train_many",
    "undefended_recipe",
    "weighted_smoothing_recipe",
    "split_ai_targets",
    "train_selena",
]
