r"""HAMP Table II: ablation of its three components on Purchase100.

Components: 1 = high-entropy soft labels, 2 = entropy regularizer, 3 = testing-time output
modification. Without 1 the targets are one-hot (gamma = 0); without 2 alpha = 0; "none" is the
undefended recipe. 128 models per configuration, adaptive shadows. Defenses are named ``none``,
``c1``, ..., ``c1_c2_c3`` (e.g. ``--config.cells.purchase100.defenses.c1_c2.epochs=100``).

    python experiments/run.py --config=experiments/configs/hamp_ablation.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_ablation
    python experiments/results.py runs/hamp_ablation

Expected runtime on one GPU: not measured (no GPU lent); about 4x ``hamp_main:purchase100``.

Paper numbers targeted (train acc / test acc / TPR@0.1%FPR / TNR@0.1%FNR, %):
none 99.36/80.85/14.37/14.62; 1: 94.58/81.75/4.76/4.22; 2: 98.06/81.10/3.39/4.19;
3: 99.36/80.85/8.51/5.34; 1+2: 91.12/81.15/1.86/1.07; 1+3: 94.58/81.75/0.82/1.23;
2+3: 98.06/81.10/2.90/3.76; 1+2+3: 91.12/81.15/0.40/0.44.
"""

from hampjax.repro.configs import base_config, cell, make_quick, split_arg
from hampjax.training import preset_spec

# Table II's component sets: (soft labels, entropy regularizer, output modification). The
# defense names are config paths; the table labels rows from each recorded spec ("1+2").
COMPONENTS = {"none": (False, False, False), "c1": (True, False, False),
              "c2": (False, True, False), "c3": (False, False, True),
              "c1_c2": (True, True, False), "c1_c3": (True, False, True),
              "c2_c3": (False, True, True), "c1_c2_c3": (True, True, True)}


def component_spec(dataset: str, name: str):
    """The recipe of one component set: undefended training without 1 and 2, else HAMP's
    recipe with gamma = 0 (one-hot targets) without 1 and alpha = 0 without 2; HAMP's output
    modification with 3 only."""
    soft, reg, modify = COMPONENTS[name]
    if not (soft or reg):
        spec = preset_spec("undefended", dataset)
        return spec.replace(**{"output.kind": "hamp"}) if modify else spec
    hamp = preset_spec("hamp", dataset)
    gamma, alpha = hamp.defense.entropy_threshold, hamp.defense.alpha
    return hamp.replace(**{"name": f"hamp_{name}",
                           "defense.entropy_threshold": gamma if soft else 0.0,
                           "defense.alpha": alpha if reg else 0.0,
                           "output.kind": "hamp" if modify else "none"})


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = base_config("hamp_ablation", "hamp_ablation")
    dataset, names = (rest[0] if rest else "purchase100"), tuple(COMPONENTS)
    if quick:
        c = make_quick(c)
        # Undefended training + output modification; HAMP training alone.
        dataset, names = "digits", ("c3", "c1_c2")
    c.cells[dataset] = cell(dataset, {n: component_spec(dataset, n) for n in names}, quick=quick)
    return c
