r"""The Weighted Smoothing slides' privacy-utility trade-off: Weighted Smoothing over its noise
scale sigma against DP-SGD over eps, on CIFAR-10, one figure (test accuracy against the
highest attack AUC and TPR@0.1%FPR), with adaptive attackers for both.

Both defenses train the same model on the same split (the undefended point is the DP-SGD
recipe without privacy): DP-SGD needs a model without BatchNorm,
so the default is Salem et al.'s CNN (``salem_cnn``), not the slides' DenseNet-BC-22. Weighted
Smoothing uses its authors' CIFAR-10 recipe (Adam 0.022 x0.991 per epoch, batch 128); DP-SGD the
RelaxLoss code's CIFAR-10 recipe (SGD 0.1, shuffled batches of 128, C 1.2) over noise
multipliers, each recording its eps at delta 1e-5.

    python experiments/run.py --config=experiments/configs/ws_dp_tradeoff.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/ws_dp_tradeoff
    python experiments/results.py runs/ws_dp_tradeoff --plots

Config argument: empty (CIFAR-10) and/or ``quick`` (digits with the fc net: WS sigma 0.2 and
DP-SGD sigma 0.5, 4 models, 2 epochs). Settings are flags, e.g.
``--config.cells.cifar10.model=densenet22_bc`` (Weighted Smoothing only: drop the DP-SGD
defenses) or ``--config.cells.cifar10.defenses.dp_sigma_1.epochs=50``.

Expected runtime on one GPU: not measured (no GPU lent). (1 + 11 + 5) x 128 CNN trainings.

Paper numbers targeted: none are public (the slides draw the curves without numbers or DP-SGD
settings). The claim to check: at equal test accuracy Weighted Smoothing reaches a lower attack
AUC than DP-SGD.
"""

from hampjax.defenses.weighted_smoothing import WS_SIGMA_GRID
from hampjax.repro.configs import base_config, cell, make_quick, split_arg, sweep_key
from hampjax.training import preset_spec

DP_NOISE = (0.1, 0.5, 1.0, 2.0, 4.0)
QUICK = {"ws_sigmas": (0.2,), "dp_noise": (0.5,)}
# The quick variant's Weighted Smoothing optimizer (digits): Adam 1e-3 x0.99 per epoch.
QUICK_WS = {"optimizer.learning_rate": 1e-3, "schedule.decay": 0.99, "batch_size": 32}


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = base_config("ws_dp_tradeoff", "ws_dp_tradeoff")
    dataset, model = "cifar10", "salem_cnn"
    ws_sigmas, dp_noise = tuple(s for s in WS_SIGMA_GRID if s > 0), DP_NOISE
    ws = preset_spec("weighted_smoothing", "cifar10")
    dp = preset_spec("dp_sgd", "cifar10_resnet20")
    undefended = dp.replace(name="undefended", privacy=preset_spec("undefended",
                                                                   "cifar10").privacy)
    if quick:
        c = make_quick(c)
        dataset, model = "digits", None
        ws_sigmas, dp_noise = QUICK["ws_sigmas"], QUICK["dp_noise"]
        ws = ws.replace(**QUICK_WS)
        dp = preset_spec("dp_sgd", "digits").replace(**{"privacy.sampling": "shuffle"})
        undefended = preset_spec("undefended", "digits")
    defenses, sweep = {"undefended": undefended}, {}
    for s in ws_sigmas:
        name = sweep_key("ws_sigma", s)
        defenses[name], sweep[name] = ws.replace(**{"defense.sigma": float(s)}), "defense.sigma"
    for s in dp_noise:
        name = sweep_key("dp_sigma", s)
        defenses[name] = dp.replace(**{"privacy.noise_multiplier": float(s)})
        sweep[name] = "privacy.noise_multiplier"
    c.cells[dataset] = cell(dataset, defenses, quick=quick, model=model, sweep=sweep)
    return c
