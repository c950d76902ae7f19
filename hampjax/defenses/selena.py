"""SELENA's Split-AI (Tang et al., USENIX Security 2022): who trains on what, and the soft labels.

SELENA trains ``K`` sub-models on one model's members: every member is left out of ``L`` of
them, chosen uniformly at random, and each sub-model trains on the members it was not left
out of (about ``(1 - L / K) N`` of them). A member's Split-AI output averages the ``L``
sub-models that never saw it; a student (the released model) is then distilled from those
outputs on the members (:func:`hampjax.defenses.distillation_loss`, ``T = 1``).

* :func:`split_ai_assignment` - the bool ``excluded [N, K]`` mask of one model;
* :func:`split_ai_keep` - the sub-models' keep rows of many models, flattened ``m * K + k``
  so that one ``train_many`` call trains them all;
* :func:`split_ai_soft_labels` - the Split-AI outputs ``[N, C]`` from the sub-models' logits.

``excluded[n, k]`` is True exactly when sub-model ``k`` does not train on example ``n``.
A member is excluded from exactly ``L`` sub-models; a non-member from all ``K`` (no sub-model
trains on it, so its Split-AI output averages every sub-model; the student never trains on
it, so that value never acts, but it is defined and deterministic).

The assignment is host-side NumPy (it runs once per model, before training, and its
randomness must not depend on the device); the soft labels are pure ``jax.numpy`` and work
under ``jit`` and ``vmap``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hampjax import validation

__all__ = ["SPLIT_AI_AVERAGES", "split_ai_assignment", "split_ai_keep", "split_ai_soft_labels"]

SPLIT_AI_AVERAGES = ("logits", "probs")
"""How :func:`split_ai_soft_labels` averages the non-trained sub-models: ``"logits"`` (the
HAMP authors' code) or ``"probs"`` (the SELENA paper)."""


def _seed_sequence(seed: Any) -> np.random.SeedSequence:
    entropy = (seed,) if not isinstance(seed, Sequence) or isinstance(seed, str) else tuple(seed)
    if not entropy:
        raise ValueError("seed must be an integer >= 0 or a non-empty sequence of them, got ()")
    return np.random.SeedSequence([validation.check_positive_int("seed", s, minimum=0)
                                   for s in entropy])


def _check_sizes(num_submodels: Any, num_excluded: Any) -> tuple[int, int]:
    k = validation.check_positive_int("num_submodels", num_submodels, minimum=2)
    return k, validation.check_int_in_range("num_excluded", num_excluded, 1, k - 1)


def split_ai_assignment(members: int | Any, num_submodels: int, num_excluded: int, *,
                        seed: int | Sequence[int]) -> np.ndarray:
    """Which sub-models leave out which example (Split-AI's training sets).

    Every example ``n`` draws its own uniform permutation of the ``K`` sub-models (the
    argsort of row ``n`` of a ``[N, K]`` uniform matrix drawn from ``seed``); the first
    ``L`` leave it out, so each ``L``-subset is equally likely and a member's choice does not
    depend on which other examples are members. Non-members are excluded from every
    sub-model (module docstring).

    Args:
      members: ``N``, the number of examples (all members), or a bool member mask ``[N]``
        (a row of a keep matrix).
      num_submodels: ``K >= 2``.
      num_excluded: ``L`` in ``[1, K)``, the sub-models each member is left out of.
      seed: an integer >= 0 or a sequence of them (``numpy.random.SeedSequence`` entropy;
        :func:`split_ai_keep` passes ``(assignment_seed, m)`` for model ``m``).

    Returns:
      bool ``[N, K]``: ``excluded[n, k]`` True iff sub-model ``k`` does not train on ``n``.

    Raises:
      ValueError: naming the argument and its allowed range.

    Example:
      >>> excluded = split_ai_assignment(6, 5, 2, seed=0)
      >>> excluded.shape, excluded.sum(axis=1).tolist()
      ((6, 5), [2, 2, 2, 2, 2, 2])
      >>> split_ai_assignment(np.array([True, False]), 3, 1, seed=0).sum(axis=1).tolist()
      [1, 3]
    """
    k, l = _check_sizes(num_submodels, num_excluded)
    if isinstance(members, (int, np.integer)) and not isinstance(members, bool):
        n = validation.check_positive_int("members", members, minimum=1)
        mask = np.ones(n, bool)
    else:
        mask = np.asarray(members)
        if mask.ndim != 1 or mask.dtype != np.bool_ or mask.size == 0:
            raise ValueError(f"members must be a number of examples >= 1 or a non-empty bool "
                             f"mask [N], got {getattr(mask, 'dtype', type(members))} of shape "
                             f"{mask.shape}")
    rng = np.random.default_rng(_seed_sequence(seed))
    order = np.argsort(rng.random((mask.size, k)), axis=1, kind="stable")
    excluded = np.zeros((mask.size, k), bool)
    np.put_along_axis(excluded, order[:, :l], True, axis=1)
    excluded[~mask] = True
    return excluded


def split_ai_keep(keep: Any, num_submodels: int, num_excluded: int, *,
                  assignment_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The Split-AI of every model of a keep matrix, as one keep matrix of sub-models.

    Model ``m`` (row ``m`` of ``keep``) gets its own assignment over its own members,
    :func:`split_ai_assignment` ``(keep[m], K, L, seed=(assignment_seed, m))``. Sub-model ``k``
    of model ``m`` is row ``m * K + k`` of the result and trains on
    ``keep[m] & ~excluded[m, :, k]``. A model's rows depend only on ``keep[m]``, ``m`` and the
    settings, so a keep matrix with more rows extends the sub-models' (a finished run of them
    extends too).

    Args:
      keep: bool ``[M, N]`` keep matrix.
      num_submodels, num_excluded: ``K`` and ``L`` (:func:`split_ai_assignment`).
      assignment_seed: integer >= 0.

    Returns:
      ``(sub_keep [M * K, N] bool, excluded [M, N, K] bool)``.

    Raises:
      ValueError: on a bad keep matrix or setting, or a sub-model left with no member (too
        few members for ``K`` and ``L``).

    Example:
      >>> keep = np.arange(8) < np.array([[6], [8]])  # 6 and 8 members
      >>> sub_keep, excluded = split_ai_keep(keep, 3, 1, assignment_seed=0)
      >>> sub_keep.shape, excluded.shape
      ((6, 8), (2, 8, 3))
      >>> sub_keep.sum(axis=0).tolist()  # each member in K - L = 2 sub-models per model
      [4, 4, 4, 4, 4, 4, 2, 2]
    """
    keep = np.asarray(keep)
    if keep.ndim != 2 or keep.dtype != np.bool_ or keep.shape[1] == 0:
        raise ValueError(f"keep must be a bool [M, N] matrix with N >= 1, got "
                         f"{keep.dtype} of shape {keep.shape}")
    k, l = _check_sizes(num_submodels, num_excluded)
    seed = validation.check_positive_int("assignment_seed", assignment_seed, minimum=0)
    excluded = np.stack([split_ai_assignment(row, k, l, seed=(seed, m))
                         for m, row in enumerate(keep)]) if len(keep) else np.zeros(
                             (0, keep.shape[1], k), bool)
    sub_keep = (keep[:, None, :] & ~np.swapaxes(excluded, 1, 2)).reshape(-1, keep.shape[1])
    empty = np.flatnonzero(~sub_keep.any(axis=1))
    if empty.size:
        m, sub = divmod(int(empty[0]), k)
        raise ValueError(f"sub-model {sub} of model {m} has no member (keep[{m}] has "
                         f"{int(keep[m].sum())} members for num_submodels={k}, "
                         f"num_excluded={l}); use more members or a smaller num_excluded")
    return sub_keep, excluded


@functools.partial(jax.jit, static_argnames="average")
def _soft_labels(submodel_logits, excluded, average: str):
    weights = jnp.swapaxes(excluded, 0, 1)[..., None]  # [K, N, 1]
    count = jnp.sum(excluded, axis=1)[:, None].astype(submodel_logits.dtype)  # [N, 1]
    if average == "logits":
        return jnp.sum(jnp.where(weights, submodel_logits, 0.0), axis=0) / count
    log_probs = jax.nn.log_softmax(submodel_logits, axis=-1)
    return (jax.nn.logsumexp(jnp.where(weights, log_probs, -jnp.inf), axis=0)
            - jnp.log(count))


def split_ai_soft_labels(submodel_logits: Any, excluded: Any, *,
                         average: str = "logits") -> jax.Array:
    """Split-AI outputs: the average of the sub-models that did not train on each example.

    ``"logits"`` (the HAMP code): ``t_n = mean_{k: excluded[n, k]} z_{k, n}``, the mean of the
    logits. ``"probs"`` (the SELENA paper): ``t_n = log(mean_{k: excluded[n, k]}
    softmax(z_{k, n}))``, the log of the mean probabilities (computed as a masked
    ``logsumexp`` of log-softmaxes). Both return logits, as the distillation loss reads them;
    for ``"probs"`` they are normalized log-probabilities, so ``softmax(t_n)`` is exactly the
    averaged probability vector and the loss at temperature 1 (SELENA's) distills it. At
    another temperature the loss would sharpen or flatten those averages.

    Args:
      submodel_logits: float ``[K, N, C]``, every sub-model's eval-mode logits.
      excluded: bool ``[N, K]`` (:func:`split_ai_assignment`); every row needs at least one
        True. Under ``jit`` a row without one gives NaN (not checked there).
      average: ``"logits"`` or ``"probs"`` (:data:`SPLIT_AI_AVERAGES`; static under ``jit``).

    Returns:
      float ``[N, C]`` soft labels, as logits.

    Raises:
      ValueError: on shape mismatches, an unknown ``average`` or (concrete inputs) an
        example that every sub-model trained on.

    Example:
      >>> z = jnp.array([[[0.0, 2.0]], [[2.0, 0.0]], [[9.0, 9.0]]])  # K = 3, N = 1, C = 2
      >>> split_ai_soft_labels(z, jnp.array([[True, True, False]])).tolist()
      [[1.0, 1.0]]
      >>> p = jax.nn.softmax(split_ai_soft_labels(z, jnp.array([[True, True, False]]),
      ...                                          average="probs"))
      >>> [round(float(v), 4) for v in p[0]]
      [0.5, 0.5]
    """
    validation.check_choice("average", average, SPLIT_AI_AVERAGES)
    validation.check_rank_at_least("submodel_logits", submodel_logits, 3)
    shape = tuple(np.shape(submodel_logits))
    if len(shape) != 3:
        raise ValueError(f"submodel_logits must have shape [K, N, C], got {shape}")
    validation.check_floating("submodel_logits", submodel_logits)
    validation.check_finite("submodel_logits", submodel_logits)
    validation.check_mask("excluded", excluded, (shape[1], shape[0]))
    if validation.is_concrete(excluded):
        rows = np.flatnonzero(~np.asarray(excluded).any(axis=1))
        if rows.size:
            raise ValueError(f"excluded[{int(rows[0])}] has no True entry: every sub-model "
                             f"trained on example {int(rows[0])}, so it has no Split-AI output")
    return _soft_labels(jnp.asarray(submodel_logits), jnp.asarray(excluded), average)
