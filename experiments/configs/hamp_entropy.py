r"""HAMP Table IV: mean prediction entropy on members and non-members, undefended vs HAMP.

The entropies come with every ``hamp_main`` run (``<cell>/stats.json``); this config gets them
alone, cheaply: 4 models per defense (the attacks still run, on 3 shadows).

    python experiments/run.py --config=experiments/configs/hamp_entropy.py \
        --config.data_dir=$HOME/hampjax_data --config.accept_texas_terms=True --workdir=runs/hamp_entropy
    python experiments/results.py runs/hamp_entropy

Expected runtime on one GPU: not measured (no GPU lent); about 1/32 of ``hamp_main``'s training.

Paper numbers targeted (Table IV, nats, members / non-members / difference):

| dataset | undefended | HAMP |
|---|---|---|
| Purchase100 | 0.389 / 0.576 / 0.187 | 4.485 / 4.490 / 0.006 |
| Texas100 | 0.505 / 0.771 / 0.266 | 4.484 / 4.495 / 0.011 |
| CIFAR100 | 0.685 / 1.020 / 0.337 | 4.124 / 4.157 / 0.032 |
| CIFAR10 | 0.102 / 0.226 / 0.125 | 2.010 / 2.029 / 0.019 |
| Location30 | 0.224 / 0.567 / 0.343 | 2.789 / 2.847 / 0.058 |

The entropy is that of the released outputs (after HAMP's output modification for HAMP).
Config argument as in ``hamp_main``: datasets and/or defenses, and/or ``quick``.
"""

from hampjax.repro.configs import hamp_cells_config


def get_config(arg: str | None = None):
    c = hamp_cells_config("hamp_entropy", arg)
    c.num_models = 4
    return c
