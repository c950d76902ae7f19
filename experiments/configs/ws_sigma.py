r"""Weighted Smoothing (ACSAC 2023): the noise scale sigma sweep and its ablations on CIFAR-10.

sigma = 0 is the undefended model; every sigma trains 128 models (adaptive shadows) with the
authors' CIFAR-10 recipe (DenseNet-BC depth 22, Adam 0.022 x0.991 per epoch, batch 128, clip 10).
Ablations (at sigma 0.1): cross-entropy score, min-max normalization, noise on logits, the relu
weight. Results: accuracy vs max attack TPR/TNR/AUC, one row per sigma. Defenses are named
``sigma_0p1``, ... and ``noise_on_logits``, ...; for another dataset set its optimizer with
``--config.cells.<dataset>.defenses.<name>.optimizer.learning_rate=...``.

    python experiments/run.py --config=experiments/configs/ws_sigma.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/ws_sigma
    python experiments/results.py runs/ws_sigma

Expected runtime on one GPU: not measured (no GPU lent); 16 x 128 DenseNet-22 trainings.

Paper numbers targeted: none are public (slides only). The claims to check: accuracy falls and
attack success falls as sigma grows; the trade-off curve is not strictly monotone; 50% attack
accuracy is not reached without accuracy loss.
"""

from hampjax.defenses.weighted_smoothing import WS_SIGMA_GRID
from hampjax.repro.configs import base_config, cell, make_quick, split_arg, sweep_key
from hampjax.training import preset_spec

# Ablations at ABLATION_SIGMA: spec changes by defense name.
ABLATIONS = {"score_cross_entropy": {"example_state.score": "cross_entropy"},
             "normalization_minmax": {"example_state.normalization": "minmax"},
             "noise_on_logits": {"defense.noise_on": "logits"},
             "weight_relu_one_minus_z": {"example_state.weight": "relu_one_minus_z"}}
ABLATION_SIGMA = 0.1
# The quick variant's optimizer (digits): Adam 1e-3 x0.99 per epoch, batch 32.
QUICK_SETTINGS = {"optimizer.learning_rate": 1e-3, "schedule.decay": 0.99, "batch_size": 32}


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = base_config("ws_sigma", "ws_sigma")
    dataset, model, sigmas, ablations = (rest[0] if rest else "cifar10"), "densenet22_bc", \
        WS_SIGMA_GRID, tuple(ABLATIONS)
    base = preset_spec("weighted_smoothing", "cifar10")  # The authors' CIFAR-10 optimizer.
    if quick:
        c = make_quick(c)
        dataset, model, sigmas, ablations = "digits", None, (0.2,), ("noise_on_logits",)
        base = base.replace(**QUICK_SETTINGS)
    defenses, sweep = {}, {}
    for s in sigmas:
        name = sweep_key("sigma", s)
        defenses[name], sweep[name] = base.replace(**{"defense.sigma": float(s)}), "defense.sigma"
    for name in ablations:
        defenses[name] = base.replace(**{"defense.sigma": ABLATION_SIGMA, **ABLATIONS[name]})
    c.cells[dataset] = cell(dataset, defenses, quick=quick, model=model, sweep=sweep)
    return c
