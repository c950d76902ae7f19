"""The authors' per-dataset settings of every defense, as tables of :class:`RecipeSpec`.

Sources: the HAMP authors' training scripts (undefended, HAMP, label smoothing; HAMP paper
Sec. IV-A and Appendix A), the RelaxLoss authors' configs, the Weighted Smoothing authors'
CIFAR-10 script, and Hintersdorf et al. 2022, Sec. 4.1 ("To Trust or Not To Trust").
``digits`` (the offline demo set) settings are hampjax's own choice.

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
    CrossEntropyParams,
    ExampleStateSpec,
    HampParams,
    LabelSmoothingParams,
    OptimizerSpec,
    OutputSpec,
    PrivacySpec,
    RecipeSpec,
    RelaxLossParams,
    ScheduleSpec,
    SmoothLabelsParams,
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
    "DP_SGD",
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

PRESETS: Mapping[str, Mapping[str, RecipeSpec]] = _frozen({
    "undefended": UNDEFENDED,
    "hamp": HAMP,
    "label_smoothing": LABEL_SMOOTHING,
    "relaxloss": RELAXLOSS,
    "weighted_smoothing": WEIGHTED_SMOOTHING,
    "trust": TRUST,
    "dp_sgd": DP_SGD,
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
