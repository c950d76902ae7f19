r"""HAMP Table V: the entropy threshold gamma and the regularization strength alpha on Purchase100.

Each value trains 128 models with HAMP (the other parameter at the paper's 0.8 / 0.01). Defenses
are named ``gamma_0p9``, ``alpha_0p0001``, ...; the swept value is recorded as data
(``experiment.json`` ``cell_info``), and the tables label rows ``gamma=0.9``.

    python experiments/run.py --config=experiments/configs/hamp_params.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_params
    python experiments/results.py runs/hamp_params

Expected runtime on one GPU: not measured (no GPU lent); about 17 HAMP trainings of
``hamp_main:purchase100``.

Paper numbers targeted (train acc / test acc / TPR@0.1%FPR / TNR@0.1%FNR, %):
gamma 0.9: 73.79/66.7/0.38/0.26; 0.8: 91.12/81.15/0.4/0.44; 0.7: 94.56/82.35/0.53/0.68;
0.6: 96.73/83.4/0.87/1.15; 0.5: 97.93/83.55/0.98/1.41; 0.4: 98.49/83.5/0.9/1.97;
0.3: 98.67/83.9/1.23/1.47; 0.2: 98.85/84.55/1.17/2.09; 0.1: 99.06/84.45/2.02/1.91.
alpha 0.5: 31.81/29.1/0.31/-; 0.1: 34.27/33.25/0.15/0.2; 0.05: 74.98/68.05/0.22/0.36;
0.01: 91.12/81.15/0.4/0.44; 0.005: 92.53/81.45/0.44/0.46; 0.001: 93.8/82.1/0.56/0.53;
0.0005: 94.22/81.85/0.7/0.78; 0.0001: 94.69/82.6/0.81/0.91.
"""

from hampjax.repro.configs import base_config, cell, make_quick, split_arg, sweep_key
from hampjax.training import preset_spec

GAMMAS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)
ALPHAS = (0.5, 0.1, 0.05, 0.01, 0.005, 0.001, 0.0005, 0.0001)
FIELDS = {"gamma": "defense.entropy_threshold", "alpha": "defense.alpha"}


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = base_config("hamp_params", "hamp_params")
    dataset, gammas, alphas = (rest[0] if rest else "purchase100"), GAMMAS, ALPHAS
    if quick:
        c = make_quick(c)
        dataset, gammas, alphas = "digits", (0.9,), (0.1,)
    hamp = preset_spec("hamp", dataset)
    defenses, sweep = {}, {}
    for param, values in (("gamma", gammas), ("alpha", alphas)):
        for v in values:
            name = sweep_key(param, v)
            defenses[name] = hamp.replace(**{FIELDS[param]: float(v)})
            sweep[name] = FIELDS[param]
    c.cells[dataset] = cell(dataset, defenses, quick=quick, sweep=sweep)
    return c
