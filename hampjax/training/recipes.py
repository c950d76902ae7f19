"""Training recipes: the callables the engine runs, built from a :class:`RecipeSpec`.

A :class:`~hampjax.training.spec.RecipeSpec` is plain data holding every setting that changes
what a model learns (nothing about how fast it runs: devices, chunk sizes and dtypes live in
the engine's arguments). :func:`build_recipe` is the one place the callables are made from it;
a :class:`Recipe` is the spec plus those callables, so its recorded ``config`` is what it
trains. The engine (:func:`hampjax.training.train_many`) trains M models with one recipe in one
XLA program.

Losses see a :class:`LossContext` so that defenses that need more than ``(logits, labels)``
(RelaxLoss: the epoch; Weighted Smoothing: a key and per-example noise scales; padded rows of a
static-shape batch: a mask) share one signature::

    loss(logits [B, C], labels [B], ctx: LossContext) -> per-example loss [B]

The engine reduces with ``sum(loss * ctx.where) / sum(ctx.where)``.

The authors' per-dataset settings are the spec tables of :mod:`hampjax.training.presets`;
:func:`undefended_recipe`, :func:`hamp_recipe`, :func:`relaxloss_recipe`,
:func:`weighted_smoothing_recipe`, :func:`label_smoothing_recipe` and :func:`trust_recipe`
build them, with overrides:

>>> r = hamp_recipe("purchase100", epochs=3)
>>> r.config["optimizer"]["learning_rate"], r.config["schedule"]["milestones"], r.epochs
(0.5, [60, 90, 150], 3)
>>> r.replace(**{"optimizer.learning_rate": 0.1}).spec.optimizer.learning_rate
0.1
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hampjax import validation
from hampjax.data import DATASETS  # the one list of datasets (re-exported here)
from hampjax.defenses.advreg import (
    InferenceModel,
    advreg_penalty,
    inference_scores,
    init_inference_model,
)
from hampjax.defenses.weighted_smoothing import (
    WS_NOISE_START_EPOCH,
    ws_noise_scale,
    ws_sample_scores,
)
from hampjax.training.presets import PRESETS, preset_spec
from hampjax.training.spec import (
    DEFENSES,
    AdversarySpec,
    ExampleStateSpec,
    OptimizerSpec,
    RecipeSpec,
    ScheduleSpec,
)

__all__ = [
    "LossContext",
    "Recipe",
    "Adversary",
    "ExampleStateFn",
    "DATASETS",
    "build_recipe",
    "step_schedule",
    "exponential_schedule",
    "cosine_schedule",
    "sgd",
    "adam",
    "undefended_recipe",
    "advreg_recipe",
    "hamp_recipe",
    "relaxloss_recipe",
    "weighted_smoothing_recipe",
    "label_smoothing_recipe",
    "trust_recipe",
    "TRUST_TRAINING_VARIANTS",
    "ws_example_state",
]

TRUST_TRAINING_VARIANTS = tuple(PRESETS["trust"])


class LossContext(NamedTuple):
    """What a recipe's loss may use besides logits and labels (one model, one batch).

    Attributes:
      epoch: int32 scalar, 0-based epoch number.
      key: PRNG key for this model and step (fresh every step).
      where: bool ``[B]``, False for padding rows that must contribute nothing.
      example_state: float32 ``[B]`` per-example values gathered for this batch
        (Weighted Smoothing's noise scales; zeros for recipes that do not use it).
      targets: ``[B, C]`` per-example targets gathered for this batch from
        ``train_many(..., targets=[M, N, C])`` (distillation: the teacher's logits), or None
        when the run has none (:attr:`~hampjax.training.spec.DefenseKind.targets`).
    """

    epoch: jax.Array
    key: jax.Array
    where: jax.Array
    example_state: jax.Array
    targets: jax.Array | None = None


LossFn = Callable[[jax.Array, jax.Array, LossContext], jax.Array]
# (eval-mode logits of all candidates [N, C], labels [N], keep row [N], epoch) -> state [N]
ExampleStateFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]
OptimizerFactory = Callable[[Any], optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class Adversary:
    """AdvReg's inference model as the engine runs it (built from ``spec.adversary``).

    Attributes:
      spec: the :class:`~hampjax.training.spec.AdversarySpec` (``kind="advreg"``).
      model: the :class:`hampjax.defenses.advreg.InferenceModel`.
      optimizer: its optax optimizer (Adam at ``spec.attack_learning_rate``, constant).
    """

    spec: AdversarySpec
    model: InferenceModel
    optimizer: optax.GradientTransformation

    def init(self, key: jax.Array, num_classes: int) -> dict:
        """The inference model's variables for ``num_classes`` classes."""
        return init_inference_model(self.model, key, num_classes)

    def scores(self, variables: Any, logits: jax.Array, labels: jax.Array) -> jax.Array:
        """``h(f(x), y)`` ``[B]`` from the classifier's logits ``[B, C]``."""
        return inference_scores(self.model, variables, logits, labels,
                                attack_input=self.spec.attack_input)

    def penalized(self, loss: "LossFn", variables: Any) -> "LossFn":
        """The classifier's AdvReg loss: ``loss`` plus ``lambda (h - 0.5)`` per example, with
        the inference model's ``variables`` held fixed (their mean over a batch of members
        is the HAMP code's ``CE + lambda (mean h - 0.5)``)."""
        variables = jax.lax.stop_gradient(variables)

        def penalized_loss(logits, labels, ctx):
            scores = self.scores(variables, logits, labels)
            return loss(logits, labels, ctx) + advreg_penalty(scores, self.spec.weight)

        return penalized_loss


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train one model (the engine trains many with the same recipe).

    Made by :func:`build_recipe` from :attr:`spec`; every other attribute is derived from it.

    Attributes:
      spec: the :class:`~hampjax.training.spec.RecipeSpec` (plain data).
      loss: per-example loss ``(logits, labels, ctx) -> [B]``.
      optimizer: factory ``learning_rate -> optax.GradientTransformation``; the engine wraps it
        in ``optax.inject_hyperparams`` and sets the learning rate every epoch.
      learning_rate: ``epoch (int32 array) -> learning rate``; traceable (no Python branching).
      example_state: optional per-epoch, per-example state computed from an eval-mode pass over
        all candidates at the start of each epoch (Weighted Smoothing's noise scales).
      adversary: AdvReg's inference model (:class:`Adversary`) for
        ``spec.adversary.kind="advreg"``, else None; the engine then runs the game of
        :mod:`hampjax.training.advreg`.

    ``name``, ``epochs``, ``batch_size``, ``selection``, ``min_improvement``, ``shuffle`` and
    ``reset_optimizer_each_epoch`` read the spec; ``config`` is ``spec.to_dict()``, saved with
    runs and hashed into their fingerprints.
    """

    spec: RecipeSpec
    loss: LossFn
    optimizer: OptimizerFactory
    learning_rate: Callable[[jax.Array], jax.Array]
    example_state: ExampleStateFn | None = None
    adversary: Adversary | None = None

    def __post_init__(self):
        if not isinstance(self.spec, RecipeSpec):
            raise ValueError(f"spec must be a RecipeSpec, got {type(self.spec).__name__}")

    name = property(lambda self: self.spec.name)
    epochs = property(lambda self: self.spec.epochs)
    batch_size = property(lambda self: self.spec.batch_size)
    selection = property(lambda self: self.spec.selection)
    min_improvement = property(lambda self: self.spec.min_improvement)
    shuffle = property(lambda self: self.spec.shuffle)
    reset_optimizer_each_epoch = property(lambda self: self.spec.reset_optimizer_each_epoch)

    @property
    def config(self) -> dict[str, Any]:
        """The spec as nested plain JSON data (:meth:`RecipeSpec.to_dict`)."""
        return self.spec.to_dict()

    def replace(self, **changes: Any) -> "Recipe":
        """``build_recipe(self.spec.replace(**changes))``: dotted keys allowed, e.g.
        ``recipe.replace(epochs=5, **{"optimizer.learning_rate": 0.1})``."""
        return build_recipe(self.spec.replace(**changes))


# ----------------------------------------------------------------------------------------------
# Schedules and optimizers (factories of learning_rate, as inject_hyperparams needs).


def step_schedule(base: float, milestones: tuple[int, ...], factor: float = 0.1):
    """``base * factor ** (number of milestones <= epoch)``: lr x0.1 at the start of each
    milestone epoch (PyTorch MultiStepLR)."""
    bounds = np.asarray(milestones, np.int32).reshape(-1)  # NumPy: no device work at import

    def schedule(epoch):
        passed = jnp.sum(jnp.asarray(epoch, jnp.int32) >= bounds)
        return base * factor ** passed.astype(jnp.float32)

    return schedule


def exponential_schedule(base: float, decay_per_epoch: float):
    """``base * decay_per_epoch ** epoch`` (Weighted Smoothing's per-epoch decay)."""

    def schedule(epoch):
        return base * decay_per_epoch ** jnp.asarray(epoch, jnp.float32)

    return schedule


def cosine_schedule(base: float, period: int):
    """``base * 0.5 * (1 + cos(pi * epoch / period))`` (the HAMP authors' DP-SGD schedule,
    ``period = epochs + 1``, so the last epoch keeps a small positive rate).

    Example:
      >>> [round(float(cosine_schedule(1.0, 4)(e)), 4) for e in range(4)]
      [1.0, 0.8536, 0.5, 0.1464]
    """

    def schedule(epoch):
        angle = jnp.pi * jnp.asarray(epoch, jnp.float32) / period
        return base * 0.5 * (1.0 + jnp.cos(angle))

    return schedule


def sgd(momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
        clip_norm: float | None = None):
    """SGD with coupled (L2-style, PyTorch) weight decay: decay is added to the gradient."""

    def make(learning_rate):
        parts = [optax.clip_by_global_norm(clip_norm)] if clip_norm is not None else []
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))
        return optax.chain(*parts)

    return make


def adam(weight_decay: float = 0.0, clip_norm: float | None = None, *, b1: float = 0.9,
         b2: float = 0.999, eps: float = 1e-8, coupled_weight_decay: bool = True):
    """Adam with coupled weight decay (PyTorch ``Adam(weight_decay=...)``), optional clipping;
    AdamW (``optax.adamw``) with ``coupled_weight_decay=False``."""

    def make(learning_rate):
        parts = []
        if clip_norm is not None:
            parts.append(optax.clip_by_global_norm(clip_norm))
        if not coupled_weight_decay:
            parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps,
                                     weight_decay=weight_decay))
            return optax.chain(*parts)
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))
        return optax.chain(*parts)

    return make


def ws_example_state(
    *,
    score: str = "mentr",
    normalization: str = "zscore",
    weight: str = "one_minus_z",
    start_epoch: int = WS_NOISE_START_EPOCH,
) -> ExampleStateFn:
    """Per-epoch Weighted Smoothing noise scales from the model's own members (authors' code).

    Before ``start_epoch`` the scales are 0 (no noise, as in the authors' code).
    """

    def state(logits, labels, keep_row, epoch):
        scores = ws_sample_scores(logits, labels, score=score)
        scale = ws_noise_scale(scores, labels, logits.shape[-1], normalization=normalization,
                               weight=weight, where=keep_row)
        return jnp.where(epoch >= start_epoch, scale, jnp.zeros_like(scale))

    return state


# ----------------------------------------------------------------------------------------------
# Spec -> callables. Each part is cached on the settings it depends on, so equal settings give
# the identical functions (the engine reuses its compiled programs across equal recipes, and
# across recipes that differ only in epochs or name).


@functools.cache
def _loss(defense) -> LossFn:
    return DEFENSES[defense.kind].loss(defense)


@functools.cache
def _optimizer(spec: OptimizerSpec) -> OptimizerFactory:
    if spec.kind == "sgd":
        return sgd(spec.momentum, spec.weight_decay, spec.nesterov, clip_norm=spec.clip_norm)
    return adam(spec.weight_decay, spec.clip_norm, b1=spec.b1, b2=spec.b2, eps=spec.eps,
                coupled_weight_decay=spec.coupled_weight_decay)


@functools.cache
def _learning_rate(base: float, spec: ScheduleSpec, epochs: int
                   ) -> Callable[[jax.Array], jax.Array]:
    if spec.kind == "cosine":
        return cosine_schedule(base, epochs + 1)
    if spec.kind == "exponential":
        return exponential_schedule(base, spec.decay)
    return step_schedule(base, spec.milestones, spec.factor)  # "constant": no milestones


@functools.cache
def _example_state(spec: ExampleStateSpec) -> ExampleStateFn | None:
    if spec.kind == "none":
        return None
    return ws_example_state(score=spec.score, normalization=spec.normalization,
                            weight=spec.weight, start_epoch=spec.start_epoch)


@functools.cache
def _adversary(spec: AdversarySpec) -> Adversary | None:
    if spec.kind == "none":
        return None
    model = InferenceModel(arch=spec.attack_arch, hidden=spec.attack_hidden)
    return Adversary(spec, model, optax.adam(spec.attack_learning_rate))


def build_recipe(spec: RecipeSpec) -> Recipe:
    """The recipe (loss, optimizer, schedule, example state) that ``spec`` describes.

    The only place recipe callables are made. The optimizer chain is
    ``[clip_by_global_norm] + [add_decayed_weights] + [sgd | adam]`` (or ``adamw`` for
    decoupled decay); equal specs give identical callables. With AdvReg's
    ``adversary.double_decay`` a step schedule decays by ``factor ** 2`` per milestone.

    Raises:
      ValueError: if ``spec`` is not a :class:`RecipeSpec`.
    """
    if not isinstance(spec, RecipeSpec):
        raise ValueError(f"spec must be a RecipeSpec, got {type(spec).__name__}")
    # The factory takes the learning rate as an argument: the spec's value only sets the schedule.
    optimizer = _optimizer(dataclasses.replace(spec.optimizer, learning_rate=1.0))
    schedule = spec.schedule
    if spec.adversary.kind == "advreg" and spec.adversary.double_decay and schedule.kind == "step":
        schedule = dataclasses.replace(schedule, factor=schedule.factor ** 2)  # HAMP code
    return Recipe(spec=spec, loss=_loss(spec.defense), optimizer=optimizer,
                  learning_rate=_learning_rate(spec.optimizer.learning_rate, schedule,
                                               spec.epochs if schedule.kind == "cosine" else 0),
                  example_state=_example_state(spec.example_state),
                  adversary=_adversary(spec.adversary))


# ----------------------------------------------------------------------------------------------
# The authors' recipes: presets plus overrides (spec field names, dotted keys allowed).


def _preset(defense: str, key: str, changes: dict[str, Any], overrides: dict[str, Any]) -> Recipe:
    return build_recipe(preset_spec(defense, key, **{**changes, **overrides}))


def undefended_recipe(dataset: str, **overrides: Any) -> Recipe:
    """Plain cross-entropy with the authors' per-dataset optimizer (HAMP code).

    Purchase: Adam 5e-5, wd 1e-3, 100 epochs, batch 32; Texas: Adam 5e-4, 20 epochs;
    Location: SGD 0.5, 50 epochs, batch 64; CIFAR: SGD 0.5 momentum 0.9 wd 1e-4, lr /10 at
    30/60/90, 100 epochs, batch 64. ``digits`` (the offline demo set) is hampjax's own choice.
    ``overrides`` replace spec fields (e.g. ``epochs=5``).
    """
    validation.check_choice("dataset", dataset, tuple(PRESETS["undefended"]))
    return _preset("undefended", dataset, {}, overrides)


def hamp_recipe(
    dataset: str,
    *,
    entropy_threshold: float | None = None,
    alpha: float | None = None,
    method: str = "grid",
    kl_reduction: str = "mean_over_classes",
    **overrides: Any,
) -> Recipe:
    """HAMP with the authors' settings (HAMP paper Sec. III-C, authors' code).

    SGD momentum 0.99, coupled weight decay 1e-5, lr x0.1 at epochs 60, 90 and 150, best
    validation accuracy (CIFAR: must improve by more than 1 point), fixed batch order, output
    modification with a pool of 1000. The loss uses ``kl_reduction="mean_over_classes"`` by
    default because the paper's alpha values were tuned with it (effective weight alpha * k).
    Pass ``reset_optimizer_each_epoch=True`` to reproduce the authors' per-epoch optimizer
    re-creation.
    """
    validation.check_choice("dataset", dataset, tuple(PRESETS["hamp"]))
    changes = {"defense.method": method, "defense.kl_reduction": kl_reduction}
    if entropy_threshold is not None:
        changes["defense.entropy_threshold"] = entropy_threshold
    if alpha is not None:
        changes["defense.alpha"] = alpha
    return _preset("hamp", dataset, changes, overrides)


def label_smoothing_recipe(
    dataset: str, *, entropy_threshold: float = 0.05, **overrides: Any
) -> Recipe:
    """The HAMP authors' label-smoothing baseline: HAMP's soft labels with a small
    ``entropy_threshold`` (0.05 -> p = 0.97 for 100 classes), no entropy regularizer, trained
    with the undefended optimizer."""
    validation.check_choice("dataset", dataset, tuple(PRESETS["label_smoothing"]))
    return _preset("label_smoothing", dataset,
                   {"defense.entropy_threshold": entropy_threshold}, overrides)


def trust_recipe(
    variant: str,
    *,
    learning_rate: float = 0.01,
    epochs: int = 100,
    batch_size: int = 64,
    smoothing: float = 0.0083,
    weight_decay: float = 3e-4,
    **overrides: Any,
) -> Recipe:
    """The "To Trust or Not To Trust" CIFAR-10 training recipes (Sec. 4.1).

    Adam (lr 0.01 for ResNet-18, 0.001 for SalemCNN), batch 64, 100 epochs, cross-entropy,
    shuffled batches, last-epoch model. ``variant``:

    * ``"standard"``: plain cross-entropy.
    * ``"label_smoothing"``: cross-entropy against ``optax.smooth_labels`` targets with
      ``smoothing`` (0.0083 for CIFAR-10).
    * ``"l2"``: coupled weight decay ``weight_decay`` (3e-4; added to the gradient before Adam).

    Temperature scaling and the last-layer Laplace approximation are post-hoc transforms of
    the standard model (:func:`hampjax.defenses.temperature_scale`,
    :func:`hampjax.defenses.fit_last_layer_laplace`), not recipes.
    """
    validation.check_choice("variant", variant, TRUST_TRAINING_VARIANTS)
    validation.check_positive("learning_rate", learning_rate)
    validation.check_in_range("smoothing", smoothing, 0.0, 1.0, high_inclusive=False)
    validation.check_nonnegative("weight_decay", weight_decay)
    changes = {"optimizer.learning_rate": learning_rate, "epochs": epochs,
               "batch_size": batch_size}
    if variant == "label_smoothing":
        changes["defense.smoothing"] = smoothing
    if variant == "l2":
        changes["optimizer.weight_decay"] = weight_decay
    return _preset("trust", variant, changes, overrides)


def relaxloss_recipe(
    preset: str, *, alpha: float | None = None, stop_gradient: bool = False, **overrides: Any
) -> Recipe:
    """RelaxLoss with the authors' hyperparameters (their configs).

    ``preset`` is a key of :data:`hampjax.training.presets.RELAXLOSS` (e.g.
    ``"purchase100_fc"``). SGD momentum 0.9, coupled wd, lr x0.1 at the preset's milestones,
    shuffled batches, last-epoch model.
    """
    validation.check_choice("preset", preset, tuple(PRESETS["relaxloss"]))
    changes: dict[str, Any] = {"defense.stop_gradient": stop_gradient}
    if alpha is not None:
        changes["defense.alpha"] = alpha
    return _preset("relaxloss", preset, changes, overrides)


def weighted_smoothing_recipe(
    *,
    sigma: float,
    epochs: int = 100,
    dataset: str = "cifar10",
    score: str = "mentr",
    normalization: str = "zscore",
    weight: str = "one_minus_z",
    noise_on: str = "probs",
    use_margin: bool = True,
    **overrides: Any,
) -> Recipe:
    """Weighted Smoothing (its code): Adam with per-epoch exponential lr decay, grad-norm clip 10,
    noisy-probability loss with per-example noise scales refreshed every epoch.

    ``dataset`` picks the authors' optimizer settings (:data:`hampjax.training.presets.
    WEIGHTED_SMOOTHING`: ``"cifar10"`` Adam 0.022 x0.991 per epoch, batch 128; ``"ham10000"``
    Adam 0.004 x0.992, batch 64).
    """
    validation.check_choice("dataset", dataset, tuple(PRESETS["weighted_smoothing"]))
    changes = {"defense.sigma": sigma, "defense.noise_on": noise_on,
               "defense.use_margin": use_margin, "epochs": epochs,
               "example_state.score": score, "example_state.normalization": normalization,
               "example_state.weight": weight}
    return _preset("weighted_smoothing", dataset, changes, overrides)


def advreg_recipe(dataset_or_preset: str, *, weight: float | None = None,
                  **overrides: Any) -> Recipe:
    """AdvReg (Nasr et al. 2018) with the authors' settings
    (:data:`hampjax.training.presets.ADVREG`).

    ``dataset_or_preset``: a HAMP dataset (``"purchase100"``, ... ``"digits"``; HAMP App. A
    and code: inference model on raw logits, Adam 1e-4, rounds of 52 + 2 steps, lr decayed
    twice per milestone, best validation epoch), ``"texas100_authors_shadow"`` (the authors'
    Texas shadows), or a RelaxLoss preset (``"purchase100_fc"``, ...; lambda 1, sorted
    logits). ``weight`` sets lambda; ``overrides`` replace spec fields
    (``**{"adversary.reference": "disjoint"}``).

    >>> r = advreg_recipe("purchase100", epochs=3)
    >>> r.spec.adversary.weight, r.spec.adversary.attack_steps, round(float(r.learning_rate(25)), 9)
    (3.0, 52, 5e-06)
    """
    validation.check_choice("dataset_or_preset", dataset_or_preset, tuple(PRESETS["advreg"]))
    changes = {} if weight is None else {"adversary.weight": weight}
    return _preset("advreg", dataset_or_preset, changes, overrides)
