r"""HAMP Tables I / VIII and Figs. 1 / 3: HAMP next to all seven baselines, on the five
datasets, against adaptive attackers (each defense's 127 shadows are trained with it):
undefended, HAMP, label smoothing at the paper's intensities (``hamp_ls``: Purchase100 0.03,
Texas100 0.09, CIFAR-100 0.01), early stopping (one undefended run evaluated after several
epoch counts, results ``early_stopping_e<E>``; HAMP Fig. 7), DP-SGD at the paper's eps = 4
(Purchase100, Texas100, Location30; eps in the results), AdvReg (the paper's lambda per
dataset), SELENA (25 sub-models per model, each of them trained for every shadow too), DMP
(a GAN per model; not Purchase100) and MemGuard (the undefended models' outputs
post-processed). Each defense appears where the paper evaluates it. The results command also
prints the Fig. 1 summary (each defense averaged over the datasets) and draws it
(``hamp_fig1.png``).

    python experiments/run.py --config=experiments/configs/hamp_baselines.py:purchase100 \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_baselines_purchase100
    python experiments/results.py runs/hamp_baselines_purchase100

Config argument: as ``hamp_main.py`` (datasets, extra defenses, ``quick``: digits, 4 models, 2
epochs, every baseline). Every recipe setting is a flag, e.g.
``--config.cells.purchase100.defenses.dp_sgd.privacy.noise_multiplier=0.9``.

Expected runtime on one GPU: not measured (no GPU lent). Per dataset it trains 128 models for
each defense (early stopping trains once; MemGuard trains undefended ones), plus 128 x 25
SELENA sub-models, 128 DMP teachers and GANs; DP-SGD's per-example clipping costs a few times
a plain step.

Paper numbers targeted (Table I train / test accuracy %, Table VIII highest TPR@0.1%FPR /
TNR@0.1%FNR %, printed; L = LiRA, N = NN attack):

| defense | Purchase100 | Texas100 | Location30 | CIFAR10 | CIFAR100 |
|---|---|---|---|---|---|
| AdvReg | 93.97 / 75.75; 2.93N / 3.14L | 62.76 / 51.60; 2.19L / 2.99L | 69.70 / 48.20; 2.07N / 2.07L | 86.73 / 82.16; 0.57N / 0.63L | 55.78 / 44.36; 0.71N / 0.85L |
| DP-SGD | 61.06 / 54.05; 0.26L / 0.26L | 43.08 / 39.47; 0.24N / 0.29L | 36.37 / 28.00; 0.59L / 0.37L | - | - |
| LS | 99.54 / 85.60; 5.83L / 5.44L | 75.52 / 56.33; 5.61L / 1.75L | - | - | 88.80 / 63.24; 4.03L / 2.92 |
| HAMP | 91.12 / 81.15; 0.40 / 0.44 | 68.56 / 54.40; 1.20 / 0.70 | 78.22 / 56.30; 1.19 / 0.59 | 95.88 / 86.28; 0.92 / 0.77 | 68.44 / 58.92; 0.46 / 0.47 |
| MemGuard | 99.36 / 80.85; 8.84N / 11.19L | 76.79 / 54.80; 3.24N / 9.64L | 99.56 / 57.40; 13.19N / 17.85L | 98.72 / 86.72; 3.89N / 6.57L | 86.21 / 59.56; 4.26N / 9.21L |
| SELENA | 85.19 / 76.50; 0.77L / 1.17L | 58.58 / 53.60; 0.53L / 1.97L | 67.41 / 55.80; 1.33L / 3.70L | 86.86 / 84.52; 0.98L / 0.43L | 62.15 / 57.64; 1.72L / 1.28L |
| DMP | - | 46.92 / 43.07; 0.24N / 0.21L | 92.81 / 54.30; 7.26N / 23.33L | 91.08 / 85.56; 0.73N / 0.72L | 53.37 / 47.52; 0.30N / 0.24 |

Early stopping (Fig. 7): one stated anchor, Purchase100 after 15 epochs: 68.6% test accuracy,
TPR 0.67%, TNR 1.01%.
"""

from hampjax.repro.configs import hamp_cells_config


def get_config(arg: str | None = None):
    parts = [p for p in (arg or "").split(",") if p]
    return hamp_cells_config("hamp_main", ",".join(["baselines"] + parts), name="hamp_baselines")
