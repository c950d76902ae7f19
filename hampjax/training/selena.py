"""SELENA (Tang et al. 2022) in the batched engine: Split-AI sub-models, then distillation.

A recipe with ``spec.split_ai.kind == "selena"`` (a distillation student, see
:class:`~hampjax.training.spec.SplitAISpec`) trains in three steps, for all ``M`` models of a
keep matrix at once (the target and the adaptive attacker's shadows alike, so that every
shadow is itself a whole SELENA trained on its own members):

1. the sub-models: model ``m``'s Split-AI (:func:`hampjax.defenses.split_ai_keep`, assignment
   seed ``(assignment_seed, m)``) gives ``K`` keep rows ``keep[m] & ~excluded_m[:, k]``; the
   ``M * K`` rows, flattened ``m * K + k``, train in ONE :func:`train_many` call with
   :func:`~hampjax.training.spec.teacher_spec` of the recipe (``workdir/teachers``; the engine
   chunks the model axis, resumes and extends as usual);
2. the soft labels (:func:`split_ai_targets`): the ``K`` sub-models of one model at a time
   predict the candidates in eval mode (:func:`predict_many`), and each example's label
   averages the sub-models that did not train on it
   (:func:`hampjax.defenses.split_ai_soft_labels`), giving ``targets [M, N, C]``; at most
   ``K x N x C`` sub-model logits are held at once;
3. the students: one :func:`train_many` of the recipe with ``targets=`` (``workdir/student``);
   a student reads only its members' rows (its keep row), the released model is the student.

The keep rows and the soft labels enter the two runs' fingerprints through :func:`train_many`
(``keep.npy``, ``targets_sha256.json``), so a rerun resumes each step, and a change of
Split-AI setting is refused by a finished ``workdir``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from hampjax.defenses.selena import split_ai_keep, split_ai_soft_labels
from hampjax.training.engine import TrainResult, _model_functions, train_many
from hampjax.training.membership import check_keep
from hampjax.training.predict import predict_many
from hampjax.training.recipes import Recipe, build_recipe
from hampjax.training.spec import teacher_spec

__all__ = ["split_ai_targets", "train_selena"]


def split_ai_targets(apply_fn: Callable[..., Any], submodel_variables: Any, x: Any,
                     excluded: Any, *, average: str = "logits",
                     batch_size: int = 1024) -> np.ndarray:
    """The Split-AI soft labels of every model, from its sub-models' eval-mode logits.

    Args:
      apply_fn: ``apply_fn(variables, x, *, train)`` (:func:`hampjax.models.model_functions`).
      submodel_variables: stacked ``[M * K, ...]`` variables, sub-model ``k`` of model ``m``
        at ``m * K + k`` (:func:`train_selena`'s first :func:`train_many`).
      x: the candidates ``[N, ...]``.
      excluded: bool ``[M, N, K]`` (:func:`hampjax.defenses.split_ai_keep`).
      average: ``"logits"`` or ``"probs"`` (:func:`hampjax.defenses.split_ai_soft_labels`).
      batch_size: examples per prediction program (performance only).

    Returns:
      float32 ``[M, N, C]`` host array, row ``m`` model ``m``'s distillation targets.

    Raises:
      ValueError: if the variables do not hold ``M * K`` models, or on the checks of
        :func:`~hampjax.defenses.split_ai_soft_labels`.
    """
    excluded = np.asarray(excluded)
    if excluded.ndim != 3:
        raise ValueError(f"excluded must have shape [M, N, K], got {excluded.shape}")
    num_models, num_examples, k = excluded.shape
    sizes = {int(np.shape(leaf)[0]) for leaf in jax.tree_util.tree_leaves(submodel_variables)}
    if sizes != {num_models * k}:
        raise ValueError(f"submodel_variables must hold M * K = {num_models * k} models "
                         f"(excluded has shape {excluded.shape}), got leading sizes "
                         f"{sorted(sizes)}")
    out = None
    for m in range(num_models):
        variables = jax.tree_util.tree_map(lambda a: a[m * k:(m + 1) * k], submodel_variables)
        logits = predict_many(apply_fn, variables, x, batch_size=batch_size)[:, :, 0]
        labels = np.asarray(split_ai_soft_labels(logits, excluded[m], average=average))
        if out is None:
            out = np.empty((num_models, num_examples, labels.shape[-1]), np.float32)
        out[m] = labels
    return out


def train_selena(model: Any, recipe: Recipe, x: Any, y: Any, keep: Any, *, seed: int,
                 val_data: tuple[Any, Any] | None = None, workdir: str | None = None,
                 progress: bool = False, snapshot_epochs: Sequence[int] = (),
                 apply_fn: Callable[..., Any] | None = None,
                 predict_batch_size: int = 1024) -> tuple[TrainResult, TrainResult]:
    """SELENA for every model of ``keep``: sub-models, Split-AI soft labels, students.

    Args:
      model: a Flax module of :mod:`hampjax.models` (or an ``(init_fn, apply_fn)`` pair).
      recipe: the students' recipe; ``recipe.spec.split_ai.kind == "selena"``. The
        sub-models train with ``teacher_spec(recipe.spec)`` (``spec.teacher`` when set).
      x, y: the candidates ``[N, ...]`` and labels ``[N]``.
      keep: bool ``[M, N]``, model ``m``'s members.
      seed: integer >= 0; sub-model ``m * K + k`` and student ``m`` draw their training
        randomness from ``(seed, m * K + k)`` and ``(seed, m)`` (:func:`train_many`).
      val_data: optional ``(x_val, y_val)`` (``selection="best_val"`` needs it).
      workdir: optional directory; the runs live in ``workdir/teachers`` and
        ``workdir/student`` (each resumable and extendable to more models).
      progress: show the progress bars.
      snapshot_epochs: the students' snapshot epochs (0-based).
      apply_fn: optional ``model``'s apply function (pass a cached one so that the prediction
        program compiles once per process).
      predict_batch_size: examples per prediction program (performance only).

    Returns:
      ``(students, submodels)``: the students' :class:`TrainResult` (``M`` models; the
      released ones) and the sub-models' (``M * K``, ``keep`` = their keep rows).

    Raises:
      ValueError: if the recipe is not a SELENA recipe, on a sub-model with no member, or on
        the checks of :func:`train_many`.
    """
    split = recipe.spec.split_ai
    if split.kind != "selena":
        raise ValueError(f"recipe.spec.split_ai.kind must be 'selena' for train_selena, got "
                         f"{split.kind!r}")
    keep = check_keep(keep, num_examples=int(np.shape(x)[0]))
    sub_keep, excluded = split_ai_keep(keep, split.num_submodels, split.num_excluded,
                                       assignment_seed=split.assignment_seed)
    path = (lambda name: os.path.join(workdir, name)) if workdir else (lambda name: None)
    submodels = train_many(model, build_recipe(teacher_spec(recipe.spec)), x, y, sub_keep,
                           seed=seed, val_data=val_data, workdir=path("teachers"),
                           progress=progress)
    if apply_fn is None:
        apply_fn = _model_functions(model)[1]
    targets = split_ai_targets(apply_fn, submodels.variables, x, excluded,
                               average=split.average, batch_size=predict_batch_size)
    students = train_many(model, recipe, x, y, keep, seed=seed, val_data=val_data,
                          workdir=path("student"), progress=progress,
                          snapshot_epochs=snapshot_epochs, targets=targets)
    return students, submodels
