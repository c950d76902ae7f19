"""Membership designs: which shadow model trains on which example.

A design is a boolean *keep matrix* ``keep [M, N]``: ``keep[m, j]`` is True when model ``m``
trains on candidate example ``j`` (example ``j`` is IN for model ``m``). Two designs:

* :func:`balanced_keep` - LiRA's argsort scheme: draw ``U ~ uniform(M x N)`` and keep
  ``argsort(U, axis=0) < M / 2``. Every example is IN for exactly ``M / 2`` models; each model
  trains on about ``N / 2`` examples.
* :func:`paired_keep` - complementary pairs: model ``2i`` trains on a random half of the
  examples and model ``2i + 1`` on the other half. Every model trains on exactly ``N / 2``
  examples (``floor`` / ``ceil`` for odd ``N``), every example is IN once per pair, and the
  design can grow by pairs while staying balanced. With ``stratify_labels`` each class is
  halved separately.

Both are deterministic functions of an integer ``seed`` (NumPy's PCG64); save the keep matrix
with every run (:func:`save_keep` / :func:`load_keep`, the LiRA reference layout ``keep.npy``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from hampjax import atomic, validation

__all__ = ["balanced_keep", "paired_keep", "save_keep", "load_keep", "check_keep"]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def balanced_keep(num_models: int, num_examples: int, *, seed: int) -> np.ndarray:
    """LiRA's balanced design: every example IN for exactly ``num_models / 2`` models.

    Args:
      num_models: M, an even integer >= 2.
      num_examples: N >= 1.
      seed: integer >= 0 (required; no default).

    Returns:
      ``keep`` bool ``[M, N]``.

    Raises:
      ValueError: if M is odd or < 2, N < 1, or the seed is invalid.

    Example:
      >>> keep = balanced_keep(4, 6, seed=0)
      >>> keep.sum(axis=0).tolist()
      [2, 2, 2, 2, 2, 2]
    """
    num_models = validation.check_positive_int("num_models", num_models, minimum=2)
    if num_models % 2:
        raise ValueError(f"num_models must be an even integer >= 2, got {num_models}")
    num_examples = validation.check_positive_int("num_examples", num_examples)
    rng = np.random.default_rng(_check_seed(seed))
    uniform = rng.uniform(size=(num_models, num_examples))
    return np.argsort(uniform, axis=0) < num_models // 2


def paired_keep(
    num_models: int,
    num_examples: int,
    *,
    seed: int,
    stratify_labels: np.ndarray | None = None,
) -> np.ndarray:
    """Complementary pairs: models ``2i`` and ``2i + 1`` split the examples in two halves.

    Args:
      num_models: M, an even integer >= 2.
      num_examples: N >= 2.
      seed: integer >= 0 (required).
      stratify_labels: optional integer labels ``[N]``; when given, each class is split in
        half separately (an odd class count gives its extra example to the even model of one
        pair and to the odd model of the next, alternating by class).

    Returns:
      ``keep`` bool ``[M, N]``; ``keep[2i] == ~keep[2i + 1]``.

    Example:
      >>> keep = paired_keep(2, 6, seed=0)
      >>> keep.sum(axis=1).tolist(), bool((keep[0] ^ keep[1]).all())
      ([3, 3], True)
    """
    num_models = validation.check_positive_int("num_models", num_models, minimum=2)
    if num_models % 2:
        raise ValueError(f"num_models must be an even integer >= 2, got {num_models}")
    num_examples = validation.check_positive_int("num_examples", num_examples, minimum=2)
    rng = np.random.default_rng(_check_seed(seed))
    if stratify_labels is not None:
        labels = np.asarray(stratify_labels)
        validation.check_shape("stratify_labels", labels, (num_examples,), what="(num_examples,)")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"stratify_labels must be integer class labels, got dtype {labels.dtype}")
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    else:
        groups = [np.arange(num_examples)]
    keep = np.zeros((num_models, num_examples), dtype=bool)
    for pair in range(num_models // 2):
        first = np.zeros(num_examples, dtype=bool)
        for g, members in enumerate(groups):
            perm = rng.permutation(members)
            # Alternate which side gets the extra example of an odd-sized group.
            half = (len(perm) + ((g + pair) % 2)) // 2
            first[perm[:half]] = True
        keep[2 * pair] = first
        keep[2 * pair + 1] = ~first
    return keep


def check_keep(keep: Any, *, num_examples: int | None = None) -> np.ndarray:
    """Validate a keep matrix: bool ``[M, N]`` and every model keeps at least one example."""
    keep = np.asarray(keep)
    validation.check_ndim("keep", keep, 2)
    if keep.dtype != np.bool_:
        raise ValueError(f"keep must be a boolean matrix [num_models, num_examples], got dtype {keep.dtype}")
    if num_examples is not None and keep.shape[1] != num_examples:
        raise ValueError(
            f"keep must have num_examples={num_examples} columns (one per training candidate), "
            f"got shape {keep.shape}"
        )
    empty = np.flatnonzero(~keep.any(axis=1))
    if empty.size:
        raise ValueError(f"keep must give every model at least one example; model(s) {empty[:5].tolist()} have none")
    return keep


def save_keep(path: str | os.PathLike, keep: np.ndarray) -> None:
    """Write ``keep`` as ``.npy`` atomically (temp file, then rename)."""
    keep = check_keep(keep)
    atomic.write_with(path, lambda f: np.save(f, keep))


def load_keep(path: str | os.PathLike, *, recover: str | None = None) -> np.ndarray:
    """Read a keep matrix written by :func:`save_keep` (or LiRA's ``keep.npy``).

    The stored array must already be a bool ``[M, N]`` matrix: a float or integer array is
    refused rather than cast (a cast would turn 0.5 or 2 into True without a word).

    Args:
      path: the ``.npy`` file.
      recover: what the error message tells the user to do (default: delete the file or use
        a new directory).

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: naming the file when it is corrupt or truncated, not 2-D, not bool, or gives
        a model no example.
    """
    path = os.fspath(path)
    keep = atomic.load_npy(path, recover=recover)
    how = recover or f"delete {path!r} to have it written again, or use a new directory"
    if keep.dtype != np.bool_:
        raise ValueError(f"keep matrix {path} must have dtype bool [num_models, num_examples], got "
                         f"dtype {keep.dtype} (not cast: {how})")
    try:
        return check_keep(keep)
    except ValueError as err:
        raise ValueError(f"keep matrix {path}: {err}; {how}") from None
