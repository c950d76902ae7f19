"""Reproduction experiments: datasets and models per paper, the experiment runner, the
papers' numbers and the results tables.

Configs live in ``experiments/configs/`` (ml_collections; every recipe is a spec dict one
``--config.`` flag away); ``experiments/run.py`` runs one
(``--config=experiments/configs/hamp_main.py:quick --workdir=runs/x``) and
``experiments/results.py`` prints its tables next to the papers' numbers
(:mod:`hampjax.repro.results`). The experiment kinds live in one registry
(:data:`hampjax.repro.kinds.EXPERIMENT_KINDS`); run directories in :mod:`hampjax.repro.rundir`.
"""

from hampjax.repro.datasets import (
    DIGITS_SPLIT_SIZES,
    EXPERIMENT_DATASETS,
    ExperimentData,
    default_model,
    load_dataset,
    load_experiment_data,
)
from hampjax.repro.kinds import EXPERIMENT_KINDS, ExperimentKind
from hampjax.repro.rundir import record_cell_data
from hampjax.repro.runner import check_config, run_experiment

__all__ = [
    "DIGITS_SPLIT_SIZES",
    "EXPERIMENT_DATASETS",
    "ExperimentData",
    "default_model",
    "load_dataset",
    "load_experiment_data",
    "EXPERIMENT_KINDS",
    "ExperimentKind",
    "check_config",
    "record_cell_data",
    "run_experiment",
]
