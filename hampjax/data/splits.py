"""Seeded split schemes: HAMP and RelaxLoss (authors' code) and the LiRA pool.

Every split is made of consecutive slices of one seeded permutation of the dataset indices
(``np.random.default_rng(seed).permutation(N)``). The authors ship fixed permutation files; a
seeded permutation reproduces the split sizes, not the exact members, so every split carries the
``seed`` and a ``data_hash`` of the raw arrays to record with the results (``split.record()``).

The attack roles inside a HAMP split (known-train / known-val / evaluated, 45/5/50) are made by
``hampjax.attacks.evaluate.attack_roles``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

from hampjax import validation

__all__ = [
    "SplitSizes",
    "HAMP_SPLIT_SIZES",
    "hamp_split_sizes",
    "HampSplit",
    "hamp_split",
    "RelaxLossSplit",
    "relaxloss_image_split",
    "relaxloss_tabular_split",
    "LiraPool",
    "lira_candidate_pool",
    "data_hash",
]


def data_hash(x: Any, y: Any) -> str:
    """SHA-256 of the raw arrays (dtype, shape and bytes of ``x`` then ``y``).

    Args:
      x: inputs, any NumPy-convertible array.
      y: labels.

    Returns:
      64-character lowercase hex digest; it changes with any value, dtype or shape change.

    Example:
      >>> data_hash(np.zeros((2, 3), np.uint8), np.array([0, 1]))[:8]  # doctest: +SKIP
      '...'
    """
    digest = hashlib.sha256()
    for arr in (x, y):
        arr = np.ascontiguousarray(np.asarray(arr))
        digest.update(f"{arr.dtype.str}{arr.shape};".encode())
        digest.update(arr.reshape(-1).view(np.uint8) if arr.size else b"")
    return digest.hexdigest()


def _check_data(x: Any, y: Any) -> int:
    validation.check_nonempty("x", x)
    validation.check_ndim("y", y, 1)
    n, m = validation.shape_of(x)[0], validation.shape_of(y)[0]
    if n != m:
        raise ValueError(f"x and y must have the same number of examples, got {n} and {m}")
    return n


def _permutation(n: int, seed: Any) -> tuple[np.ndarray, int]:
    seed = validation.check_positive_int("seed", seed, minimum=0)
    return np.random.default_rng(seed).permutation(n), seed


def _check_fits(what: str, needed: int, n: int) -> None:
    if needed > n:
        raise ValueError(f"{what} needs {needed} examples, but the dataset has only {n}")


@dataclasses.dataclass(frozen=True)
class SplitSizes:
    """Sizes of a HAMP split (consecutive slices, in this order).

    Attributes:
      members: target model's training set.
      val: validation set (model selection).
      test: test set (accuracy).
      nonmembers: non-member pool for the attacks (same size as ``members`` in the paper).
    """

    members: int
    val: int
    test: int
    nonmembers: int

    @property
    def total(self) -> int:
        return self.members + self.val + self.test + self.nonmembers


def hamp_split_sizes(train_size: int, *, val_fraction: float = 0.1, test_size: int | None = None) -> SplitSizes:
    """HAMP sizes from ``train_size`` (which includes validation): members ``0.9 * train_size``.

    Args:
      train_size: the paper's ``train_size``, ``>= 10``.
      val_fraction: validation size as a fraction of ``train_size`` in ``(0, 1]`` (0.1; 0.2 for
        Location30, where validation comes on top of the members).
      test_size: test size; ``None`` means ``0.1 * train_size``.

    Returns:
      ``SplitSizes(members=round(0.9 t), val=round(val_fraction t), test, nonmembers=members)``.

    Raises:
      ValueError: on out-of-range arguments.

    Example:
      >>> hamp_split_sizes(20_000)
      SplitSizes(members=18000, val=2000, test=2000, nonmembers=18000)
    """
    train_size = validation.check_positive_int("train_size", train_size, minimum=10)
    validation.check_in_range("val_fraction", val_fraction, 0.0, 1.0, low_inclusive=False, high_inclusive=True)
    members = int(round(0.9 * train_size))
    val = max(1, int(round(val_fraction * train_size)))
    if test_size is None:
        test = int(round(0.1 * train_size))
    else:
        test = validation.check_positive_int("test_size", test_size)
    return SplitSizes(members=members, val=val, test=test, nonmembers=members)


HAMP_SPLIT_SIZES: dict[str, SplitSizes] = {
    "purchase100": hamp_split_sizes(20_000),
    "texas100": hamp_split_sizes(15_000),
    "location30": hamp_split_sizes(1_500, val_fraction=0.2, test_size=1_000),
    "cifar10": hamp_split_sizes(25_000),
    "cifar100": hamp_split_sizes(25_000),
}


def _record(split: Any, scheme: str) -> dict[str, Any]:
    sizes = {f.name: int(len(getattr(split, f.name))) for f in dataclasses.fields(split)
             if isinstance(getattr(split, f.name), np.ndarray)}
    return {"scheme": scheme, "seed": split.seed, "data_hash": split.data_hash,
            "num_examples": split.num_examples, "sizes": sizes}


@dataclasses.dataclass(frozen=True, eq=False)
class HampSplit:
    """A HAMP split: ``int64`` index arrays into the dataset, disjoint.

    Attributes:
      members, val, test, nonmembers: index arrays (see ``SplitSizes``).
      seed: permutation seed.
      data_hash: ``data_hash(x, y)`` of the split dataset.
      num_examples: dataset length.
    """

    members: np.ndarray
    val: np.ndarray
    test: np.ndarray
    nonmembers: np.ndarray
    seed: int
    data_hash: str
    num_examples: int

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (scheme, seed, data hash, sizes) to save with results."""
        return _record(self, "hamp")


def hamp_split(x: Any, y: Any, sizes: SplitSizes, *, seed: int) -> HampSplit:
    """HAMP split: members, val, test, non-members as consecutive slices of a seeded permutation.

    Args:
      x: inputs ``[N, ...]`` (hashed, not copied).
      y: labels ``[N]``.
      sizes: e.g. ``HAMP_SPLIT_SIZES["purchase100"]``.
      seed: permutation seed, an integer ``>= 0``.

    Returns:
      ``HampSplit``; the same ``seed`` and data always give the same indices.

    Raises:
      ValueError: if ``x``/``y`` lengths differ or are empty, ``seed`` is invalid, or the sizes
        do not fit in ``N``.

    Example:
      >>> s = hamp_split(np.zeros((100, 2)), np.zeros(100, int), hamp_split_sizes(20), seed=0)
      >>> len(s.members), len(s.val), len(s.test), len(s.nonmembers)
      (18, 2, 2, 18)
    """
    if not isinstance(sizes, SplitSizes):
        raise ValueError(f"sizes must be a SplitSizes (e.g. HAMP_SPLIT_SIZES['purchase100']), got {sizes!r}")
    n = _check_data(x, y)
    _check_fits(f"the HAMP split {sizes}", sizes.total, n)
    perm, seed = _permutation(n, seed)
    bounds = np.cumsum([0, sizes.members, sizes.val, sizes.test, sizes.nonmembers])
    parts = [perm[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    return HampSplit(*parts, seed=seed, data_hash=data_hash(x, y), num_examples=n)


@dataclasses.dataclass(frozen=True, eq=False)
class RelaxLossSplit:
    """A RelaxLoss split: ``int64`` index arrays into the dataset, disjoint.

    Attributes:
      target_train, target_test: the target model's members and non-members.
      shadow_train, shadow_test: the shadow model's members and non-members.
      reference: the remaining pool (CIFAR: the "pseudo" slice).
      seed, data_hash, num_examples: as in ``HampSplit``.
    """

    target_train: np.ndarray
    target_test: np.ndarray
    shadow_train: np.ndarray
    shadow_test: np.ndarray
    reference: np.ndarray
    seed: int
    data_hash: str
    num_examples: int

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (scheme, seed, data hash, sizes) to save with results."""
        return _record(self, "relaxloss")


def relaxloss_image_split(x: Any, y: Any, *, seed: int, slice_size: int | None = None) -> RelaxLossSplit:
    """RelaxLoss CIFAR split: five consecutive slices of the shuffled pool.

    In order: target train, target test, shadow train, shadow test, reference ("pseudo").
    CIFAR uses the 60k train+test pool (``load_cifar10(..., split="all")``) and 12,000 per slice.

    Args:
      x: inputs ``[N, ...]``.
      y: labels ``[N]``.
      seed: permutation seed, integer ``>= 0``.
      slice_size: examples per slice; ``None`` means ``N // 5``.

    Returns:
      ``RelaxLossSplit`` with five slices of ``slice_size``.

    Raises:
      ValueError: bad data or seed, or ``5 * slice_size > N``.

    Example:
      >>> s = relaxloss_image_split(np.zeros((60, 1)), np.zeros(60, int), seed=0)
      >>> len(s.target_train), len(s.reference)
      (12, 12)
    """
    n = _check_data(x, y)
    size = max(n // 5, 1) if slice_size is None else validation.check_positive_int("slice_size", slice_size)
    _check_fits(f"5 slices of slice_size={size}", 5 * size, n)
    perm, seed = _permutation(n, seed)
    parts = [perm[i * size:(i + 1) * size] for i in range(5)]
    return RelaxLossSplit(*parts, seed=seed, data_hash=data_hash(x, y), num_examples=n)


def relaxloss_tabular_split(x: Any, y: Any, *, seed: int) -> RelaxLossSplit:
    """RelaxLoss Purchase/Texas split: 40% train / 20% reference / 40% test of a permutation.

    With ``h = floor(0.4 N) // 2``: target train = ``perm[:h]``, shadow train = ``perm[h:2h]``,
    target test = ``perm[N-2h:N-h]``, shadow test = ``perm[N-h:]``, reference = the middle.

    Args:
      x: inputs ``[N, ...]``, ``N >= 5``.
      y: labels ``[N]``.
      seed: permutation seed, integer ``>= 0``.

    Returns:
      ``RelaxLossSplit``.

    Raises:
      ValueError: bad data or seed, or ``N < 5``.

    Example:
      >>> s = relaxloss_tabular_split(np.zeros((100, 1)), np.zeros(100, int), seed=0)
      >>> len(s.target_train), len(s.shadow_test), len(s.reference)
      (20, 20, 20)
    """
    n = _check_data(x, y)
    _check_fits("the RelaxLoss tabular split", 5, n)
    perm, seed = _permutation(n, seed)
    h = int(np.floor(0.4 * n)) // 2
    return RelaxLossSplit(
        target_train=perm[:h], target_test=perm[n - 2 * h:n - h], shadow_train=perm[h:2 * h],
        shadow_test=perm[n - h:], reference=perm[2 * h:n - 2 * h],
        seed=seed, data_hash=data_hash(x, y), num_examples=n,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class LiraPool:
    """LiRA candidate pool: the first ``2 N`` permuted examples, and the rest.

    Attributes:
      candidates: ``int64 [2 * num_members]`` indices; each model trains on about half.
      remainder: the other indices (held out from every model: test / population data).
      seed, data_hash, num_examples: as in ``HampSplit``.
    """

    candidates: np.ndarray
    remainder: np.ndarray
    seed: int
    data_hash: str
    num_examples: int

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (scheme, seed, data hash, sizes) to save with results."""
        return _record(self, "lira")


def lira_candidate_pool(x: Any, y: Any, *, num_members: int, seed: int) -> LiraPool:
    """LiRA's candidate pool: the first ``2 * num_members`` examples of a seeded permutation.

    Args:
      x: inputs ``[N, ...]``.
      y: labels ``[N]``.
      num_members: training-set size ``N_train`` of each model, ``>= 1``.
      seed: permutation seed, integer ``>= 0``.

    Returns:
      ``LiraPool``.

    Raises:
      ValueError: bad data or seed, or ``2 * num_members > N``.

    Example:
      >>> p = lira_candidate_pool(np.zeros((10, 1)), np.zeros(10, int), num_members=3, seed=0)
      >>> len(p.candidates), len(p.remainder)
      (6, 4)
    """
    n = _check_data(x, y)
    num_members = validation.check_positive_int("num_members", num_members)
    _check_fits(f"a LiRA pool of 2 * num_members={2 * num_members}", 2 * num_members, n)
    perm, seed = _permutation(n, seed)
    return LiraPool(perm[:2 * num_members], perm[2 * num_members:], seed=seed, data_hash=data_hash(x, y),
                    num_examples=n)
