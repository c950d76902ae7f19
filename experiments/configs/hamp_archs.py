r"""HAMP Appendix H / Fig. 10: undefended vs HAMP on CIFAR-10 with other architectures,
ResNet-18, MobileNetV2 and ShuffleNetV2 (zoo names ``resnet18``, ``mobilenetv2``,
``shufflenetv2``), one cell per architecture, every attack, 128 LiRA models per defense
(adaptive shadows). The DenseNet row of Fig. 10 is ``hamp_main:cifar10``.

    python experiments/run.py --config=experiments/configs/hamp_archs.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_archs
    python experiments/run.py --config=experiments/configs/hamp_archs.py:mobilenetv2 \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/hamp_archs_mobilenetv2
    python experiments/results.py runs/hamp_archs

Config argument: empty (the three architectures), a comma-separated list of them, and/or
``quick``. The recipes are the CIFAR-10 presets (the paper gives no per-architecture
hyperparameters); every setting is a flag, e.g.
``--config.cells.resnet18.defenses.hamp.optimizer.learning_rate=0.05`` or
``--config.cells.mobilenetv2.model_kwargs.width_multiplier=0.5``.

Quick variant (``:quick``): one digits cell with the ``fc`` model standing in for the conv nets
(digits is fed as flat 64-vectors, which the conv nets do not take, and their compilation alone
would exceed a smoke test's budget on a CPU): it checks the wiring of the kind and its table.

Expected runtime on one GPU: not measured (no GPU lent); per architecture 2 x 128 models on
25,000 CIFAR-10 images, ResNet-18 the slowest (hours).

Paper numbers: not transcribed; Fig. 10 shows them only as a bar chart (its text: the
architectures differ in MIA risk and HAMP keeps every one of them low).
"""

from hampjax.repro.configs import base_config, cell, make_quick, split_arg
from hampjax.training import preset_spec

ARCHITECTURES = ("resnet18", "mobilenetv2", "shufflenetv2")
DEFENSES = ("undefended", "hamp")


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    for item in rest:
        if item not in ARCHITECTURES:
            raise ValueError(f"config argument {item!r} is not an architecture "
                             f"{list(ARCHITECTURES)} or 'quick'")
    c = base_config("hamp_archs", "hamp_archs")
    if quick:
        c = make_quick(c)
        c.cells["fc"] = cell("digits", {d: preset_spec(d, "digits") for d in DEFENSES},
                             quick=True)
        return c
    for arch in rest or ARCHITECTURES:
        c.cells[arch] = cell("cifar10", {d: preset_spec(d, "cifar10") for d in DEFENSES},
                             model=arch, model_kwargs={})
    return c
