r"""RelaxLoss against its baselines on its base recipe and splits, all against adaptive attackers:
RelaxLoss itself, DP-SGD (the RelaxLoss code's: shuffled batches of 128, sigma 0.01, C 1.0
tabular; not on the CIFAR presets, whose BatchNorm models DP-SGD refuses), AdvReg (lambda 1,
sorted logits), vanilla, label smoothing (eps 0.1, standard), confidence penalty (beta 0.1),
dropout (0.5 before the last linear layer), distillation (CIFAR only: teacher = vanilla on the
same data, T = 10) and early stopping (one run with the full schedule, evaluated after each of the RelaxLoss checkpoints'
epoch counts: CIFAR 5..250, tabular 5..100; results ``early_stopping_e<E>``).

    python experiments/run.py --config=experiments/configs/relaxloss_baselines.py:purchase100_fc \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/relaxloss_baselines_purchase
    python experiments/results.py runs/relaxloss_baselines_purchase

Config argument: empty (all six RelaxLoss presets), a comma-separated list of presets
(cifar10_resnet20, cifar10_vgg11_bn, cifar100_resnet20, cifar100_vgg11_bn, texas100_fc,
purchase100_fc) and/or baselines (relaxloss, vanilla, label_smoothing_rl, confidence_penalty,
dropout, distillation, early_stopping, dp_sgd, advreg), and/or ``quick`` (digits with the Purchase recipe, every
baseline, distillation included). Every setting is a flag, e.g.
``--config.cells.purchase100_fc.defenses.early_stopping.early_stopping_epochs=(5,50)`` or
``--config.cells.purchase100_fc.defense_model_kwargs.dropout.head_dropout_rate=0.3``.

Expected runtime on one GPU: not measured (no GPU lent). Each baseline trains 128 models for the
full schedule (distillation: 2 x 128, teacher and student); early stopping trains once and
attacks every snapshot.

Paper numbers targeted (RelaxLoss poster / paper, Fig. 3-4): the baselines' privacy-utility
curves (test accuracy against the best attack AUC); early stopping traces a curve from the
low-accuracy, low-AUC first epochs to the vanilla model. No single table of numbers.
"""

from hampjax.repro.configs import base_config, cell, make_quick, split_arg
from hampjax.training import DistillationParams, preset_spec
from hampjax.training.presets import DROPOUT_MODEL_KWARGS, PRESETS as SPEC_TABLES
from hampjax.training.presets import RELAXLOSS_BASELINES

PRESETS = ("cifar10_resnet20", "cifar10_vgg11_bn", "cifar100_resnet20", "cifar100_vgg11_bn",
           "texas100_fc", "purchase100_fc")
# RelaxLoss itself, its regularization baselines, and the DP-SGD and AdvReg baselines in the
# RelaxLoss code's settings (DP-SGD: shuffled batches, sigma 0.01; AdvReg: lambda 1, sorted
# logits). DP-SGD needs a model without BatchNorm: it runs on the tabular presets only (the
# RelaxLoss code converts the CIFAR models' BatchNorm to GroupNorm, which the zoo lacks).
BASELINES = ("relaxloss",) + tuple(RELAXLOSS_BASELINES) + ("dp_sgd", "advreg")
_BATCHNORM_PRESETS = ("cifar10_resnet20", "cifar10_vgg11_bn", "cifar100_resnet20",
                      "cifar100_vgg11_bn")


def baselines_cell(preset: str, dataset: str, model: str | None, baselines, *,
                   quick: bool = False):
    """The baselines available for ``preset`` (distillation: CIFAR only), as one cell."""
    specs = {b: preset_spec(b, preset) for b in baselines if preset in SPEC_TABLES[b]
             and not (b == "dp_sgd" and preset in _BATCHNORM_PRESETS)}
    if quick and "distillation" in baselines:  # digits: exercise the teacher-student path.
        specs["distillation"] = preset_spec("vanilla", preset).replace(
            name="distillation", defense=DistillationParams())
    kwargs = {"dropout": dict(DROPOUT_MODEL_KWARGS)} if "dropout" in specs else {}
    return cell(dataset, specs, quick=quick, scheme="relaxloss", model=model,
                defense_model_kwargs=kwargs)


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    for item in rest:
        if item not in PRESETS and item not in BASELINES:
            raise ValueError(f"config argument {item!r} is not a preset {list(PRESETS)}, a "
                             f"baseline {list(BASELINES)} or 'quick'")
    presets = [x for x in rest if x in PRESETS] or list(PRESETS)
    baselines = [x for x in rest if x in BASELINES] or list(BASELINES)
    c = base_config("relaxloss_baselines", "relaxloss_baselines")
    if quick:
        c = make_quick(c)
        c.cells.digits = baselines_cell("purchase100_fc", "digits", None, baselines, quick=True)
        return c
    for preset in presets:
        dataset, model = preset.split("_", 1)  # e.g. cifar10 + resnet20 (a zoo name)
        c.cells[preset] = baselines_cell(preset, dataset, model, baselines)
    return c
