r"""RelaxLoss (ICLR 2022) accuracy and attack table: no defense, RelaxLoss against non-adaptive
shadows (trained without the defense), RelaxLoss against adaptive shadows (trained with it).

Splits as in the authors' code (spec 5.3): the candidate pool is the target-train and target-test
slices, the reference slice is the test set. 128 models per defense; the non-adaptive attacker's
127 shadows use the undefended recipe (same optimizer, plain cross-entropy).

    python experiments/run.py --config=experiments/configs/relaxloss_table.py \
        --config.data_dir=$HOME/hampjax_data --config.accept_texas_terms=True --workdir=runs/relaxloss
    python experiments/results.py runs/relaxloss

Config argument: empty (all six presets), a comma-separated list of presets
(cifar10_resnet20, cifar10_vgg11_bn, cifar100_resnet20, cifar100_vgg11_bn, texas100_fc,
purchase100_fc), and/or ``quick`` (digits with the Purchase recipe at alpha 0.3).

Expected runtime on one GPU: not measured (no GPU lent); CIFAR presets train 3 x 128 ResNet20 /
VGG11 models for 300 epochs: many GPU-hours each.

Paper numbers targeted (poster): test accuracy without -> with RelaxLoss: CIFAR10 ResNet20
70.5 -> 73.8; CIFAR10 VGG11 73.8 -> 74.4; CIFAR100 ResNet20 33.2 -> 35.1; CIFAR100 VGG11
41.4 -> 41.4; Texas100 52.3 -> 55.3; Purchase100 89.1 -> 89.1. Best attack AUC %, no defense /
non-adaptive / adaptive: CIFAR10 ResNet20 87.3/50.0/56.0; CIFAR100 ResNet20 92.6/50.0/57.8;
Texas100 79.0/50.0/53.8; Purchase100 65.7/50.1/56.0.
"""

from hampjax.repro.configs import base_config, make_quick, split_arg

PRESETS = ("cifar10_resnet20", "cifar10_vgg11_bn", "cifar100_resnet20", "cifar100_vgg11_bn",
           "texas100_fc", "purchase100_fc")


def get_config(arg: str | None = None):
    quick, presets = split_arg(arg)
    c = base_config("relaxloss", "relaxloss")
    c.presets = tuple(presets) or tuple(PRESETS)
    c.digits_alpha = 0.3
    if quick:
        c = make_quick(c)
        c.presets = ("digits",)
    return c
