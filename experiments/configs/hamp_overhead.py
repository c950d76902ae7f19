r"""HAMP Table VII: per-sample inference time of the model, of HAMP's output modification
and of MemGuard.

As in the paper, the random inputs' outputs are precomputed (a pool) and only the
sort-and-scatter is timed at query time; 1,000 queries per batch, median of ``repeats``.
No training and no data are needed (the shapes are the datasets'). MemGuard's search
(``config.memguard``: its settings, the HAMP code's by default) is timed per query with its
full step budget, in batches of ``memguard_batch`` and one query at a time, and with early
exit (:mod:`hampjax.repro.overhead`).

    python experiments/run.py --config=experiments/configs/hamp_overhead.py --workdir=runs/hamp_overhead
    python experiments/results.py runs/hamp_overhead

Expected runtime on one GPU: under a minute (compilation dominates).

Paper numbers targeted (V100, per sample; undefended / MemGuard / HAMP): Purchase100 0.34 /
354.72 / 0.74 ms; Texas100 0.31 / 345.61 / 0.69 ms; CIFAR100 16.0 / 407.75 / 16.34 ms; CIFAR10
12.2 / 389.90 / 12.24 ms; Location30 0.23 / 335.42 / 0.32 ms. The paper's absolute times are per
query of a PyTorch model; the claim to check is that HAMP adds a small fraction of the forward
pass.
"""

import ml_collections
from ml_collections import config_dict

from hampjax.data import PAPER_DATASETS
from hampjax.repro.configs import QUICK_POOL_SIZE, split_arg
from hampjax.training import MemGuardSpec


def get_config(arg: str | None = None):
    quick, datasets = split_arg(arg)
    c = ml_collections.ConfigDict()
    c.experiment = "hamp_overhead"
    c.name = "hamp_overhead"
    c.seed = 0
    c.model = config_dict.placeholder(str)  # None: the paper's model for each dataset.
    c.datasets = tuple(datasets) or tuple(PAPER_DATASETS)
    c.pool_size = 1000  # HAMP's random outputs per model.
    c.batch = 1000
    c.repeats = 5
    c.memguard_batch = 100  # MemGuard's queries per batch (its full budget: 2,093 steps each).
    c.memguard = ml_collections.ConfigDict(MemGuardSpec().to_dict())
    if quick:
        c.name += "_quick"
        c.datasets = ("digits", "location30")
        c.batch = 100
        c.repeats = 2
        c.pool_size = QUICK_POOL_SIZE
        c.memguard_batch = 4
    return c
