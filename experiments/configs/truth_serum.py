r"""HAMP Section V-C: Truth-Serum data poisoning (Tramer et al., CCS 2022) on CIFAR-10,
undefended vs HAMP.

250 targets of the candidate pool (seed ``config.seed``), each with one wrong label, inserted
as 8 mislabelled replicas into EVERY model's training set; 128 models per defense trained on
the poisoned candidates (the targets' own copies follow the keep matrix); HAMP's output
modification on every model's outputs (adaptive attacker). Evaluation on the 250 targets
only: leave-one-model-out LiRA, online with fixed variance, pooled over 128 x 250 = 32,000
points (``hampjax.repro.truth_serum``). Every recipe setting is a flag
(``--config.cells.cifar10.defenses.hamp.epochs=...``), as are ``--config.poison.num_targets``
and ``--config.poison.replicas``.

    python experiments/run.py --config=experiments/configs/truth_serum.py \
        --config.data_dir=$HOME/hampjax_data --workdir=runs/truth_serum
    python experiments/results.py runs/truth_serum

Config argument: empty (CIFAR-10, the paper's DenseNet) or ``quick`` (digits, 20 targets x 8
replicas, 4 models, 2 epochs: a seconds-long CPU smoke test).

Expected runtime on one GPU: not measured: no GPU (none was lent while this was written). It
trains as many models as ``hamp_main:cifar10`` (2 x 128 DenseNet-BC-100 on 25,000 + 2,000
images), so expect the same order: many hours.

Paper numbers targeted (HAMP V-C, CIFAR-10, TPR@0.1%FPR / TNR@0.1%FNR %): undefended without
poisoning 8.23 / 10.15 (Table VIII), with poisoning 52.44 / 24.52; HAMP with poisoning 0.34 /
0.71 at a 0.6% accuracy drop.
"""

import ml_collections

from hampjax.repro.configs import base_config, cell, make_quick, split_arg
from hampjax.training import preset_spec

DEFENSES = ("undefended", "hamp")


def get_config(arg: str | None = None):
    quick, rest = split_arg(arg)
    if rest:
        raise ValueError(f"config argument must be empty or 'quick', got {rest}")
    c = base_config("truth_serum", "truth_serum")
    c.poison = ml_collections.ConfigDict(dict(num_targets=250, replicas=8, center="median"))
    dataset = "cifar10"
    if quick:
        c = make_quick(c)
        c.poison.num_targets = 20
        dataset = "digits"
    # The attacks settings of base_config are not used by this kind (one attack: LiRA).
    del c.attacks
    c.cells[dataset] = cell(dataset, {d: preset_spec(d, dataset) for d in DEFENSES}, quick=quick)
    return c
