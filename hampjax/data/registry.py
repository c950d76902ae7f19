"""The datasets hampjax knows, in one place: name, example shape, class count.

Everything that lists datasets (recipe presets, split sizes, experiment configs, the runner's
checks, the inference-overhead benchmark that needs shapes without data) reads this table.

Example:
  >>> DATASET_INFO["purchase100"].example_shape, DATASET_INFO["purchase100"].num_classes
  ((600,), 100)
  >>> "digits" in DATASETS and "digits" not in PAPER_DATASETS
  True
"""

from __future__ import annotations

import dataclasses
import types

__all__ = ["DatasetInfo", "DATASET_INFO", "DATASETS", "PAPER_DATASETS"]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset without loading it.

    Attributes:
      name: the dataset's name.
      example_shape: shape of one example as loaded (tabular: ``(features,)``; images:
        ``(H, W, C)``).
      num_classes: number of classes.
      image: whether examples are images.
    """

    name: str
    example_shape: tuple[int, ...]
    num_classes: int
    image: bool


DATASET_INFO = types.MappingProxyType({d.name: d for d in (
    DatasetInfo("purchase100", (600,), 100, False),
    DatasetInfo("texas100", (6169,), 100, False),
    DatasetInfo("location30", (446,), 30, False),
    DatasetInfo("cifar10", (32, 32, 3), 10, True),
    DatasetInfo("cifar100", (32, 32, 3), 100, True),
    DatasetInfo("digits", (8, 8, 1), 10, True),  # scikit-learn's, offline: the quick configs'.
)})
"""Every dataset by name (HAMP's five, then ``digits``)."""

DATASETS = tuple(DATASET_INFO)
"""All dataset names."""

PAPER_DATASETS = ("purchase100", "texas100", "location30", "cifar10", "cifar100")
"""The five datasets of the HAMP paper's tables (``DATASETS`` without ``digits``)."""
