r"""HAMP Table VII: per-sample inference time of the model and of HAMP's output modification.

As in the paper, the random inputs' outputs are precomputed (a pool) and only the
sort-and-scatter is timed at query time; 1,000 queries per batch, median of ``repeats``.
No training and no data are needed (the shapes are the datasets').

    python experiments/run.py --config=experiments/configs/hamp_overhead.py --workdir=runs/hamp_overhead
    python experiments/results.py runs/hamp_overhead

Expected runtime on one GPU: under a minute (compilation dominates).

Paper numbers targeted (V100, per sample; undefended / MemGuard / HAMP): Purchase100 0.34 /
354.72 / 0.74 ms; Texas100 0.31 / 345.61 / 0.69 ms; CIFAR100 16.0 / 407.75 / 16.34 ms; CIFAR10
12.2 / 389.90 / 12.24 ms; Location30 0.23 / 335.42 / 0.32 ms. The paper's absolute times are per
query of a PyTorch model; the claim to check is that HAMP adds a small fraction of the forward
pass.
"""

from hampjax.repro.configs import base_config, split_arg

DATASETS = ("purchase100", "texas100", "location30", "cifar10", "cifar100")


def get_config(arg: str | None = None):
    quick, datasets = split_arg(arg)
    c = base_config("hamp_overhead", "hamp_overhead")
    c.datasets = tuple(datasets) or tuple(DATASETS)
    c.batch = 1000
    c.repeats = 5
    if quick:
        c.name += "_quick"
        c.datasets = ("digits", "location30")
        c.batch = 100
        c.repeats = 2
        c.pool_size = 50
    return c
