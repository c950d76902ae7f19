"""Step 3 of the evaluation: score every attack family on the target.

Each family is a function ``AttackInputs -> {attack name: (scores [E], is_member [E])}`` in
:data:`FAMILIES`, run in :data:`FAMILY_ORDER` (the report's attack order):

* ``metric``: loss, confidence, entropy, modified entropy, correctness (ROC sweep);
* ``lira``: the five LiRA variants (target's logit-scaled confidence vs. the shadows');
* ``rmia``: online RMIA, population = the held-out test set;
* ``nn``: the Nasr NN attack and the Salem top-3 attack, trained on the known parts;
* ``shokri``: Shokri et al.'s shadow-model attack, one attack MLP per class trained on the
  shadows' outputs on their IN and OUT candidates;
* ``risk_score``: Song & Mittal's privacy risk score, per example, from the class-conditional
  histograms of the shadows' IN / OUT modified-entropy scores;
* ``label_only``: the gap attack plus noise robustness (binary features) or augmentation
  robustness (images);
* ``boundary``: the boundary distance ``label_only_boundary`` on a subsample
  (``AttackSettings.boundary_samples > 0``; skipped otherwise), found as in the HAMP paper by
  white-box CW-L2 on images and decision-based HopSkipJump on tabular data
  (``AttackSettings.boundary_attack="auto"``; :func:`boundary_attack`).

Scores are of the evaluated examples (role 2 of :func:`~hampjax.evaluation.setup.attack_roles`);
the boundary family scores its own balanced subsample of them.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Import names, not submodules: the package exports functions called `lira` and `rmia`,
# which shadow the submodules of the same name as attributes of `hampjax.attacks`.
from hampjax.attacks.label_only import (
    augmentation_scores,
    cw_l2_distance,
    distance_to_score,
    gap_attack_scores,
    hop_skip_jump_distance,
    noise_robustness_scores,
)
from hampjax.attacks.lira import lira_variants
from hampjax.attacks.metric import metric_attack_scores
from hampjax.attacks.nn import nn_attack_scores, top3_attack_scores, train_nn_attack, train_top3_attack
from hampjax.attacks.risk_score import privacy_risk_scores
from hampjax.attacks.rmia import rmia, true_class_probs
from hampjax.attacks.shokri import shokri_attack_scores, train_shokri_attack
from hampjax.evaluation.setup import AttackSettings
from hampjax.scores import logit_scaled_score

__all__ = ["AttackInputs", "FAMILIES", "FAMILY_ORDER", "Scores", "attack_key", "boundary_attack",
           "score_family"]

Scores = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True, eq=False)
class AttackInputs:
    """Everything the attack families read (host arrays).

    Attributes:
      outputs: every model's released outputs on the candidates ``[M, N, Q, C]``.
      test_outputs: on the held-out set ``[M, Nt, Q, C]``.
      x, y: the candidates and labels; y_test: the held-out labels.
      keep: the keep matrix ``[M, N]``; target: the target's row.
      roles: :func:`~hampjax.evaluation.setup.attack_roles` of the target's membership.
      settings: the attack hyperparameters.
      key: the attacks' PRNG key (NN attack; ``fold_in`` 1: top-3, 2: noise, 3: boundary,
        4: Shokri).
      seed: the evaluation seed (the boundary subsample draws from ``seed + 1``).
      predict_labels: the target's undefended ``inputs [B, ...] -> labels [B]`` (output
        modification keeps the ranking of the classes, so these are its released labels).
      target_logits: the target's undefended ``inputs [B, ...] -> logits [B, C]``
        (differentiable; the white-box CW-L2 boundary attack), or ``None``.
      image_shape: ``(H, W, C)`` of flattened image inputs, or ``None``.
      binary_features: ``x`` holds 0/1 features.
    """

    outputs: np.ndarray
    test_outputs: np.ndarray
    x: np.ndarray
    y: np.ndarray
    y_test: np.ndarray
    keep: np.ndarray
    target: int
    roles: np.ndarray
    settings: AttackSettings
    key: jax.Array
    seed: int
    predict_labels: Callable[[jax.Array], jax.Array]
    image_shape: tuple[int, ...] | None = None
    binary_features: bool = False
    target_logits: Callable[[jax.Array], jax.Array] | None = None

    @property
    def is_images(self) -> bool:
        """Image inputs: ``image_shape`` set (flattened images) or 4-D ``x``."""
        return self.image_shape is not None or self.x.ndim == 4

    @property
    def is_member(self) -> np.ndarray:
        return self.keep[self.target]

    @property
    def evaluated(self) -> np.ndarray:
        return self.roles == 2

    @property
    def shadows(self) -> np.ndarray:
        return np.delete(np.arange(self.keep.shape[0]), self.target)

    def select(self, scores: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, is_member)`` of the evaluated examples, float64 scores."""
        return np.asarray(scores, np.float64)[self.evaluated], self.is_member[self.evaluated]


def attack_key(seed: int) -> jax.Array:
    """The attacks' PRNG key of an evaluation with ``seed`` (see :class:`AttackInputs`)."""
    return jax.random.split(jax.random.fold_in(jax.random.key(seed), 7), 4)[3]


def _labels_like(outputs: np.ndarray, y: np.ndarray) -> jax.Array:
    return jnp.asarray(np.broadcast_to(y[None, :, None], outputs.shape[:3]))  # [M, N, Q]


def score_metric(inputs: AttackInputs) -> Scores:
    tgt = inputs.outputs[inputs.target][:, 0]
    return {name: inputs.select(s) for name, s in metric_attack_scores(tgt, inputs.y).items()}


def score_lira(inputs: AttackInputs) -> Scores:
    lss = np.asarray(logit_scaled_score(jnp.asarray(inputs.outputs),
                                        _labels_like(inputs.outputs, inputs.y)))
    others = inputs.shadows
    with warnings.catch_warnings():
        # Per-example variants with few shadows warn; every variant is reported all the same.
        warnings.filterwarnings("ignore", message="LiRA with per-example variances",
                                category=UserWarning)
        variants = lira_variants(lss[inputs.target], lss[others], inputs.keep[others])
    return {name: inputs.select(s) for name, s in variants.items()}


def score_rmia(inputs: AttackInputs) -> Scores:
    probs = np.asarray(true_class_probs(jnp.asarray(inputs.outputs),
                                        _labels_like(inputs.outputs, inputs.y)))
    probs_z = np.asarray(true_class_probs(jnp.asarray(inputs.test_outputs),
                                          _labels_like(inputs.test_outputs, inputs.y_test)))
    t, others = inputs.target, inputs.shadows
    scores = rmia(probs[t], probs[others], inputs.keep[others], probs_z[t], probs_z[others],
                  online=True, a=inputs.settings.rmia_a)
    return {"rmia": inputs.select(scores)}


def score_nn(inputs: AttackInputs) -> Scores:
    tgt, y, member, roles = inputs.outputs[inputs.target][:, 0], inputs.y, inputs.is_member, inputs.roles
    train_part, val_part = roles == 0, roles == 1
    nn_attack = train_nn_attack(
        tgt[train_part], y[train_part], member[train_part],
        tgt[val_part], y[val_part], member[val_part], key=inputs.key,
        epochs=inputs.settings.nn_epochs)
    top3 = train_top3_attack(tgt[train_part], member[train_part],
                             key=jax.random.fold_in(inputs.key, 1),
                             max_epochs=inputs.settings.top3_max_epochs)
    return {"nn": inputs.select(nn_attack_scores(nn_attack, tgt, y)),
            "top3": inputs.select(top3_attack_scores(top3, tgt))}


def score_shokri(inputs: AttackInputs) -> Scores:
    shadows, y = inputs.shadows, inputs.y
    attack = train_shokri_attack(
        inputs.outputs[shadows][:, :, 0], y, inputs.keep[shadows],
        key=jax.random.fold_in(inputs.key, 4), num_classes=inputs.outputs.shape[-1],
        features=inputs.settings.shokri_features, steps=inputs.settings.shokri_steps)
    return {"shokri": inputs.select(shokri_attack_scores(attack, inputs.outputs[inputs.target][:, 0], y))}


def score_risk_score(inputs: AttackInputs) -> Scores:
    def mentr(model: int) -> np.ndarray:  # Song & Mittal's score: modified entropy, negated.
        return np.asarray(metric_attack_scores(inputs.outputs[model][:, 0], inputs.y)["modified_entropy"])

    shadows = inputs.shadows
    risk = privacy_risk_scores(mentr(inputs.target), inputs.y,
                               np.stack([mentr(m) for m in shadows]), inputs.keep[shadows],
                               num_bins=inputs.settings.risk_score_bins)
    return {"risk_score": inputs.select(risk)}


def score_label_only(inputs: AttackInputs) -> Scores:
    tgt, x, settings = inputs.outputs[inputs.target][:, 0], inputs.x, inputs.settings
    out = {"label_only_gap": inputs.select(gap_attack_scores(jnp.argmax(tgt, -1), jnp.asarray(inputs.y)))}
    if inputs.binary_features:
        out["label_only_noise"] = inputs.select(noise_robustness_scores(
            inputs.predict_labels, jnp.asarray(x), jnp.asarray(inputs.y),
            jax.random.fold_in(inputs.key, 2), flip_rate=settings.noise_flip_rate,
            num_variants=settings.noise_variants, batch_size=4096))
    if inputs.is_images:
        shape = tuple(inputs.image_shape) if inputs.image_shape is not None else x.shape[1:]
        images = jnp.asarray(x.reshape((len(x),) + shape))
        predict_images = (lambda im: inputs.predict_labels(im.reshape(im.shape[0], -1))) \
            if inputs.image_shape is not None else inputs.predict_labels
        out["label_only_augmentation"] = inputs.select(augmentation_scores(
            predict_images, images, jnp.asarray(inputs.y), max_shift=settings.augmentation_max_shift))
    return out


def boundary_attack(inputs: AttackInputs) -> str:
    """The boundary attack that runs: ``settings.boundary_attack``, with ``"auto"`` resolved
    as in the HAMP paper to ``"cw_l2"`` for images and ``"hop_skip_jump"`` otherwise."""
    choice = inputs.settings.boundary_attack
    if choice == "auto":
        return "cw_l2" if inputs.is_images else "hop_skip_jump"
    return choice


def score_boundary(inputs: AttackInputs) -> Scores:
    settings = inputs.settings
    if not settings.boundary_samples:
        return {}
    member, evaluated = inputs.is_member, inputs.evaluated
    rng = np.random.default_rng(inputs.seed + 1)
    chosen = np.concatenate([
        rng.choice(np.flatnonzero(evaluated & side), size=min(
            settings.boundary_samples, int(np.sum(evaluated & side))), replace=False)
        for side in (member, ~member)])
    x, y = jnp.asarray(inputs.x[chosen]), jnp.asarray(inputs.y[chosen])
    if boundary_attack(inputs) == "cw_l2":
        if inputs.target_logits is None:
            raise ValueError("the CW-L2 boundary attack needs AttackInputs.target_logits "
                             "(the target's undefended logits)")
        distances = cw_l2_distance(inputs.target_logits, x, y, steps=settings.boundary_cw_steps,
                                   lr=settings.boundary_cw_lr,
                                   binary_search_steps=settings.boundary_cw_search_steps)
    else:
        distances = hop_skip_jump_distance(
            inputs.predict_labels, x, y, jax.random.fold_in(inputs.key, 3),
            num_iterations=settings.boundary_iterations, num_evals=settings.boundary_evals)
    return {"label_only_boundary": (np.asarray(distance_to_score(distances), np.float64),
                                    member[chosen])}


FAMILY_ORDER: tuple[str, ...] = ("metric", "lira", "rmia", "nn", "shokri", "risk_score",
                                 "label_only", "boundary")
"""The attack families in report order."""

FAMILIES: dict[str, Callable[[AttackInputs], Scores]] = {
    "metric": score_metric,
    "lira": score_lira,
    "rmia": score_rmia,
    "nn": score_nn,
    "shokri": score_shokri,
    "risk_score": score_risk_score,
    "label_only": score_label_only,
    "boundary": score_boundary,
}
"""Family name -> scorer ``AttackInputs -> {attack: (scores [E], is_member [E])}``."""


def score_family(family: str, inputs: AttackInputs) -> Scores:
    """Run one attack family (see the module doc); raises ValueError on an unknown name."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    return FAMILIES[family](inputs)
