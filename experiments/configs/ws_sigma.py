r"""Weighted Smoothing (ACSAC 2023): the noise scale sigma sweep and its ablations on CIFAR-10.

sigma = 0 is the undefended model; every sigma trains 128 models (adaptive shadows) with the
authors' CIFAR-10 recipe (DenseNet-BC depth 22, Adam 0.022 x0.991 per epoch, batch 128, clip 10).
Ablations (at ``ablation_sigma``): cross-entropy score, min-max normalization, noise on logits,
the relu weight. Results: accuracy vs max attack TPR/TNR/AUC, one row per sigma.

    python experiments/run.py --config=experiments/configs/ws_sigma.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/ws_sigma
    python experiments/results.py runs/ws_sigma

Expected runtime on one GPU: not measured (no GPU lent); 16 x 128 DenseNet-22 trainings.

Paper numbers targeted: none are public (slides only). The claims to check: accuracy falls and
attack success falls as sigma grows; the trade-off curve is not strictly monotone; 50% attack
accuracy is not reached without accuracy loss.
"""

from ml_collections import config_dict

from hampjax.defenses.weighted_smoothing import WS_SIGMA_GRID
from hampjax.repro.configs import base_config, make_quick, split_arg

ABLATIONS = ("score=cross_entropy", "normalization=minmax", "noise_on=logits",
             "weight=relu_one_minus_z")


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    c = base_config("ws_sigma", "ws_sigma")
    c.dataset = rest[0] if rest else "cifar10"
    c.model = "densenet22_bc"
    c.sigmas = tuple(WS_SIGMA_GRID)
    c.ablation_sigma = 0.1
    c.ablations = tuple(ABLATIONS)
    # None: the CIFAR-10 optimizer settings; set all three for another dataset.
    c.ws_learning_rate = config_dict.placeholder(float)
    c.ws_decay_per_epoch = config_dict.placeholder(float)
    c.ws_batch_size = config_dict.placeholder(int)
    if quick:
        c = make_quick(c)
        c.dataset = "digits"
        c.model = None
        c.sigmas = (0.2,)
        c.ablations = ("noise_on=logits",)
        c.ws_learning_rate, c.ws_decay_per_epoch, c.ws_batch_size = 1e-3, 0.99, 32
    return c
