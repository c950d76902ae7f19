"""Reproduction experiments: datasets and models per paper, the experiment runner, the
papers' numbers and the results tables.

Configs live in ``experiments/configs/`` (ml_collections); ``experiments/run.py`` runs one
(``--config=experiments/configs/hamp_main.py:quick --workdir=runs/x``) and
``experiments/results.py`` prints its tables next to the papers' numbers
(:mod:`hampjax.repro.results`, figures in :mod:`hampjax.repro.figures`).
"""

from hampjax.repro.datasets import (
    DIGITS_SPLIT_SIZES,
    EXPERIMENT_DATASETS,
    ExperimentData,
    default_model,
    load_dataset,
    load_experiment_data,
)
from hampjax.repro.runner import EXPERIMENTS, record_cell_data, run_experiment

__all__ = [
    "DIGITS_SPLIT_SIZES",
    "EXPERIMENT_DATASETS",
    "ExperimentData",
    "default_model",
    "load_dataset",
    "load_experiment_data",
    "EXPERIMENTS",
    "record_cell_data",
    "run_experiment",
]
