"""Truth-Serum targeted poisoning (Tramer et al., CCS 2022), as the HAMP paper evaluates it (V-C).

The attacker picks ``num_targets`` examples of the candidate pool (without replacement), gives
each ONE wrong label ``y' = (y + U{1, ..., K-1}) mod K`` and inserts ``replicas`` copies of the
mislabelled example into EVERY model's training set. The target's own (correctly labelled)
copy keeps following the membership matrix, so its membership is still what is inferred.
Poisoning makes a member's true-label confidence stand out: on a non-member the model has only
seen the wrong label, on a member it has seen both.

Evaluation (HAMP paper Sec. V-C): on the targets only, leave-one-model-out, LiRA online
with fixed variance, pooled over all target models (``M x num_targets`` points).

:func:`poison_dataset` builds the augmented candidate arrays and keep matrix for
:func:`hampjax.training.train_many`: the original ``N`` candidates first (indices unchanged),
then ``num_targets * replicas`` poison rows, target by target, each kept by every model.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from hampjax import validation
from hampjax.attacks.leave_one_out import LeaveOneOutResult, leave_one_out

__all__ = ["PoisonedData", "poison_dataset", "poisoning_scores"]


class PoisonedData(NamedTuple):
    """Candidate arrays with Truth-Serum poison rows appended.

    Attributes:
      x: ``[N + T * R, ...]`` inputs: the original candidates, then the poison rows.
      y: ``[N + T * R]`` labels; the poison rows carry the wrong labels.
      keep: ``[M, N + T * R]`` bool; the original columns as given, poison columns all True.
      target_index: ``[T]`` int64, the targets' indices among the original candidates.
      poison_labels: ``[T]`` int64, each target's wrong label.
      poison_rows: ``[T, R]`` int64, the rows of ``x``/``y``/``keep`` holding each target's
        replicas.
      num_original: ``N``.
    """

    x: np.ndarray
    y: np.ndarray
    keep: np.ndarray
    target_index: np.ndarray
    poison_labels: np.ndarray
    poison_rows: np.ndarray
    num_original: int


def poison_dataset(
    x: Any, y: Any, keep: Any, *, num_targets: int, replicas: int, num_classes: int, seed: int
) -> PoisonedData:
    """Append Truth-Serum poison rows to a candidate pool.

    Args:
      x: ``[N, ...]`` candidate inputs.
      y: ``[N]`` int labels in ``[0, num_classes)``.
      keep: ``[M, N]`` bool membership matrix of the models to train.
      num_targets: ``T`` targets, ``1 <= T <= N`` (the reference uses 250).
      replicas: ``R >= 1`` poisoned copies per target inserted into every model (reference 8).
      num_classes: ``K >= 2``.
      seed: integer >= 0 for the target choice and the wrong labels (NumPy generator).

    Returns:
      :class:`PoisonedData`.

    Raises:
      ValueError: on inconsistent shapes, labels outside ``[0, K)`` or bad settings.

    Example:
      >>> keep = np.array([[True, False, True], [False, True, False]])
      >>> p = poison_dataset(np.arange(3.0)[:, None], np.array([0, 1, 2]), keep,
      ...                    num_targets=1, replicas=2, num_classes=3, seed=0)
      >>> p.x.shape, bool(p.keep[:, 3:].all()), bool(p.poison_labels[0] != p.y[p.target_index[0]])
      ((5, 1), True, True)
    """
    x = np.asarray(x)
    y = np.asarray(y)
    validation.check_nonempty("x", x)
    n = x.shape[0]
    validation.check_shape("y", y, (n,), what="(x.shape[0],)")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integer class labels, got dtype {y.dtype}")
    num_classes = validation.check_positive_int("num_classes", num_classes, minimum=2)
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"y must be in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    m = validation.shape_of(keep)[0] if validation.shape_of(keep) else 0
    validation.check_mask("keep", keep, (m, n))
    num_targets = validation.check_int_in_range("num_targets", num_targets, 1, n)
    replicas = validation.check_positive_int("replicas", replicas)
    seed = validation.check_positive_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    targets = rng.choice(n, size=num_targets, replace=False).astype(np.int64)
    wrong = ((y[targets] + rng.integers(1, num_classes, size=num_targets)) % num_classes).astype(np.int64)
    keep = np.asarray(keep)
    poison_rows = n + np.arange(num_targets * replicas, dtype=np.int64).reshape(num_targets, replicas)
    return PoisonedData(
        x=np.concatenate([x, np.repeat(x[targets], replicas, axis=0)]),
        y=np.concatenate([y, np.repeat(wrong, replicas).astype(y.dtype)]),
        keep=np.concatenate([keep, np.ones((m, num_targets * replicas), bool)], axis=1),
        target_index=targets,
        poison_labels=wrong,
        poison_rows=poison_rows,
        num_original=n,
    )


def poisoning_scores(
    scores: Any, poisoned: PoisonedData, *, center: str = "median", **lira_options: Any
) -> LeaveOneOutResult:
    """Leave-one-model-out LiRA (online, fixed variance) on the poisoning targets only.

    Args:
      scores: ``[M, N, Q]`` (or ``[M, N + T * R, Q]``) logit-scaled scores of every trained
        model on the original candidates, with the candidates' TRUE labels (the poison rows,
        if present, are ignored).
      poisoned: the :class:`PoisonedData` the models were trained on.
      center: LiRA centre (``"median"``, as the reference).
      **lira_options: further options of :func:`hampjax.attacks.leave_one_out`
        (e.g. ``targets``, ``min_std``, ``chunk_size``); ``online``/``fix_variance`` are fixed.

    Returns:
      :class:`LeaveOneOutResult` with ``scores``/``labels`` ``[M', T]`` (one row per target
      model, one column per poisoning target); pool with
      :func:`hampjax.attacks.leave_one_out_metrics` (``.pooled``).

    Raises:
      ValueError: as :func:`hampjax.attacks.leave_one_out`, or if ``scores`` does not cover
        the original candidates.
    """
    if not isinstance(poisoned, PoisonedData):
        raise ValueError(f"poisoned must be a PoisonedData, got {type(poisoned).__name__}")
    for name in ("online", "fix_variance"):
        if name in lira_options:
            raise ValueError(f"{name} is fixed for the poisoning evaluation (online, fixed variance)")
    validation.check_ndim("scores", scores, 3)
    m, width = validation.shape_of(scores)[:2]
    if width not in (poisoned.num_original, poisoned.keep.shape[1]) or m != poisoned.keep.shape[0]:
        raise ValueError(
            f"scores must have shape (M, N, Q) or (M, N + T * R, Q) with M={poisoned.keep.shape[0]}, "
            f"N={poisoned.num_original}, N + T * R={poisoned.keep.shape[1]}, got {validation.shape_of(scores)}")
    cols = poisoned.target_index
    return leave_one_out(
        np.asarray(scores)[:, cols], poisoned.keep[:, cols], online=True, fix_variance=True,
        center=center, **lira_options,
    )
