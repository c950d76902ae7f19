"""Shared pieces of the experiment configs in ``experiments/configs/``.

Every config is an ``ml_collections.ConfigDict`` built by :func:`base_config` plus the
experiment's own fields; :func:`make_quick` turns it into the config's ``quick`` variant (digits,
4 models, 2 epochs, tiny attack budgets), which runs in seconds on a CPU and is a smoke test.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

__all__ = ["base_config", "make_quick", "split_arg"]


def base_config(experiment: str, name: str) -> ml_collections.ConfigDict:
    """Fields every experiment reads, with the papers' settings as defaults."""
    c = ml_collections.ConfigDict()
    c.experiment = experiment
    c.name = name
    c.seed = 0
    c.data_dir = config_dict.placeholder(str)  # Raw archives / caches (not needed for digits).
    c.download = False
    c.accept_texas_terms = False
    c.num_models = 128  # Target + 127 shadow models per defense (LiRA's 128).
    c.epochs = config_dict.placeholder(int)  # None: each recipe's paper epochs.
    c.model = config_dict.placeholder(str)  # None: the paper's model for the dataset.
    c.model_kwargs = ml_collections.ConfigDict()
    c.pool_size = 1000  # HAMP: random outputs per model for output modification.
    c.bootstrap_resamples = 200
    c.plots = True
    c.attacks = ml_collections.ConfigDict(dict(
        nn_epochs=200, top3_max_epochs=200, noise_variants=100, boundary_samples=0))
    return c


def make_quick(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The ``quick`` variant: digits, 4 models, 2 epochs, tiny attack budgets, no plots."""
    c.name = c.name + "_quick"
    c.num_models = 4
    c.epochs = 2
    c.bootstrap_resamples = 10
    c.plots = False
    c.pool_size = 50
    c.attacks.nn_epochs = 2
    c.attacks.top3_max_epochs = 2
    c.attacks.noise_variants = 0
    return c


def split_arg(arg: str | None) -> tuple[bool, list[str]]:
    """Parse a config argument ``"quick"``, ``"purchase100"``, ``"quick,foo"`` -> (quick, rest)."""
    parts = [p for p in (arg or "").split(",") if p]
    return "quick" in parts, [p for p in parts if p != "quick"]
