r"""HAMP Table II: ablation of its three components on Purchase100.

Components: 1 = high-entropy soft labels, 2 = entropy regularizer, 3 = testing-time output
modification. Without 1 the targets are one-hot (gamma = 0); without 2 alpha = 0; "none" is the
undefended recipe. 128 models per configuration, adaptive shadows.

    python experiments/run.py --config=experiments/configs/hamp_ablation.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_ablation
    python experiments/results.py runs/hamp_ablation

Expected runtime on one GPU: not measured (no GPU lent); about 4x ``hamp_main:purchase100``.

Paper numbers targeted (train acc / test acc / TPR@0.1%FPR / TNR@0.1%FNR, %):
none 99.36/80.85/14.37/14.62; 1: 94.58/81.75/4.76/4.22; 2: 98.06/81.10/3.39/4.19;
3: 99.36/80.85/8.51/5.34; 1+2: 91.12/81.15/1.86/1.07; 1+3: 94.58/81.75/0.82/1.23;
2+3: 98.06/81.10/2.90/3.76; 1+2+3: 91.12/81.15/0.40/0.44.
"""

from hampjax.repro.configs import base_config, make_quick, split_arg

COMPONENTS = ("none", "1", "2", "3", "1+2", "1+3", "2+3", "1+2+3")


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = base_config("hamp_ablation", "hamp_ablation")
    c.dataset = rest[0] if rest else "purchase100"
    c.components = tuple(COMPONENTS)
    if quick:
        c = make_quick(c)
        c.dataset = "digits"
        c.components = ("3", "1+2")  # Undefended training + output modification; HAMP training alone.
    return c
