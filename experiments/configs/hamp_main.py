r"""HAMP Tables I, IV and VIII: undefended vs HAMP on the five datasets, every attack, 128 LiRA
models per defense (target + 127 adaptive shadows trained with the defense's full recipe).

Launch (one GPU; add ``--config.data_dir`` where the archives are, see README "Datasets"):

    python experiments/run.py --config=experiments/configs/hamp_main.py:purchase100 \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_main_purchase100
    python experiments/run.py --config=experiments/configs/hamp_main.py \
        --config.data_dir=$HOME/hampjax_data --config.accept_texas_terms=True --workdir=runs/hamp_main
    python experiments/results.py runs/hamp_main

Config argument: empty (all five datasets), a comma-separated list of datasets and/or defenses
(default ``undefended,hamp``; add ``hamp_ls`` for the paper's LS baseline at its intensities,
``label_smoothing`` for the entropy-threshold form, ``early_stopping`` for Fig. 7: one undefended
run evaluated after several epoch counts, results ``early_stopping_e<E>``, ``dp_sgd`` for DP-SGD
at eps = 4 (tabular datasets), ``advreg`` for AdvReg; ``baselines`` for all of them, which is
what ``hamp_baselines.py`` runs), and/or
``quick`` (digits, 4 models, 2 epochs: a seconds-long CPU smoke test). Every recipe setting is a
flag: ``--config.cells.purchase100.defenses.hamp.optimizer.learning_rate=0.1``.

Expected runtime on one GPU: not measured here (no GPU was lent while this was written). The
estimate from the CPU benchmark (``experiments/bench_shadow.py``: 1.04 s per Purchase100
model-epoch on 2 CPU cores) and a 100x+ throughput of a vmapped model axis on an H100 is tens of
minutes for the tabular datasets (2 x 128 models x 100-200 epochs) and many hours for CIFAR
(DenseNet-BC-100, 2 x 128 models x 100-200 epochs).

Paper numbers targeted (Table I train/test accuracy %, Table VIII max over attacks %):

| dataset | undefended | HAMP | undef TPR@0.1%FPR | HAMP | undef TNR@0.1%FNR | HAMP |
|---|---|---|---|---|---|---|
| Purchase100 | 99.36 / 80.85 | 91.12 / 81.15 | 14.37 (NN, swapped) | 0.40 | 13.19 (LiRA) | 0.44 |
| Texas100 | 76.79 / 54.80 | 68.56 / 54.40 | 3.87 (LiRA) | 1.20 | 13.13 (LiRA) | 0.70 |
| Location30 | 99.56 / 57.40 | 78.22 / 56.30 | 34.67 (NN, swapped) | 1.19 | 42.81 (LiRA) | 0.59 |
| CIFAR10 | 98.72 / 86.72 | 95.88 / 86.28 | 8.23 (NN, swapped) | 0.92 | 10.15 (LiRA) | 0.77 |
| CIFAR100 | 86.21 / 59.56 | 68.44 / 58.92 | 6.24 (NN, swapped) | 0.46 | 20.16 (LiRA) | 0.47 |

Table IV (mean prediction entropy, members / non-members) comes from the same runs'
``stats.json``: e.g. Purchase100 undefended 0.389 / 0.576, HAMP 4.485 / 4.490.
"""

from hampjax.repro.configs import hamp_cells_config


def get_config(arg: str | None = None):
    return hamp_cells_config("hamp_main", arg)
