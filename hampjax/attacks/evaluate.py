"""Adaptive end-to-end evaluation of one defense: train, predict, run every attack.

:func:`evaluate_defense` follows the HAMP paper's threat model with an adaptive attacker:

1. ``num_models`` models are trained with the defense's recipe in one batched
   :func:`~hampjax.training.train_many` call on a balanced keep matrix over the candidate pool.
   Model ``target`` is the target; the others are the attacker's shadow models, trained with the
   same recipe (the attacker knows the defense).
2. Every model answers every query through the defended output: with ``output_modification``
   each model gets its own pool of outputs on random inputs, and HAMP's output modification is
   applied to every answer (shadows included).
3. The target's members and non-members are each split into known-train (45%), known-val (5%)
   and evaluated (50%) parts; the NN and top-3 attacks learn from the known parts (the attacker
   knows half the members), and every attack is scored on the evaluated part.
4. Attacks: metric attacks (ROC sweep), the five LiRA variants, online RMIA (population: the
   held-out test set), the Nasr NN attack, the top-3 attack, and the label-only gap attack plus
   noise robustness (binary features) or augmentation robustness (images), and optionally the
   HopSkipJump boundary distance on a subsample (``AttackSettings.boundary_samples``).

The result holds per-attack scores and membership labels of the evaluated examples, ready for
:mod:`hampjax.report`.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation
# Import names, not submodules: the package exports functions called `lira` and `rmia`,
# which shadow the submodules of the same name as attributes of `hampjax.attacks`.
from hampjax.attacks.label_only import (
    augmentation_scores,
    distance_to_score,
    gap_attack_scores,
    hop_skip_jump_distance,
    noise_robustness_scores,
)
from hampjax.attacks.lira import lira_variants
from hampjax.attacks.metric import metric_attack_scores
from hampjax.attacks.nn import nn_attack_scores, top3_attack_scores, train_nn_attack, train_top3_attack
from hampjax.attacks.rmia import rmia, true_class_probs
from hampjax.defenses.output_modification import modify_output
from hampjax.scores import entropy, logit_scaled_score
from hampjax.training import (
    QuerySet,
    Recipe,
    balanced_keep,
    pool_output_transform,
    predict_many,
    train_many,
)

__all__ = ["Defense", "EvalData", "AttackSettings", "DefenseEvaluation", "evaluate_defense",
           "evaluate_defenses", "to_evaluation", "attack_roles"]


@dataclasses.dataclass(frozen=True)
class Defense:
    """A defense to evaluate: a training recipe, optionally with HAMP's output modification.

    Attributes:
      name: report name (e.g. ``"hamp"``).
      recipe: the training recipe (target and shadows use the same one: adaptive attacker).
      output_modification: apply HAMP's testing-time defense to every model output.
      pool_size: random outputs precomputed per model for output modification.
      shadow_recipe: ``None`` (the default) for an adaptive attacker whose shadows use ``recipe``;
        otherwise the recipe of a non-adaptive attacker's shadows (e.g. undefended training).
        The target is then trained on its own with ``recipe``. Not combinable with output
        modification (the attacker would not know the defense).
    """

    name: str
    recipe: Recipe
    output_modification: bool = False
    pool_size: int = 1000
    shadow_recipe: Recipe | None = None

    def __post_init__(self):
        if self.shadow_recipe is not None and self.output_modification:
            raise ValueError("shadow_recipe (a non-adaptive attacker) cannot be combined with "
                             "output_modification=True")


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


@dataclasses.dataclass(frozen=True)
class AttackSettings:
    """Attack hyperparameters (defaults: the papers'; smaller values for quick runs)."""

    nn_epochs: int = 200
    top3_max_epochs: int = 200
    noise_flip_rate: float = 0.01
    noise_variants: int = 100
    augmentation_max_shift: int = 1
    rmia_a: float = 0.3
    # Decision-based boundary distance (HopSkipJump) on this many evaluated members and as
    # many non-members (0 = skip: it costs num_iterations x num_evals queries per example).
    boundary_samples: int = 0
    boundary_iterations: int = 20
    boundary_evals: int = 100
    # Known-train / known-val / evaluated fractions of members and of non-members (spec 1.5:
    # 45/5/50; Location30 30/20/50).
    role_fractions: tuple[float, float, float] = (0.45, 0.05, 0.5)

    def __post_init__(self):
        fractions = tuple(float(f) for f in self.role_fractions)
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
            raise ValueError("role_fractions must be three positive fractions summing to 1, got "
                             f"{self.role_fractions!r}")


@dataclasses.dataclass(frozen=True)
class DefenseEvaluation:
    """Everything measured for one defense.

    Attributes:
      name: the defense's name.
      train_acc, test_acc: the target's accuracy on its members and on the test set.
      attacks: ``{attack name: (scores [E], is_member [E])}`` on the evaluated examples.
      keep: the keep matrix ``[M, N]``; ``target`` its target row.
      timings: seconds per phase.
      config: the recipe's config and the evaluation settings.
      stats: mean prediction entropy (nats) of the target's released outputs on its members
        (``"entropy_members"``) and non-members (``"entropy_nonmembers"``), HAMP Table IV.
    """

    name: str
    train_acc: float
    test_acc: float
    attacks: dict[str, tuple[np.ndarray, np.ndarray]]
    keep: np.ndarray
    target: int
    timings: dict[str, float]
    config: dict
    stats: dict[str, float] = dataclasses.field(default_factory=dict)


def attack_roles(is_member: np.ndarray, *, seed: int, fractions=(0.45, 0.05, 0.5)) -> np.ndarray:
    """Split members and non-members each into known-train (0), known-val (1), evaluated (2).

    Returns an int8 role per example; the split is seeded and stratified by membership.
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


def _accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, -1) == labels))


def evaluate_defense(
    model: Any,
    defense: Defense,
    data: EvalData,
    *,
    num_models: int,
    seed: int,
    target: int = 0,
    queries: QuerySet = QuerySet.none(),
    settings: AttackSettings = AttackSettings(),
    workdir: str | None = None,
    progress: bool = False,
) -> DefenseEvaluation:
    """Train the defense's target and shadows, run every attack on the target (see module doc).

    Args:
      model: a Flax module of :mod:`hampjax.models`.
      defense: what to evaluate.
      data: candidate pool, test set and data properties.
      num_models: models trained in total (target + shadows), even and >= 4.
      seed: integer >= 0 (keep matrix, training, roles, attack models, random inputs).
      target: which model is the target.
      queries: test-time queries (images only).
      settings: attack hyperparameters.
      workdir: optional directory for resumable training.
      progress: show the training progress bar.

    Returns:
      A :class:`DefenseEvaluation`.
    """
    from hampjax.models.registry import model_functions

    num_models = validation.check_positive_int("num_models", num_models, minimum=4)
    validation.check_in_range("target", target, 0, num_models)
    if defense.output_modification and data.random_inputs is None:
        raise ValueError("data.random_inputs is required when defense.output_modification is set")
    x, y = np.asarray(data.x), np.asarray(data.y)
    timings: dict[str, float] = {}
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 7), 4)

    t0 = time.perf_counter()
    keep = balanced_keep(num_models, len(x), seed=seed)
    val = (data.x_val, data.y_val) if data.x_val is not None else None
    if defense.shadow_recipe is None:
        trained = train_many(model, defense.recipe, x, y, keep, seed=seed, val_data=val,
                             workdir=workdir, progress=progress)
        variables = trained.variables
    else:  # Non-adaptive: shadows with their own recipe, the target on its own.
        sub = (lambda name: os.path.join(workdir, name)) if workdir else (lambda name: None)
        shadows = train_many(model, defense.shadow_recipe, x, y, keep, seed=seed, val_data=val,
                             workdir=sub("shadows"), progress=progress)
        alone = train_many(model, defense.recipe, x, y, keep[target:target + 1], seed=seed,
                           val_data=val, workdir=sub("target"), progress=progress)
        variables = jax.tree_util.tree_map(
            lambda s, t: np.concatenate([np.asarray(s)[:target], np.asarray(t),
                                         np.asarray(s)[target + 1:]]),
            shadows.variables, alone.variables)
    timings["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _, apply_fn = model_functions(model)
    transform = {}
    if defense.output_modification:
        inputs = np.asarray(data.random_inputs(keys[0], defense.pool_size))
        pools = predict_many(apply_fn, variables, inputs)[:, :, 0]  # [M, P, C]
        transform = dict(output_transform=pool_output_transform(modify_output),
                         transform_state=jnp.asarray(pools))
    outputs = predict_many(apply_fn, variables, x, queries=queries,
                           transform_key=keys[1] if transform else None, **transform)
    test_outputs = predict_many(apply_fn, variables, np.asarray(data.x_test),
                                queries=queries, transform_key=keys[2] if transform else None,
                                **transform)
    timings["predict"] = time.perf_counter() - t0

    is_member = keep[target]
    roles = attack_roles(is_member, seed=seed, fractions=settings.role_fractions)
    evaluated = roles == 2
    others = np.delete(np.arange(num_models), target)
    tgt = outputs[target]  # [N, Q, C]
    attacks: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def add(name: str, scores: Any) -> None:
        attacks[name] = (np.asarray(scores, np.float64)[evaluated], is_member[evaluated])

    t0 = time.perf_counter()
    for name, scores in metric_attack_scores(tgt[:, 0], y).items():
        add(name, scores)

    labels_q = jnp.asarray(np.broadcast_to(y[None, :, None], outputs.shape[:3]))  # [M, N, Q]
    lss = np.asarray(logit_scaled_score(jnp.asarray(outputs), labels_q))
    with warnings.catch_warnings():
        # Per-example variants with few shadows warn; every variant is reported all the same.
        warnings.filterwarnings("ignore", message="LiRA with per-example variances",
                                category=UserWarning)
        for name, scores in lira_variants(lss[target], lss[others], keep[others]).items():
            add(name, scores)

    probs = np.asarray(true_class_probs(jnp.asarray(outputs), labels_q))
    y_test = np.asarray(data.y_test)
    probs_z = np.asarray(true_class_probs(
        jnp.asarray(test_outputs),
        jnp.asarray(np.broadcast_to(y_test[None, :, None], test_outputs.shape[:3]))))
    add("rmia", rmia(probs[target], probs[others], keep[others], probs_z[target],
                     probs_z[others], online=True, a=settings.rmia_a))
    timings["score_attacks"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    train_part, val_part = roles == 0, roles == 1
    nn_attack = train_nn_attack(
        tgt[train_part, 0], y[train_part], is_member[train_part],
        tgt[val_part, 0], y[val_part], is_member[val_part], key=keys[3],
        epochs=settings.nn_epochs)
    add("nn", nn_attack_scores(nn_attack, tgt[:, 0], y))
    top3 = train_top3_attack(tgt[train_part, 0], is_member[train_part],
                             key=jax.random.fold_in(keys[3], 1),
                             max_epochs=settings.top3_max_epochs)
    add("top3", top3_attack_scores(top3, tgt[:, 0]))
    timings["nn_attacks"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    target_vars = jax.tree_util.tree_map(lambda a: a[target], variables)
    add("label_only_gap", gap_attack_scores(jnp.argmax(tgt[:, 0], -1), jnp.asarray(y)))
    # Output modification preserves the ranking of classes, so predicted labels are those of
    # the undefended apply function.
    flat_predict = jax.jit(lambda inputs: jnp.argmax(apply_fn(target_vars, inputs, train=False)[0], -1))
    if data.binary_features:
        add("label_only_noise", noise_robustness_scores(
            flat_predict, jnp.asarray(x), jnp.asarray(y), jax.random.fold_in(keys[3], 2),
            flip_rate=settings.noise_flip_rate, num_variants=settings.noise_variants,
            batch_size=4096))
    if data.image_shape is not None or x.ndim == 4:
        shape = tuple(data.image_shape) if data.image_shape is not None else x.shape[1:]
        images = jnp.asarray(x.reshape((len(x),) + shape))
        predict_images = (lambda im: flat_predict(im.reshape(im.shape[0], -1))) \
            if data.image_shape is not None else flat_predict
        add("label_only_augmentation", augmentation_scores(
            predict_images, images, jnp.asarray(y), max_shift=settings.augmentation_max_shift))
    if settings.boundary_samples:
        rng = np.random.default_rng(seed + 1)
        chosen = np.concatenate([
            rng.choice(np.flatnonzero(evaluated & side), size=min(
                settings.boundary_samples, int(np.sum(evaluated & side))), replace=False)
            for side in (is_member, ~is_member)])
        distances = hop_skip_jump_distance(
            flat_predict, jnp.asarray(x[chosen]), jnp.asarray(y[chosen]),
            jax.random.fold_in(keys[3], 3), num_iterations=settings.boundary_iterations,
            num_evals=settings.boundary_evals)
        attacks["label_only_boundary"] = (np.asarray(distance_to_score(distances),
                                                     np.float64), is_member[chosen])
    timings["label_only"] = time.perf_counter() - t0

    target_outputs = tgt[:, 0]
    entropies = np.asarray(entropy(jnp.asarray(target_outputs, jnp.float32)), np.float64)
    stats = {"entropy_members": float(entropies[is_member].mean()),
             "entropy_nonmembers": float(entropies[~is_member].mean())}
    return DefenseEvaluation(
        name=defense.name,
        train_acc=_accuracy(target_outputs[is_member], y[is_member]),
        test_acc=_accuracy(test_outputs[target][:, 0], y_test),
        attacks=attacks,
        keep=keep,
        target=target,
        timings=timings,
        config={"recipe": dict(defense.recipe.config), "output_modification":
                defense.output_modification, "pool_size": defense.pool_size,
                "num_models": num_models, "seed": seed, "target": target,
                "queries": list(queries.names), "settings": dataclasses.asdict(settings),
                "non_adaptive_shadows": None if defense.shadow_recipe is None
                else dict(defense.shadow_recipe.config)},
        stats=stats,
    )


def to_evaluation(results: list[DefenseEvaluation], *, num_queries: int):
    """Collect per-defense results into a :class:`hampjax.report.Evaluation`."""
    from hampjax.report import DefenseResult, Evaluation

    if not results:
        raise ValueError("results must hold at least one DefenseEvaluation")
    first = results[0]
    timings = {f"{r.name}/{phase}": seconds for r in results for phase, seconds in r.timings.items()}
    return Evaluation(
        defenses={r.name: DefenseResult(r.train_acc, r.test_acc, r.attacks) for r in results},
        num_models=int(first.keep.shape[0]),
        num_queries=num_queries,
        seeds={"seed": int(first.config["seed"])},
        config={r.name: r.config for r in results},
        timings=timings,
        keep=first.keep,
    )


def evaluate_defenses(
    model: Any,
    defenses: list[Defense],
    data: EvalData,
    *,
    num_models: int,
    seed: int,
    run_dir: str | None = None,
    queries: QuerySet = QuerySet.none(),
    settings: AttackSettings = AttackSettings(),
    progress: bool = False,
    bootstrap_resamples: int = 200,
    plots: bool = True,
) -> tuple[list[DefenseEvaluation], dict | None]:
    """Evaluate several defenses on the same data and keep matrix; write a report to ``run_dir``.

    Training of each defense is resumable under ``run_dir/train/<defense>``. Returns the
    per-defense results and the report dict (``None`` without ``run_dir`` and on processes
    other than 0, which train their share of the models but do not write the report).
    """
    names = [d.name for d in defenses]
    if len(set(names)) != len(names):
        raise ValueError(f"defenses must have distinct names, got {names}")
    results = []
    for defense in defenses:
        workdir = os.path.join(run_dir, "train", defense.name) if run_dir else None
        results.append(evaluate_defense(model, defense, data, num_models=num_models, seed=seed,
                                        queries=queries, settings=settings, workdir=workdir,
                                        progress=progress))
    report = None
    if run_dir is not None and jax.process_index() == 0:  # Every process trains; one writes.
        from hampjax.report import write_report

        report = write_report(run_dir, to_evaluation(results, num_queries=queries.size),
                              bootstrap_resamples=bootstrap_resamples, seed=seed, plots=plots)
    return results, report
