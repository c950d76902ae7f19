"""Training recipes: loss + optimizer + schedule + epochs + batch size + model selection.

A :class:`Recipe` holds everything that changes what a model learns, and nothing about how fast
it runs (devices, chunk sizes and dtypes live in the engine's arguments). The engine
(:func:`hampjax.training.train_many`) trains M models with one recipe in one XLA program.

Losses see a :class:`LossContext` so that defenses that need more than ``(logits, labels)``
(RelaxLoss: the epoch; Weighted Smoothing: a key and per-example noise scales; padded rows of a
static-shape batch: a mask) share one signature::

    loss(logits [B, C], labels [B], ctx: LossContext) -> per-example loss [B]

The engine reduces with ``sum(loss * ctx.where) / sum(ctx.where)``.

Presets reproduce the authors' per-dataset settings (spec: hamp-relaxloss.md 1.3, 5.2;
weighted-smoothing-trust.md A.3): :func:`undefended_recipe`, :func:`hamp_recipe`,
:func:`relaxloss_recipe`, :func:`weighted_smoothing_recipe`, :func:`label_smoothing_recipe`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hampjax import validation
from hampjax.defenses.baselines import _cross_entropy as _ce  # jitted core, no re-validation
from hampjax.defenses.baselines import _label_smoothing
from hampjax.defenses.hamp import _hamp_loss, _soft_labels
from hampjax.defenses.relaxloss import RELAXLOSS_PRESETS, relaxloss_loss
from hampjax.defenses.weighted_smoothing import (
    WS_CIFAR10_HPARAMS,
    WS_NOISE_START_EPOCH,
    weighted_smoothing_loss,
    ws_noise_scale,
    ws_sample_scores,
)

__all__ = [
    "LossContext",
    "Recipe",
    "ExampleStateFn",
    "DATASETS",
    "step_schedule",
    "exponential_schedule",
    "sgd",
    "adam",
    "undefended_recipe",
    "hamp_recipe",
    "relaxloss_recipe",
    "weighted_smoothing_recipe",
    "label_smoothing_recipe",
    "trust_recipe",
    "TRUST_TRAINING_VARIANTS",
    "ws_example_state",
]

DATASETS = ("purchase100", "texas100", "location30", "cifar10", "cifar100", "digits")


class LossContext(NamedTuple):
    """What a recipe's loss may use besides logits and labels (one model, one batch).

    Attributes:
      epoch: int32 scalar, 0-based epoch number.
      key: PRNG key for this model and step (fresh every step).
      where: bool ``[B]``, False for padding rows that must contribute nothing.
      example_state: float32 ``[B]`` per-example values gathered for this batch
        (Weighted Smoothing's noise scales; zeros for recipes that do not use it).
    """

    epoch: jax.Array
    key: jax.Array
    where: jax.Array
    example_state: jax.Array


LossFn = Callable[[jax.Array, jax.Array, LossContext], jax.Array]
# (eval-mode logits of all candidates [N, C], labels [N], keep row [N], epoch) -> state [N]
ExampleStateFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]
OptimizerFactory = Callable[[Any], optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train one model (the engine trains many with the same recipe).

    Attributes:
      name: short identifier, used in run directories and reports.
      loss: per-example loss ``(logits, labels, ctx) -> [B]``.
      optimizer: factory ``learning_rate -> optax.GradientTransformation``; the engine wraps it
        in ``optax.inject_hyperparams`` and sets the learning rate every epoch.
      learning_rate: ``epoch (int32 array) -> learning rate``; traceable (no Python branching).
      epochs: number of epochs >= 1.
      batch_size: minibatch size >= 1. The last partial batch of an epoch is kept.
      selection: ``"last"`` (the final epoch's model) or ``"best_val"`` (the epoch with the
        best validation accuracy; needs validation data).
      min_improvement: for ``"best_val"``, a new epoch replaces the best one only if its
        validation accuracy is higher by more than this (fraction; HAMP's CIFAR rule is 0.01).
      reset_optimizer_each_epoch: re-initialize the optimizer state (momentum) at the start of
        every epoch (the HAMP authors' code re-creates its optimizer per epoch).
      shuffle: ``"every_epoch"`` or ``"once"`` (the HAMP authors walk one fixed order).
      example_state: optional per-epoch, per-example state computed from an eval-mode pass over
        all candidates at the start of each epoch (Weighted Smoothing's noise scales).
      config: the hyperparameters as plain data, saved with runs and hashed into cache keys.
    """

    name: str
    loss: LossFn
    optimizer: OptimizerFactory
    learning_rate: Callable[[jax.Array], jax.Array]
    epochs: int
    batch_size: int
    selection: Literal["last", "best_val"] = "last"
    min_improvement: float = 0.0
    reset_optimizer_each_epoch: bool = False
    shuffle: Literal["every_epoch", "once"] = "every_epoch"
    example_state: ExampleStateFn | None = None
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        validation.check_positive_int("epochs", self.epochs)
        validation.check_positive_int("batch_size", self.batch_size)
        validation.check_choice("selection", self.selection, ("last", "best_val"))
        validation.check_choice("shuffle", self.shuffle, ("every_epoch", "once"))
        validation.check_in_range("min_improvement", self.min_improvement, 0.0, 1.0)

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with some fields changed (e.g. fewer epochs for a smoke test).

        ``config`` (when given) replaces the recorded hyperparameters; changed ``epochs``,
        ``batch_size``, ``selection`` or ``shuffle`` are recorded in it as well.
        """
        config = dict(changes.pop("config", self.config))
        for k in ("epochs", "batch_size", "selection", "shuffle"):
            if k in changes:
                config[k] = changes[k]
        return dataclasses.replace(self, config=config, **changes)


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


def sgd(momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
    """SGD with coupled (L2-style, PyTorch) weight decay: decay is added to the gradient."""

    def make(learning_rate):
        parts = [optax.add_decayed_weights(weight_decay)] if weight_decay else []
        parts.append(optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))
        return optax.chain(*parts)

    return make


def adam(weight_decay: float = 0.0, clip_norm: float | None = None):
    """Adam with coupled weight decay (PyTorch ``Adam(weight_decay=...)``), optional clipping."""

    def make(learning_rate):
        parts = []
        if clip_norm is not None:
            parts.append(optax.clip_by_global_norm(clip_norm))
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.adam(learning_rate))
        return optax.chain(*parts)

    return make


# ----------------------------------------------------------------------------------------------
# Losses in the engine's signature. Validation happens once, when the recipe is built.


def _ce_loss(logits, labels, ctx):
    del ctx
    return _ce(logits, labels)


def _hamp_loss_fn(entropy_threshold, alpha, method, mean_over_classes):
    def loss(logits, labels, ctx):
        del ctx
        soft = _soft_labels(labels, logits.shape[-1], entropy_threshold, method)
        return _hamp_loss(logits, soft, alpha, mean_over_classes)

    return loss


_UNDEFENDED = {
    # dataset: (optimizer factory, lr schedule, epochs, batch size)
    "purchase100": (adam(weight_decay=1e-3), step_schedule(5e-5, ()), 100, 32),
    "texas100": (adam(), step_schedule(5e-4, ()), 20, 32),
    "location30": (sgd(), step_schedule(0.5, ()), 50, 64),
    "cifar10": (sgd(0.9, 1e-4), step_schedule(0.5, (30, 60, 90)), 100, 64),
    "cifar100": (sgd(0.9, 1e-4), step_schedule(0.5, (30, 60, 90)), 100, 64),
    "digits": (adam(), step_schedule(1e-3, ()), 60, 32),
}

_HAMP = {
    # dataset: (gamma, alpha, lr, epochs, batch size)
    "purchase100": (0.8, 0.01, 0.5, 200, 32),
    "texas100": (0.6, 0.01, 0.5, 100, 32),
    "location30": (0.5, 0.001, 0.5, 100, 64),
    "cifar10": (0.95, 0.001, 0.5, 200, 64),
    "cifar100": (0.5, 0.005, 1.0, 200, 64),
    "digits": (0.7, 0.01, 0.1, 60, 32),
}

def _check_dataset(dataset: str) -> None:
    validation.check_choice("dataset", dataset, DATASETS)


def undefended_recipe(dataset: str, **overrides: Any) -> Recipe:
    """Plain cross-entropy with the authors' per-dataset optimizer (spec 1.3).

    Purchase: Adam 5e-5, wd 1e-3, 100 epochs, batch 32; Texas: Adam 5e-4, 20 epochs;
    Location: SGD 0.5, 50 epochs, batch 64; CIFAR: SGD 0.5 momentum 0.9 wd 1e-4, lr /10 at
    30/60/90, 100 epochs, batch 64. ``digits`` (the offline demo set) is hampjax's own choice.
    ``overrides`` replace Recipe fields (e.g. ``epochs=5``).
    """
    _check_dataset(dataset)
    opt, lr, epochs, batch = _UNDEFENDED[dataset]
    recipe = Recipe(
        name="undefended", loss=_ce_loss, optimizer=opt, learning_rate=lr, epochs=epochs,
        batch_size=batch, selection="best_val" if dataset != "digits" else "last",
        config={"defense": "undefended", "dataset": dataset, "epochs": epochs, "batch_size": batch},
    )
    return recipe.replace(**overrides) if overrides else recipe


def hamp_recipe(
    dataset: str,
    *,
    entropy_threshold: float | None = None,
    alpha: float | None = None,
    method: str = "grid",
    kl_reduction: str = "mean_over_classes",
    **overrides: Any,
) -> Recipe:
    """HAMP with the authors' settings (spec 1.2-1.3).

    SGD momentum 0.99, coupled weight decay 1e-5, lr x0.1 at epochs 60, 90 and 150, best
    validation accuracy (CIFAR: must improve by more than 1 point), fixed batch order. The
    loss uses ``kl_reduction="mean_over_classes"`` by default because the paper's alpha values
    were tuned with it (effective weight alpha * k). Pass ``reset_optimizer_each_epoch=True``
    to reproduce the authors' per-epoch optimizer re-creation.
    """
    _check_dataset(dataset)
    gamma0, alpha0, lr, epochs, batch = _HAMP[dataset]
    gamma = gamma0 if entropy_threshold is None else entropy_threshold
    alpha = alpha0 if alpha is None else alpha
    validation.check_in_range("entropy_threshold", gamma, 0.0, 1.0)
    validation.check_nonnegative("alpha", alpha)
    validation.check_choice("method", method, ("grid", "exact"))
    validation.check_choice("kl_reduction", kl_reduction, ("sum", "mean_over_classes"))
    cifar = dataset.startswith("cifar")
    recipe = Recipe(
        name="hamp",
        loss=_hamp_loss_fn(gamma, alpha, method, kl_reduction == "mean_over_classes"),
        optimizer=sgd(0.99, 1e-5),
        learning_rate=step_schedule(lr, (60, 90, 150)),
        epochs=epochs, batch_size=batch, selection="best_val" if dataset != "digits" else "last",
        min_improvement=0.01 if cifar else 0.0, shuffle="once",
        config={"defense": "hamp", "dataset": dataset, "entropy_threshold": gamma, "alpha": alpha,
                "method": method, "kl_reduction": kl_reduction, "epochs": epochs,
                "batch_size": batch},
    )
    return recipe.replace(**overrides) if overrides else recipe


def label_smoothing_recipe(dataset: str, *, entropy_threshold: float = 0.05, **overrides: Any) -> Recipe:
    """The HAMP authors' label-smoothing baseline: HAMP's soft labels with a small
    ``entropy_threshold`` (0.05 -> p = 0.97 for 100 classes), no entropy regularizer, trained
    with the undefended optimizer."""
    _check_dataset(dataset)
    validation.check_in_range("entropy_threshold", entropy_threshold, 0.0, 1.0)
    base = undefended_recipe(dataset)
    recipe = dataclasses.replace(
        base,
        name="label_smoothing",
        loss=_hamp_loss_fn(entropy_threshold, 0.0, "grid", False),
        config={**base.config, "defense": "label_smoothing", "entropy_threshold": entropy_threshold},
    )
    return recipe.replace(**overrides) if overrides else recipe


TRUST_TRAINING_VARIANTS = ("standard", "label_smoothing", "l2")


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
    """The "To Trust or Not To Trust" CIFAR-10 training recipes (spec B.1).

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
    if variant == "label_smoothing":
        def loss(logits, labels, ctx):
            del ctx
            return _label_smoothing(logits, labels, smoothing, logits.shape[-1])
    else:
        loss = _ce_loss
    recipe = Recipe(
        name=f"trust_{variant}", loss=loss,
        optimizer=adam(weight_decay=weight_decay if variant == "l2" else 0.0),
        learning_rate=step_schedule(learning_rate, ()), epochs=epochs, batch_size=batch_size,
        selection="last",
        config={"defense": f"trust_{variant}", "learning_rate": learning_rate, "epochs": epochs,
                "batch_size": batch_size,
                "smoothing": smoothing if variant == "label_smoothing" else 0.0,
                "weight_decay": weight_decay if variant == "l2" else 0.0},
    )
    return recipe.replace(**overrides) if overrides else recipe


def relaxloss_recipe(
    preset: str, *, alpha: float | None = None, stop_gradient: bool = False, **overrides: Any
) -> Recipe:
    """RelaxLoss with the authors' hyperparameters (spec 5.2).

    ``preset`` is a key of :data:`hampjax.defenses.relaxloss.RELAXLOSS_PRESETS` (e.g.
    ``"purchase100_fc"``). SGD momentum 0.9, coupled wd, lr x0.1 at the preset's milestones,
    shuffled batches, last-epoch model.
    """
    validation.check_choice("preset", preset, tuple(RELAXLOSS_PRESETS))
    p = RELAXLOSS_PRESETS[preset]
    a = p.alpha if alpha is None else alpha
    validation.check_nonnegative("alpha", a)

    def loss(logits, labels, ctx):
        return relaxloss_loss(logits, labels, alpha=a, epoch=ctx.epoch, upper=p.upper,
                              variant=p.variant, stop_gradient=stop_gradient, where=ctx.where)

    recipe = Recipe(
        name="relaxloss", loss=loss, optimizer=sgd(p.momentum, p.weight_decay),
        learning_rate=step_schedule(p.learning_rate, tuple(p.lr_milestones), p.lr_decay),
        epochs=p.epochs, batch_size=p.batch_size, selection="last",
        config={"defense": "relaxloss", "preset": preset, "alpha": a, "upper": p.upper,
                "variant": p.variant, "stop_gradient": stop_gradient, "epochs": p.epochs,
                "batch_size": p.batch_size},
    )
    return recipe.replace(**overrides) if overrides else recipe


def ws_example_state(
    *,
    score: str = "mentr",
    normalization: str = "zscore",
    weight: str = "one_minus_z",
    start_epoch: int = WS_NOISE_START_EPOCH,
) -> ExampleStateFn:
    """Per-epoch Weighted Smoothing noise scales from the model's own members (spec A.2).

    Before ``start_epoch`` the scales are 0 (no noise, as in the authors' code).
    """

    def state(logits, labels, keep_row, epoch):
        scores = ws_sample_scores(logits, labels, score=score)
        scale = ws_noise_scale(scores, labels, logits.shape[-1], normalization=normalization,
                               weight=weight, where=keep_row)
        return jnp.where(epoch >= start_epoch, scale, jnp.zeros_like(scale))

    return state


def weighted_smoothing_recipe(
    *,
    sigma: float,
    epochs: int = 100,
    hparams=WS_CIFAR10_HPARAMS,
    score: str = "mentr",
    normalization: str = "zscore",
    weight: str = "one_minus_z",
    noise_on: str = "probs",
    use_margin: bool = True,
    **overrides: Any,
) -> Recipe:
    """Weighted Smoothing (spec A): Adam with per-epoch exponential lr decay, grad-norm clip 10,
    noisy-probability loss with per-example noise scales refreshed every epoch."""
    validation.check_nonnegative("sigma", sigma)

    def loss(logits, labels, ctx):
        return weighted_smoothing_loss(logits, labels, ctx.example_state, ctx.key, sigma=sigma,
                                       use_margin=use_margin, noise_on=noise_on)

    recipe = Recipe(
        name="weighted_smoothing", loss=loss, optimizer=adam(clip_norm=hparams.clip_norm),
        learning_rate=exponential_schedule(hparams.learning_rate, hparams.decay_per_epoch),
        epochs=epochs, batch_size=hparams.batch_size, selection="last",
        example_state=ws_example_state(score=score, normalization=normalization,
                                       weight=weight),
        config={"defense": "weighted_smoothing", "sigma": sigma, "score": score,
                "normalization": normalization, "weight": weight, "noise_on": noise_on,
                "use_margin": use_margin, "epochs": epochs, "batch_size": hparams.batch_size,
                "learning_rate": hparams.learning_rate, "decay_per_epoch": hparams.decay_per_epoch},
    )
    return recipe.replace(**overrides) if overrides else recipe
