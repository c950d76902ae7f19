"""What an evaluation is given: the defense, the data and the attack settings.

:class:`Defense` names a training recipe; HAMP's test-time output modification comes from the
recipe's spec (``recipe.spec.output``, an ``OutputSpec``), so a defense is fully described by
its recipe. :class:`EvalData` holds the candidate pool and the held-out set,
:class:`AttackSettings` the attack hyperparameters, and :func:`attack_roles` splits the
target's members and non-members into the attacker's known and evaluated parts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from hampjax import validation
from hampjax.training import Recipe

__all__ = ["BOUNDARY_ATTACKS", "Defense", "EvalData", "AttackSettings", "attack_roles",
           "output_config", "snapshot_name", "snapshot_spec", "model_record"]

BOUNDARY_ATTACKS = ("auto", "cw_l2", "hop_skip_jump")
"""Values of :attr:`AttackSettings.boundary_attack`."""

def output_config(recipe: Recipe) -> dict[str, Any]:
    """The recipe's test-time output transform, ``recipe.spec.output``, as a plain dict.

    Keys: ``kind`` (``"none"``, ``"hamp"`` or ``"memguard"``), ``pool_size``,
    ``random_inputs`` (``"dataset"``: :attr:`EvalData.random_inputs`), ``break_ties`` (HAMP),
    ``memguard`` (MemGuard's settings, :class:`~hampjax.training.MemGuardSpec`).

    Example:
      >>> from hampjax.training import hamp_recipe
      >>> output_config(hamp_recipe("digits"))["kind"]
      'hamp'
    """
    return recipe.spec.output.to_dict()


def snapshot_name(name: str, epochs: int) -> str:
    """The result name of a defense's early-stopping snapshot after ``epochs`` epochs.

    Example:
      >>> snapshot_name("early_stopping", 5)
      'early_stopping_e5'
    """
    return f"{name}_e{int(epochs)}"


def snapshot_spec(spec: Any, epochs: int) -> Any:
    """The recipe an early-stopping snapshot after ``epochs`` epochs ran: ``spec`` with
    ``epochs`` epochs and no early-stopping epochs (the same schedule; DP-SGD's epsilon is
    accounted over these epochs' steps only).

    Example:
      >>> from hampjax.training import preset_spec
      >>> spec = preset_spec("early_stopping", "digits")
      >>> snapshot_spec(spec, 5).epochs, snapshot_spec(spec, 5).early_stopping_epochs
      (5, ())
    """
    validation.check_in_range("epochs", validation.check_positive_int("epochs", epochs), 1,
                              spec.epochs, high_inclusive=True)
    return spec.replace(epochs=int(epochs), early_stopping_epochs=())


def model_record(module: Any) -> dict[str, Any]:
    """A Flax module as plain JSON data: its class and fields (callables by name).

    Example:
      >>> from hampjax.models import get_model
      >>> model_record(get_model("fc", 3, hidden_sizes=(8,), head_dropout_rate=0.5))
      {'class': 'FCNet', 'num_classes': 3, 'hidden_sizes': [8], 'activation': 'tanh', 'head_dropout_rate': 0.5}
    """
    def plain(value):
        if isinstance(value, (bool, int, float, str)) or value is None:
            return value
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return getattr(value, "__name__", None) or repr(value)

    record = {"class": type(module).__name__}
    if dataclasses.is_dataclass(module):
        for field in dataclasses.fields(module):
            if field.init and field.name not in ("parent", "name"):
                record[field.name] = plain(getattr(module, field.name))
    return record


@dataclasses.dataclass(frozen=True)
class Defense:
    """A defense to evaluate: a training recipe whose spec also names the output transform.

    Attributes:
      name: report name (e.g. ``"hamp"``).
      recipe: the training recipe (target and shadows use the same one: adaptive attacker).
        ``recipe.spec.output`` (kind ``"hamp"``) applies HAMP's output modification to every
        model's outputs; kind ``"memguard"`` post-processes every model's logits with
        MemGuard (:func:`~hampjax.evaluation.steps.memguard_outputs`).
      shadow_recipe: ``None`` (the default) for an adaptive attacker whose shadows use ``recipe``;
        otherwise the recipe of a non-adaptive attacker's shadows (e.g. undefended training).
        The target is then trained on its own with ``recipe``. Not combinable with output
        modification (the attacker would not know the defense) or early stopping.
      model: the Flax module this defense trains (the target and every shadow, a
        non-adaptive attacker's too: the architecture is public), or ``None`` (the default)
        for the evaluation's model. A model setting that is part of the defense, such
        as RelaxLoss's dropout baseline (``head_dropout_rate=0.5``), lives here; the
        defense's config records it (``config["model"]``, :func:`model_record`).

    ``recipe.spec.early_stopping_epochs`` (early stopping as a defense): the evaluation also
    reports the models after each of those epoch counts ``E``, every one as its own result
    :func:`snapshot_name` ``(name, E)`` (``config["early_stopping_epoch"] = E``), the shadows'
    snapshots after ``E`` epochs being the attacker's shadows.

    Raises:
      ValueError: if ``shadow_recipe`` is given and the recipe modifies its outputs or has
        early-stopping epochs.
    """

    name: str
    recipe: Recipe
    shadow_recipe: Recipe | None = None
    model: Any = None

    def __post_init__(self):
        if self.shadow_recipe is not None and self.output["kind"] != "none":
            raise ValueError("shadow_recipe (a non-adaptive attacker) cannot be combined with "
                             "an output transform (recipe.spec.output.kind != 'none')")
        if self.shadow_recipe is not None and self.recipe.spec.early_stopping_epochs:
            raise ValueError("shadow_recipe (a non-adaptive attacker) cannot be combined with "
                             "early stopping (recipe.spec.early_stopping_epochs): the "
                             "attacker's shadows are the adaptive shadows' snapshots")

    @property
    def result_names(self) -> tuple[str, ...]:
        """The names of this defense's results: its own, then one per early-stopping epoch."""
        return (self.name,) + tuple(snapshot_name(self.name, e)
                                    for e in self.recipe.spec.early_stopping_epochs)

    @property
    def output(self) -> dict[str, Any]:
        """The output transform, :func:`output_config` of the recipe."""
        return output_config(self.recipe)


@dataclasses.dataclass(frozen=True)
class EvalData:
    """Data for an evaluation (inputs already normalized).

    Attributes:
      x, y: the candidate pool ``[N, ...]`` and labels; the keep matrix decides which models
        train on which candidates.
      x_test, y_test: held-out examples no model trains on: the target's test accuracy and
        RMIA's population set.
      random_inputs: ``(key, n) -> inputs`` shaped like ``x`` (HAMP's random inputs), needed
        with output modification.
      image_shape: when ``x`` holds flattened images, their ``(H, W, C)`` shape (enables the
        augmentation attack); ``None`` otherwise.
      binary_features: ``x`` holds 0/1 features (enables the bit-flip noise attack).
      x_val, y_val: optional validation data for ``selection="best_val"`` recipes.
      normalization: ``(mean, std)`` per channel (or one value each) with which the inputs
        were normalized from [0, 1], ``x = (v - mean) / std``; None for inputs already in
        [0, 1] (binary features). DMP's GANs work on ``v``.
      x_reference: optional unlabeled inputs shaped like ``x``, disjoint from ``x``, ``x_test``
        and ``x_val``: DMP's given reference set (``reference.kind="given"``; a public /
        held-out set or :func:`hampjax.training.load_reference_npy` of a synthetic one).
    """

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    random_inputs: Callable[[jax.Array, int], Any] | None = None
    image_shape: tuple[int, ...] | None = None
    binary_features: bool = False
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    x_reference: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """Attack hyperparameters (defaults: the papers'; smaller values for quick runs)."""

    nn_epochs: int = 200
    top3_max_epochs: int = 200
    noise_flip_rate: float = 0.01
    noise_variants: int = 100
    augmentation_max_shift: int = 1
    rmia_a: float = 0.3
    # Boundary distance (the smallest label-flipping L2 perturbation) on this many evaluated
    # members and as many non-members (0 = skip). boundary_attack: "auto" (the HAMP paper's
    # choice: white-box CW-L2 for images, i.e. EvalData.image_shape set or 4-D inputs,
    # decision-based HopSkipJump otherwise), "cw_l2" or "hop_skip_jump".
    boundary_samples: int = 0
    boundary_attack: str = "auto"
    # HopSkipJump: iterations x evaluations per iteration (queries per example).
    boundary_iterations: int = 20
    boundary_evals: int = 100
    # CW-L2: Adam steps per binary-search round, learning rate, rounds of the search over c.
    boundary_cw_steps: int = 100
    boundary_cw_lr: float = 0.01
    boundary_cw_search_steps: int = 5
    # Shokri et al.: per-class attack MLPs trained on the shadows' outputs (Adam steps,
    # "raw" softmax vector as in the paper or "sorted").
    shokri_steps: int = 1000
    shokri_features: str = "raw"
    # Song & Mittal's privacy risk score: histogram bins per class of the shadows' IN/OUT
    # modified-entropy scores.
    risk_score_bins: int = 30
    # Known-train / known-val / evaluated fractions of members and of non-members (HAMP code:
    # 45/5/50; Location30 30/20/50).
    role_fractions: tuple[float, float, float] = (0.45, 0.05, 0.5)

    def __post_init__(self):
        validation.check_choice("boundary_attack", self.boundary_attack, BOUNDARY_ATTACKS)
        validation.check_choice("shokri_features", self.shokri_features, ("raw", "sorted"))
        for name in ("boundary_iterations", "boundary_evals", "boundary_cw_steps",
                     "boundary_cw_search_steps", "shokri_steps", "risk_score_bins"):
            validation.check_positive_int(name, getattr(self, name))
        validation.check_positive_int("boundary_samples", self.boundary_samples, minimum=0)
        validation.check_positive("boundary_cw_lr", self.boundary_cw_lr)
        fractions = tuple(float(f) for f in self.role_fractions)
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
            raise ValueError("role_fractions must be three positive fractions summing to 1, got "
                             f"{self.role_fractions!r}")


def attack_roles(is_member: np.ndarray, *, seed: int, fractions=(0.45, 0.05, 0.5)) -> np.ndarray:
    """Split members and non-members each into known-train (0), known-val (1), evaluated (2).

    Returns an int8 role per example; the split is seeded and stratified by membership.

    Example:
      >>> roles = attack_roles(np.arange(200) % 2 == 0, seed=0)
      >>> np.bincount(roles).tolist()
      [90, 10, 100]
    """
    is_member = np.asarray(is_member, bool)
    roles = np.empty(is_member.shape, np.int8)
    rng = np.random.default_rng(seed)
    for side in (True, False):
        idx = rng.permutation(np.flatnonzero(is_member == side))
        cut1 = int(round(fractions[0] * len(idx)))
        cut2 = cut1 + int(round(fractions[1] * len(idx)))
        roles[idx[:cut1]], roles[idx[cut1:cut2]], roles[idx[cut2:]] = 0, 1, 2
    return roles
