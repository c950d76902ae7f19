"""Datasets, splits and models for the reproduction experiments.

:func:`load_experiment_data` turns a dataset name into what
:func:`hampjax.evaluation.evaluate_defense` needs: the candidate pool (members and non-members
of the target, from which every shadow model also draws a balanced half), a validation set, a
test set, HAMP's random-input generator, and the paper's model for that dataset.

Split schemes (all consecutive slices of a seeded permutation, recorded with a data hash):

* ``"hamp"`` (HAMP code): the pool is the target's members plus an equally large non-member pool
  (Purchase100 18,000 + 18,000), so every model trains on as many examples as the paper's target.
  ``train_size`` overrides the paper's size (Fig. 6).
* ``"relaxloss"`` (authors' code): the pool is the target-train and target-test slices (each
  model trains on one slice's worth), the test set is the reference ("pseudo") slice.

``digits`` (offline, bundled with scikit-learn) is the dataset of every ``quick`` config: 700 members,
700 non-members, 100 validation and 297 test images.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hampjax import validation
from hampjax.evaluation import EvalData
from hampjax.data import (
    DATASETS,
    HAMP_SPLIT_SIZES,
    Dataset,
    SplitSizes,
    hamp_split,
    hamp_split_sizes,
    load_cifar10,
    load_cifar100,
    load_digits_dataset,
    load_location30,
    load_purchase100,
    load_texas100,
    relaxloss_image_split,
    relaxloss_tabular_split,
)
from hampjax.models import get_model

__all__ = ["EXPERIMENT_DATASETS", "DIGITS_SPLIT_SIZES", "ExperimentData", "load_dataset",
           "load_experiment_data", "default_model", "default_model_name"]

EXPERIMENT_DATASETS = DATASETS  # The one list, hampjax.data.DATASETS (kept as an alias).
DIGITS_SPLIT_SIZES = SplitSizes(members=700, val=100, test=297, nonmembers=700)

# The papers' models; ``digits`` uses a small MLP so that quick runs take seconds.
_DEFAULT_MODELS = {
    "purchase100": ("fc", {}),
    "texas100": ("fc", {}),
    "location30": ("fc", {}),
    "cifar10": ("densenet100_bc", {}),
    "cifar100": ("densenet100_bc", {}),
    "digits": ("fc", {"hidden_sizes": (256, 128)}),
}


@dataclasses.dataclass(frozen=True, eq=False)
class ExperimentData:
    """Everything one experiment cell needs.

    Attributes:
      eval_data: candidate pool, validation and test sets, random inputs (float32, normalized).
      dataset: the dataset name (a key of the recipes' per-dataset settings).
      num_classes: number of classes.
      record: JSON-ready split record (scheme, seed, data hash, sizes).
    """

    eval_data: EvalData
    dataset: str
    num_classes: int
    record: dict


def load_dataset(name: str, *, data_dir: str | None, download: bool = False,
                 accept_texas_terms: bool = False) -> Dataset:
    """Load a whole dataset by name (CIFAR: train and test together, in the original order)."""
    validation.check_choice("dataset", name, EXPERIMENT_DATASETS)
    if name == "digits":
        return load_digits_dataset()
    if data_dir is None:
        raise ValueError(f"data_dir is required for dataset {name!r} (only 'digits' ships offline)")
    if name == "purchase100":
        return load_purchase100(data_dir, download=download)
    if name == "texas100":
        return load_texas100(data_dir, accept_texas_terms=accept_texas_terms, download=download)
    if name == "location30":
        return load_location30(data_dir, download=download)
    loader = load_cifar10 if name == "cifar10" else load_cifar100
    return loader(data_dir, split="all", download=download)


def default_model_name(dataset: str) -> tuple[str, dict[str, Any]]:
    """``(zoo name, keyword arguments)`` of the paper's model for ``dataset``."""
    validation.check_choice("dataset", dataset, EXPERIMENT_DATASETS)
    name, kwargs = _DEFAULT_MODELS[dataset]
    return name, dict(kwargs)


def default_model(dataset: str, num_classes: int, name: str | None = None, **kwargs: Any):
    """The paper's model for ``dataset`` (or the zoo model ``name``)."""
    validation.check_choice("dataset", dataset, EXPERIMENT_DATASETS)
    model_name, defaults = _DEFAULT_MODELS[dataset]
    if name is not None:
        model_name, defaults = name, {}
    return get_model(model_name, num_classes, **{**defaults, **kwargs})


def _inputs(ds: Dataset) -> np.ndarray:
    # Images stay [N, H, W, C] for conv nets except digits, whose MLP takes flat 64-vectors.
    if ds.image_shape is None or ds.name == "digits":
        return ds.flat()
    return ds.normalized()


def load_experiment_data(
    dataset: str,
    *,
    seed: int,
    data_dir: str | None = None,
    scheme: str = "hamp",
    train_size: int | None = None,
    download: bool = False,
    accept_texas_terms: bool = False,
    ds: Dataset | None = None,
) -> ExperimentData:
    """Load ``dataset``, split it with ``scheme`` and return the evaluation data.

    Args:
      dataset: one of :data:`EXPERIMENT_DATASETS`.
      seed: permutation seed (integer >= 0).
      data_dir: where the raw archives / caches live (not needed for ``digits``).
      scheme: ``"hamp"`` or ``"relaxloss"`` (see the module docstring).
      train_size: HAMP scheme only: the paper's ``train_size`` (members + validation); ``None``
        uses the paper's size (or :data:`DIGITS_SPLIT_SIZES`).
      download: allow downloads of missing archives.
      accept_texas_terms: required to load Texas100 (its data-use agreement).
      ds: an already loaded dataset (skips loading; tests and sweeps over sizes).

    Returns:
      :class:`ExperimentData`.

    Raises:
      ValueError: on an unknown dataset or scheme, or sizes that do not fit.
    """
    validation.check_choice("dataset", dataset, EXPERIMENT_DATASETS)
    validation.check_choice("scheme", scheme, ("hamp", "relaxloss"))
    if ds is None:
        ds = load_dataset(dataset, data_dir=data_dir, download=download,
                          accept_texas_terms=accept_texas_terms)
    x = _inputs(ds)
    if scheme == "hamp":
        if train_size is not None:
            sizes = hamp_split_sizes(train_size, val_fraction=0.2 if dataset == "location30" else 0.1)
        else:
            sizes = DIGITS_SPLIT_SIZES if dataset == "digits" else HAMP_SPLIT_SIZES[dataset]
        split = hamp_split(ds.x, ds.y, sizes, seed=seed)
        pool = np.concatenate([split.members, split.nonmembers])
        val, test = split.val, split.test
    else:
        if train_size is not None:
            raise ValueError("train_size applies only to scheme='hamp'")
        splitter = relaxloss_tabular_split if ds.image_shape is None else relaxloss_image_split
        split = splitter(ds.x, ds.y, seed=seed)
        pool = np.concatenate([split.target_train, split.target_test])
        # The reference slice is the test set (accuracy, RMIA population); the shadow slices
        # give the validation set (used only by recipes that select on validation accuracy).
        val, test = split.shadow_test, split.reference
    image_shape = ds.image_shape if ds.image_shape is not None and ds.name == "digits" else None

    def random_inputs(key, n):
        return np.asarray(ds.random_inputs(key, n, flat=x.ndim == 2))

    data = EvalData(x=x[pool], y=ds.y[pool], x_test=x[test], y_test=ds.y[test],
                    x_val=x[val], y_val=ds.y[val], random_inputs=random_inputs,
                    image_shape=image_shape, binary_features=ds.binary_features,
                    normalization=None if ds.mean is None or ds.binary_features
                    else (ds.mean, ds.std))
    return ExperimentData(eval_data=data, dataset=dataset, num_classes=ds.num_classes,
                          record=split.record())
