"""The authors' per-dataset settings of every defense, as tables of :class:`RecipeSpec`.

Sources: the HAMP authors' training scripts (undefended, HAMP, label smoothing, AdvReg, SELENA;
HAMP paper Sec. IV-A and Appendix A), the RelaxLoss authors' configs (RelaxLoss and its baselines: vanilla,
label smoothing, confidence penalty, dropout, distillation, early stopping, AdvReg), the Weighted
Smoothing authors' CIFAR-10 script, and Hintersdorf et al. 2022, Sec. 4.1 ("To Trust or Not To
Trust"). ``digits`` (the offline demo set) settings, and the early-stopping epochs of the HAMP
datasets (HAMP Fig. 7 does not state them), are hampjax's own choice.

:data:`PRESETS` maps a defense to its table (dataset, RelaxLoss preset or Trust variant ->
spec); :func:`preset_spec` looks one up and applies overrides:

>>> spec = preset_spec("relaxloss", "texas100_fc", epochs=5)
>>> spec.defense.alpha, spec.defense.upper, spec.optimizer.momentum, spec.epochs
(2.5, 0.1, 0.9, 5)
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from hampjax import validation
from hampjax.training.spec import (
    ConfidencePenaltyParams,
    AdversarySpec,
    CrossEntropyParams,
    DistillationParams,
    ExampleStateSpec,
    HampParams,
    LabelSmoothingParams,
    OptimizerSpec,
    OutputSpec,
    PrivacySpec,
    RecipeSpec,
    ReferenceSpec,
    RelaxLossParams,
    ScheduleSpec,
    SmoothLabelsParams,
    SplitAISpec,
    WeightedSmoothingParams,
)

__all__ = [
    "PRESETS",
    "UNDEFENDED",
    "HAMP",
    "LABEL_SMOOTHING",
    "RELAXLOSS",
    "WEIGHTED_SMOOTHING",
    "TRUST",
    "HAMP_LS",
    "HAMP_LS_SMOOTHING",
    "RELAXLOSS_BASELINES",
    "DROPOUT_MODEL_KWARGS",
    "EARLY_STOPPING",
    "EARLY_STOPPING_EPOCHS",
    "ADVREG",
    "DP_SGD",
    "SELENA",
    "DMP",
    "MEMGUARD",
    "preset_spec",
]

_frozen = types.MappingProxyType


def _constant():
    return ScheduleSpec(kind="constant")


def _step(*milestones: int, factor: float = 0.1):
    return ScheduleSpec(kind="step", milestones=milestones, factor=factor)


def _undefended(optimizer: OptimizerSpec, schedule: ScheduleSpec, *, epochs: int,
                batch_size: int, selection: str = "best_val") -> RecipeSpec:
    return RecipeSpec(name="undefended", defense=CrossEntropyParams(), optimizer=optimizer,
                      schedule=schedule, epochs=epochs, batch_size=batch_size, selection=selection)


UNDEFENDED: Mapping[str, RecipeSpec] = _frozen({
    "purchase100": _undefended(OptimizerSpec(kind="adam", learning_rate=5e-5, weight_decay=1e-3),
                               _constant(), epochs=100, batch_size=32),
    "texas100": _undefended(OptimizerSpec(kind="adam", learning_rate=5e-4), _constant(),
                            epochs=20, batch_size=32),
    "location30": _undefended(OptimizerSpec(kind="sgd", learning_rate=0.5), _constant(),
                              epochs=50, batch_size=64),
    "cifar10": _undefended(OptimizerSpec(kind="sgd", learning_rate=0.5, momentum=0.9,
                                         weight_decay=1e-4),
                           _step(30, 60, 90), epochs=100, batch_size=64),
    "cifar100": _undefended(OptimizerSpec(kind="sgd", learning_rate=0.5, momentum=0.9,
                                          weight_decay=1e-4),
                            _step(30, 60, 90), epochs=100, batch_size=64),
    "digits": _undefended(OptimizerSpec(kind="adam", learning_rate=1e-3), _constant(),
                          epochs=60, batch_size=32, selection="last"),
})
"""Plain cross-entropy with the authors' per-dataset optimizer (best validation epoch)."""


def _hamp(dataset: str, *, entropy_threshold: float, alpha: float, learning_rate: float,
          epochs: int, batch_size: int) -> RecipeSpec:
    # SGD momentum 0.99, coupled wd 1e-5, lr x0.1 at 60/90/150, one fixed batch order, best
    # validation epoch (CIFAR: must improve by more than 1 point), output modification.
    return RecipeSpec(
        name="hamp",
        defense=HampParams(entropy_threshold=entropy_threshold, alpha=alpha),
        optimizer=OptimizerSpec(kind="sgd", learning_rate=learning_rate, momentum=0.99,
                                weight_decay=1e-5),
        schedule=_step(60, 90, 150), epochs=epochs, batch_size=batch_size,
        selection="last" if dataset == "digits" else "best_val",
        min_improvement=0.01 if dataset.startswith("cifar") else 0.0, shuffle="once",
        output=OutputSpec(kind="hamp", pool_size=1000),
    )


HAMP: Mapping[str, RecipeSpec] = _frozen({
    "purchase100": _hamp("purchase100", entropy_threshold=0.8, alpha=0.01, learning_rate=0.5,
                         epochs=200, batch_size=32),
    "texas100": _hamp("texas100", entropy_threshold=0.6, alpha=0.01, learning_rate=0.5,
                      epochs=100, batch_size=32),
    "location30": _hamp("location30", entropy_threshold=0.5, alpha=0.001, learning_rate=0.5,
                        epochs=100, batch_size=64),
    "cifar10": _hamp("cifar10", entropy_threshold=0.95, alpha=0.001, learning_rate=0.5,
                     epochs=200, batch_size=64),
    "cifar100": _hamp("cifar100", entropy_threshold=0.5, alpha=0.005, learning_rate=1.0,
                      epochs=200, batch_size=64),
    "digits": _hamp("digits", entropy_threshold=0.7, alpha=0.01, learning_rate=0.1,
                    epochs=60, batch_size=32),
})
"""HAMP (training objective and output modification) with the authors' settings."""

HAMP_LS_SMOOTHING: Mapping[str, float] = _frozen({
    "purchase100": 0.03, "texas100": 0.09, "cifar100": 0.01, "digits": 0.03,
})
"""HAMP's LS intensities (most accurate of 0.01..0.995; HAMP code): the true class gets
``1 - eps``. Not used on CIFAR-10 / Location30; ``digits`` is hampjax's choice."""

HAMP_LS: Mapping[str, RecipeSpec] = _frozen({
    dataset: HAMP[dataset].replace(
        name="hamp_ls", defense=SmoothLabelsParams(smoothing=eps, style="hamp"),
        output=OutputSpec())
    for dataset, eps in HAMP_LS_SMOOTHING.items()
})
"""HAMP's label-smoothing baseline: the HAMP recipe (optimizer, schedule, selection, batch
order; CIFAR's +1 point rule) with soft labels only: no entropy term, no output
modification."""

LABEL_SMOOTHING: Mapping[str, RecipeSpec] = _frozen({
    dataset: spec.replace(name="label_smoothing",
                          defense=LabelSmoothingParams(entropy_threshold=0.05))
    for dataset, spec in UNDEFENDED.items()
})
"""The HAMP authors' label-smoothing baseline, trained with the undefended optimizer."""


def _relaxloss(*, alpha: float, upper: float, variant: str, epochs: int,
               milestones: tuple[int, ...]) -> RecipeSpec:
    # SGD 0.1 momentum 0.9, coupled wd 1e-4, lr x0.1 at the milestones, batch 128, last epoch.
    return RecipeSpec(
        name="relaxloss", defense=RelaxLossParams(alpha=alpha, upper=upper, variant=variant),
        optimizer=OptimizerSpec(kind="sgd", learning_rate=0.1, momentum=0.9, weight_decay=1e-4),
        schedule=_step(*milestones), epochs=epochs, batch_size=128, selection="last",
    )


def _relaxloss_cifar(alpha: float) -> RecipeSpec:
    return _relaxloss(alpha=alpha, upper=1.0, variant="cifar", epochs=300, milestones=(150, 225))


def _relaxloss_tabular(alpha: float, upper: float) -> RecipeSpec:
    return _relaxloss(alpha=alpha, upper=upper, variant="tabular", epochs=120,
                      milestones=(50, 100))


RELAXLOSS: Mapping[str, RecipeSpec] = _frozen({
    "cifar10_resnet20": _relaxloss_cifar(1.0),
    "cifar10_vgg11_bn": _relaxloss_cifar(0.4),
    "cifar100_resnet20": _relaxloss_cifar(3.0),
    "cifar100_vgg11_bn": _relaxloss_cifar(0.5),
    "purchase100_fc": _relaxloss_tabular(alpha=0.8, upper=0.3),
    "texas100_fc": _relaxloss_tabular(alpha=2.5, upper=0.1),
})
"""RelaxLoss per ``<dataset>_<model>`` (the model is a :mod:`hampjax.models` zoo name)."""


DROPOUT_MODEL_KWARGS: Mapping[str, float] = _frozen({"head_dropout_rate": 0.5})
"""The model kwargs of RelaxLoss's dropout baseline (dropout 0.5 before the last linear
layer; :func:`hampjax.models.get_model`). Dropout is part of the model, not of the recipe: a
cell records it in its model kwargs (``defense_model_kwargs`` of the dropout defense)."""

EARLY_STOPPING_EPOCHS: Mapping[str, tuple[int, ...]] = _frozen({
    # RelaxLoss code: one run with the full schedule, checkpoints at these epoch counts.
    "cifar": (5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 250),
    "tabular": (5, 10, 20, 30, 40, 50, 60, 70, 100),
    # HAMP Fig. 7 (epochs not stated; one anchor: Purchase100 at 15 epochs). hampjax's choice,
    # below each undefended recipe's epochs.
    "purchase100": (5, 10, 15, 20, 30, 50, 75),
    "texas100": (2, 5, 10, 15),
    "location30": (5, 10, 20, 30, 40),
    "cifar10": (5, 10, 20, 30, 50, 75),
    "cifar100": (5, 10, 20, 30, 50, 75),
    "digits": (5, 10, 20, 40),
})
"""Early-stopping epoch counts: ``"cifar"`` / ``"tabular"`` for the RelaxLoss presets, the
dataset names for the HAMP (undefended) recipes."""


def _relaxloss_baselines() -> dict[str, Mapping[str, RecipeSpec]]:
    # RelaxLoss's base recipe (its preset with the defense swapped): SGD 0.1, momentum 0.9,
    # wd 1e-4, batch 128, no augmentation, last epoch; CIFAR 300 epochs (x0.1 at 150, 225),
    # tabular 120 (50, 100).
    def table(name, defense, *, cifar_only=False):
        return _frozen({
            preset: spec.replace(name=name, defense=defense)
            for preset, spec in RELAXLOSS.items() if not cifar_only or preset.startswith("cifar")
        })

    def early(preset):
        return EARLY_STOPPING_EPOCHS["cifar" if preset.startswith("cifar") else "tabular"]

    tables = {
        "vanilla": table("vanilla", CrossEntropyParams()),
        "label_smoothing_rl": table("label_smoothing_rl",
                                    SmoothLabelsParams(smoothing=0.1, style="standard")),
        "confidence_penalty": table("confidence_penalty", ConfidencePenaltyParams(beta=0.1)),
        "dropout": table("dropout", CrossEntropyParams()),
        "distillation": table("distillation", DistillationParams(temperature=10.0,
                                                                 kl_weight=0.5),
                              cifar_only=True),
    }
    stopping = {preset: spec.replace(name="early_stopping", defense=CrossEntropyParams(),
                                     early_stopping_epochs=early(preset))
                for preset, spec in RELAXLOSS.items()}
    stopping.update({dataset: spec.replace(name="early_stopping",
                                           early_stopping_epochs=EARLY_STOPPING_EPOCHS[dataset])
                     for dataset, spec in UNDEFENDED.items()})
    tables["early_stopping"] = _frozen(stopping)
    return tables


RELAXLOSS_BASELINES: Mapping[str, Mapping[str, RecipeSpec]] = _frozen(_relaxloss_baselines())
"""RelaxLoss's baselines on its base recipe, per RelaxLoss preset (``"purchase100_fc"``, ...):
``"vanilla"`` (cross-entropy), ``"label_smoothing_rl"`` (standard smoothing eps 0.1),
``"confidence_penalty"`` (CE - 0.1 H(p)), ``"dropout"`` (cross-entropy; the model takes
:data:`DROPOUT_MODEL_KWARGS`), ``"distillation"`` (CIFAR only: teacher = vanilla on the same
data, 0.5 T^2 KL + 0.5 CE, T = 10) and ``"early_stopping"`` (vanilla with
``early_stopping_epochs``; its table also holds the HAMP datasets' undefended recipes, HAMP
Fig. 7)."""

EARLY_STOPPING = RELAXLOSS_BASELINES["early_stopping"]
"""Early stopping: one run with the full schedule, evaluated after each of
``spec.early_stopping_epochs`` epochs (RelaxLoss presets and HAMP datasets)."""


def _weighted_smoothing(*, learning_rate: float, decay: float, batch_size: int) -> RecipeSpec:
    # Adam, grad-norm clip 10, no weight decay, lr x decay per epoch, last epoch; noise scales
    # from modified entropy, z-scored per class, weight 1 - z, from epoch 4 on. ``sigma`` is
    # swept (WS_SIGMA_GRID); weighted_smoothing_recipe always sets it.
    return RecipeSpec(
        name="weighted_smoothing", defense=WeightedSmoothingParams(sigma=0.1),
        optimizer=OptimizerSpec(kind="adam", learning_rate=learning_rate, clip_norm=10.0),
        schedule=ScheduleSpec(kind="exponential", decay=decay), epochs=100,
        batch_size=batch_size, selection="last",
        example_state=ExampleStateSpec(kind="ws_noise_scale"),
    )


WEIGHTED_SMOOTHING: Mapping[str, RecipeSpec] = _frozen({
    # CIFAR-10: DenseNet-BC depth 22, growth 12, compression 0.5.
    "cifar10": _weighted_smoothing(learning_rate=0.022, decay=0.991, batch_size=128),
    "ham10000": _weighted_smoothing(learning_rate=0.004, decay=0.992, batch_size=64),
})
"""Weighted Smoothing per dataset."""


def _trust(name: str, defense, weight_decay: float = 0.0) -> RecipeSpec:
    # Adam 0.01 (ResNet-18; 0.001 for SalemCNN), batch 64, 100 epochs, last epoch.
    return RecipeSpec(
        name=name, defense=defense,
        optimizer=OptimizerSpec(kind="adam", learning_rate=0.01, weight_decay=weight_decay),
        schedule=_constant(), epochs=100, batch_size=64, selection="last",
    )


TRUST: Mapping[str, RecipeSpec] = _frozen({
    "standard": _trust("trust_standard", CrossEntropyParams()),
    "label_smoothing": _trust("trust_label_smoothing", SmoothLabelsParams(smoothing=0.0083)),
    "l2": _trust("trust_l2", CrossEntropyParams(), weight_decay=3e-4),
})
"""The "To Trust or Not To Trust" CIFAR-10 training variants."""

def _advreg_hamp(*, weight: float, optimizer: OptimizerSpec, batch_size: int, epochs: int,
                 milestones: tuple[int, ...], warmup_attack_batch_size: int = 8,
                 selection: str = "best_val") -> RecipeSpec:
    # HAMP code: inference model on raw logits (hamp arch), Adam 1e-4; epoch 0 plain (batch
    # 32) + 5 inference-model epochs (8+8 per step); then rounds of 52 inference-model steps
    # (B/2 members + B/2 reference) and 2 classifier steps; lr decayed twice per milestone;
    # strictly best validation epoch (epoch 0 never selected).
    return RecipeSpec(
        name="advreg", defense=CrossEntropyParams(), optimizer=optimizer,
        schedule=_step(*milestones) if milestones else _constant(), epochs=epochs,
        batch_size=batch_size, selection=selection,
        adversary=AdversarySpec(
            kind="advreg", weight=weight, attack_input="logits", attack_arch="hamp",
            attack_learning_rate=1e-4, game="rounds", attack_steps=52, classifier_steps=2,
            attack_batch_size=batch_size // 2, warmup_epochs=1, warmup_attack_epochs=5,
            warmup_batch_size=32, warmup_attack_batch_size=warmup_attack_batch_size,
            reference="authors", double_decay=True),
    )


def _advreg_cifar(weight: float) -> RecipeSpec:
    return _advreg_hamp(weight=weight, optimizer=OptimizerSpec(
        kind="sgd", learning_rate=1.0, momentum=0.9, weight_decay=1e-4), batch_size=256,
        epochs=200, milestones=(60, 90, 150), warmup_attack_batch_size=128)


def _advreg_relaxloss(base: RecipeSpec, *, cifar: bool) -> RecipeSpec:
    # RelaxLoss code on its base recipe (SGD 0.1, mom 0.9, wd 1e-4, B 128, last epoch): lambda
    # 1, inference model on sorted logits, Adam 1e-3, reference = the non-members. Tabular: 1
    # warm-up epoch + 5 inference-model epochs, then rounds of 50 + 2 steps; CIFAR: 3 warm-up
    # epochs (each + 5 inference-model epochs), then per epoch one inference-model epoch and
    # one classifier epoch, its hidden layer never trained. Inference-model batches: B members
    # + B reference examples (hampjax's reading: the code's loaders share the batch size).
    b = base.batch_size
    game = dict(game="epochs") if cifar else dict(game="rounds", attack_steps=50,
                                                  classifier_steps=2)
    return base.replace(name="advreg", defense=CrossEntropyParams(), adversary=AdversarySpec(
        kind="advreg", weight=1.0, attack_input="sorted_logits",
        attack_arch="relaxloss_cifar" if cifar else "relaxloss_tabular",
        attack_hidden="frozen" if cifar else "trainable", attack_learning_rate=1e-3,
        attack_batch_size=b, warmup_epochs=3 if cifar else 1, warmup_attack_epochs=5,
        warmup_attack_batch_size=b, reference="authors", double_decay=False, **game))


ADVREG: Mapping[str, RecipeSpec] = _frozen({
    "purchase100": _advreg_hamp(weight=3.0, optimizer=OptimizerSpec(kind="adam",
                                                                    learning_rate=5e-4),
                                batch_size=64, epochs=50, milestones=(25,)),
    "texas100": _advreg_hamp(weight=10.0, optimizer=OptimizerSpec(kind="adam",
                                                                  learning_rate=1e-3),
                             batch_size=64, epochs=20, milestones=()),
    # The authors' Texas LiRA shadows (lambda 3, lr 5e-4; the target: 10, 1e-3). Reproduce
    # with this as the non-adaptive shadow recipe (the evaluation's ``shadow_recipe``); the
    # default (adaptive) shadows use the target's recipe.
    "texas100_authors_shadow": _advreg_hamp(
        weight=3.0, optimizer=OptimizerSpec(kind="adam", learning_rate=5e-4), batch_size=64,
        epochs=20, milestones=()).replace(name="advreg_shadow"),
    "location30": _advreg_hamp(weight=10.0, optimizer=OptimizerSpec(kind="adam",
                                                                    learning_rate=1e-3),
                               batch_size=64, epochs=50, milestones=(25,)),
    "cifar10": _advreg_cifar(6.0),
    "cifar100": _advreg_cifar(6.0),
    # hampjax's own small setting for tests and the demo.
    "digits": _advreg_hamp(weight=3.0, optimizer=OptimizerSpec(kind="adam", learning_rate=1e-3),
                           batch_size=32, epochs=30, milestones=(), selection="last").replace(
        **{"adversary.attack_learning_rate": 1e-3, "adversary.attack_steps": 8}),
    **{key: _advreg_relaxloss(spec, cifar=key.startswith("cifar"))
       for key, spec in RELAXLOSS.items()},
})
"""AdvReg (Nasr et al. 2018): HAMP's table (App. A) per dataset, the RelaxLoss code per
RelaxLoss preset (``"purchase100_fc"``, ...), and the authors' Texas shadows."""


def _dp_hamp(*, sigma: float, clip_norm: float, batch_size: int, epochs: int,
             learning_rate: float = 0.005, selection: str = "best_val") -> RecipeSpec:
    # HAMP code (Opacus 1.1.2 make_private defaults): Poisson sampling, flat clipping, RDP,
    # delta 1e-5; SGD momentum 0.9, coupled wd 5e-4, cosine lr lr0 * 0.5 (1 + cos(pi e/(E+1))).
    return RecipeSpec(
        name="dp_sgd", defense=CrossEntropyParams(),
        optimizer=OptimizerSpec(kind="sgd", learning_rate=learning_rate, momentum=0.9,
                                weight_decay=5e-4),
        schedule=ScheduleSpec(kind="cosine"), epochs=epochs, batch_size=batch_size,
        selection=selection,
        privacy=PrivacySpec(kind="dp_sgd", noise_multiplier=sigma, clip_norm=clip_norm,
                            sampling="poisson"),
    )


def _dp_relaxloss(preset: str) -> RecipeSpec:
    # RelaxLoss code (defense/dpsgd.py): Opacus 0.14 on the base recipe with shuffled batches
    # of 128, sigma 0.01, C 1.2 (CIFAR) / 1.0 (tabular).
    base = RELAXLOSS[preset]
    return base.replace(
        name="dp_sgd", defense=CrossEntropyParams(),
        privacy=PrivacySpec(kind="dp_sgd", noise_multiplier=0.01,
                            clip_norm=1.2 if preset.startswith("cifar") else 1.0,
                            sampling="shuffle"))


DP_SGD: Mapping[str, RecipeSpec] = _frozen({
    "purchase100": _dp_hamp(sigma=1.7, clip_norm=1.0, batch_size=128, epochs=200),
    "texas100": _dp_hamp(sigma=1.44, clip_norm=1.0, batch_size=64, epochs=200),
    "location30": _dp_hamp(sigma=2.91, clip_norm=3.0, batch_size=128, epochs=50),
    "digits": _dp_hamp(sigma=1.0, clip_norm=1.0, batch_size=32, epochs=30, learning_rate=0.1,
                       selection="last"),
    **{preset: _dp_relaxloss(preset) for preset in RELAXLOSS},
})
"""DP-SGD: the HAMP code's settings per dataset (baselines.md section 1; Poisson sampling)
and the RelaxLoss code's per RelaxLoss preset (shuffled batches, sigma 0.01). The RelaxLoss
CIFAR presets name BatchNorm models, which DP-SGD refuses (the RelaxLoss code converted
BatchNorm to GroupNorm): train them with a model without BatchNorm."""

def _selena(dataset: str, *, learning_rate: float, epochs: int, batch_size: int,
            teacher: RecipeSpec) -> RecipeSpec:
    # HAMP code (baselines.md sections 0, 4): K = 25 sub-models, L = 10, logits averaged;
    # student distilled on the members only (T 1, KL weight 1, PyTorch 'mean' KL), SGD
    # momentum 0.99, coupled wd 1e-5, optimizer re-created every epoch, lr x0.1 at 60/90/150,
    # consecutive batches in one fixed order, strictly best validation epoch.
    return RecipeSpec(
        name="selena",
        defense=DistillationParams(temperature=1.0, kl_weight=1.0,
                                   kl_reduction="mean_over_classes"),
        optimizer=OptimizerSpec(kind="sgd", learning_rate=learning_rate, momentum=0.99,
                                weight_decay=1e-5),
        schedule=_step(60, 90, 150), epochs=epochs, batch_size=batch_size,
        selection="last" if dataset == "digits" else "best_val", shuffle="once",
        reset_optimizer_each_epoch=True,
        teacher=teacher.replace(name="selena_submodel"),
        split_ai=SplitAISpec(kind="selena"),
    )


SELENA: Mapping[str, RecipeSpec] = _frozen({
    # Sub-models: the undefended recipe (baselines.md section 4's table; Texas adds wd 1e-3).
    "purchase100": _selena("purchase100", learning_rate=1.0, epochs=200, batch_size=32,
                           teacher=UNDEFENDED["purchase100"]),
    "texas100": _selena("texas100", learning_rate=1.0, epochs=100, batch_size=32,
                        teacher=UNDEFENDED["texas100"].replace(
                            **{"optimizer.weight_decay": 1e-3})),
    "location30": _selena("location30", learning_rate=1.0, epochs=100, batch_size=64,
                          teacher=UNDEFENDED["location30"]),
    "cifar10": _selena("cifar10", learning_rate=0.5, epochs=200, batch_size=64,
                       teacher=UNDEFENDED["cifar10"]),
    "cifar100": _selena("cifar100", learning_rate=1.0, epochs=200, batch_size=64,
                        teacher=UNDEFENDED["cifar100"]),
    # hampjax's own small setting for tests and the demo: K, L as SELENA; sub-models and
    # student shorter than the undefended digits recipe, last epoch (no validation set).
    "digits": _selena("digits", learning_rate=0.1, epochs=30, batch_size=32,
                      teacher=UNDEFENDED["digits"].replace(epochs=30)),
})
"""SELENA (Tang et al. 2022) with the HAMP code's settings: ``teacher`` is the sub-models'
recipe (``teacher_spec``), ``split_ai`` the Split-AI (K = 25, L = 10, averaged logits; the
paper's probabilities: ``**{"split_ai.average": "probs"}``), the recipe itself the distilled
student (the released model). Train with :func:`hampjax.evaluation.train_recipe`."""


# DMP (Shejwalkar & Houmansadr 2021; issue 13): baselines.md sections 0 and 5.
def _dmp(dataset: str, *, learning_rate: float, epochs: int, batch_size: int,
         reference: ReferenceSpec, schedule: ScheduleSpec | None = None,
         selection: str = "best_val") -> RecipeSpec:
    # Student: distillation T = 1 on teacher logits only (kl_weight 1, PyTorch 'mean'), SGD
    # momentum 0.99, coupled wd 1e-5, optimizer re-created every epoch, lr x0.1 at 60/90/150,
    # consecutive batches (one fixed order), strictly best validation epoch; teacher = the
    # undefended recipe.
    return RecipeSpec(
        name="dmp", defense=DistillationParams(temperature=1.0, kl_weight=1.0),
        optimizer=OptimizerSpec(kind="sgd", learning_rate=learning_rate, momentum=0.99,
                                weight_decay=1e-5),
        schedule=schedule or _step(60, 90, 150), epochs=epochs, batch_size=batch_size,
        selection=selection, shuffle="once", reset_optimizer_each_epoch=True,
        teacher=UNDEFENDED[dataset], reference=reference)


def _ctgan_like(*, size: int, gan_epochs: int, gan_batch_size: int,
                passes: int = 1) -> ReferenceSpec:
    # The authors' CTGAN settings where they carry over (Adam 2e-4, betas (0.5, 0.9), noise
    # 128, 256-256 layers, all columns continuous, samples thresholded at 0.5).
    return ReferenceSpec(kind="gan", generator="tabular", size=size, gan_epochs=gan_epochs,
                         gan_batch_size=gan_batch_size, beta2=0.9, noise_dim=128,
                         threshold=0.5, passes_per_epoch=passes)


def _dcgan(size: int = 150_000) -> ReferenceSpec:
    # DC-GAN: nz 100, 64 filters, 64x64 Tanh, Adam 2e-4 (beta1 0.5), BCE, batch 256, 100
    # epochs; sampled with batch-statistics BatchNorm.
    return ReferenceSpec(kind="gan", generator="dcgan", size=size, gan_epochs=100,
                         gan_batch_size=256)


DMP: Mapping[str, RecipeSpec] = _frozen({
    "texas100": _dmp("texas100", learning_rate=1.0, epochs=100, batch_size=32,
                     reference=_ctgan_like(size=100_000, gan_epochs=50, gan_batch_size=256)),
    "location30": _dmp("location30", learning_rate=0.1, epochs=100, batch_size=64,
                       reference=_ctgan_like(size=10_000, gan_epochs=100, gan_batch_size=128,
                                             passes=2)),
    "cifar10": _dmp("cifar10", learning_rate=0.1, epochs=200, batch_size=64,
                    reference=_dcgan()),
    "cifar100": _dmp("cifar100", learning_rate=0.1, epochs=200, batch_size=64,
                     reference=_dcgan()),
    # hampjax's own small setting for tests and the demo (the fc net on flat digits): a small
    # tabular GAN with continuous outputs, last epoch.
    "digits": _dmp("digits", learning_rate=0.01, epochs=30, batch_size=32,
                   schedule=_constant(), selection="last",
                   reference=ReferenceSpec(kind="gan", generator="tabular", size=1000,
                                           gan_epochs=300, gan_batch_size=64, hidden=(64,),
                                           noise_dim=16, gan_learning_rate=2e-3, beta2=0.9)),
})
"""DMP per dataset (baselines.md section 5; not Purchase100, which the HAMP paper drops):
distillation students on GAN samples labelled by undefended teachers."""


MEMGUARD: Mapping[str, RecipeSpec] = _frozen({
    dataset: spec.replace(name="memguard", output=OutputSpec(kind="memguard"))
    for dataset, spec in UNDEFENDED.items()
})
"""MemGuard (Jia et al. 2019): the undefended recipe, its outputs post-processed at test time
(``output.kind="memguard"``, the HAMP code's settings: the target's classifier on every
model, no Phase II)."""

PRESETS: Mapping[str, Mapping[str, RecipeSpec]] = _frozen({
    "undefended": UNDEFENDED,
    "hamp": HAMP,
    "label_smoothing": LABEL_SMOOTHING,
    "relaxloss": RELAXLOSS,
    "weighted_smoothing": WEIGHTED_SMOOTHING,
    "trust": TRUST,
    "hamp_ls": HAMP_LS,
    **RELAXLOSS_BASELINES,
    "advreg": ADVREG,
    "dp_sgd": DP_SGD,
    "selena": SELENA,
    "dmp": DMP,
    "memguard": MEMGUARD,
})
"""Every preset table: defense -> (dataset, RelaxLoss preset or Trust variant) -> spec."""


def preset_spec(defense: str, dataset_or_preset: str, **overrides: Any) -> RecipeSpec:
    """The preset ``PRESETS[defense][dataset_or_preset]`` with ``overrides`` applied.

    Args:
      defense: a key of :data:`PRESETS` (``"hamp"``, ``"relaxloss"``, ...).
      dataset_or_preset: a key of that table: a dataset (``"purchase100"``), a RelaxLoss
        preset (``"purchase100_fc"``) or a Trust variant (``"l2"``).
      **overrides: :meth:`RecipeSpec.replace` changes, dotted keys allowed
        (``**{"optimizer.learning_rate": 0.1}``).

    Returns:
      The :class:`RecipeSpec`.

    Raises:
      ValueError: on an unknown defense or key, or an invalid override (naming the field).
    """
    validation.check_choice("defense", defense, tuple(PRESETS))
    table = PRESETS[defense]
    validation.check_choice(f"{defense} preset", dataset_or_preset, tuple(table))
    spec = table[dataset_or_preset]
    return spec.replace(**overrides) if overrides else spec
