"""The papers' published numbers, transcribed for side-by-side comparison with our runs.

Every number carries a comment naming its source table and row. Sources:

* HAMP paper (Chen & Pattabiraman, NDSS 2024), ``/work/shared/papers/001_*.txt``: Table I
  (accuracy), Table II (ablation), Table IV (prediction entropy), Table V (parameters), Table VII
  (inference overhead), Table VIII (per-attack TPR/TNR), Section V-B text (Fig. 6 averages).
* RelaxLoss poster (Chen, Yu, Fritz, ICLR 2022), ``/work/shared/papers/003_*.txt``
  (results panel): top-1 test accuracy and best-attack AUC.
* Trust paper (Hintersdorf et al., IJCAI 2022), Sec. 4.2 and Fig. 3:
  FPR of the fixed max-score attack on non-member sets.

Units are the papers': accuracies, rates and AUCs in percent, entropies in nats, latencies in
milliseconds per sample. ``None`` marks an N/A entry (or, where said, a value the text lost).

Dataset keys are ours (``"purchase100"``, ``"texas100"``, ``"location30"``, ``"cifar10"``,
``"cifar100"``); defense keys are ours where we have the defense (``"undefended"``, ``"hamp"``,
``"label_smoothing"``) and lower-case paper names otherwise (``"memguard"``, ``"advreg"``,
``"dp_sgd"``, ``"dmp"``, ``"selena"``); attack keys are ours (see :data:`HAMP_ATTACK_NAMES`).

The NN-based attack numbers of Table VIII have TPR and TNR swapped by the authors' label bug
(members labelled 0 while the ROC treats 1 as positive in the authors' code).
:data:`HAMP_ATTACK_RATES` stores them as printed; :func:`hamp_attack_rates` and
:func:`hamp_max_rates` return the corrected reading by default (``corrected=False`` gives the
printed one).

Example:
  >>> hamp_accuracy("purchase100", "hamp").test
  81.15
  >>> hamp_attack_rates("purchase100", "undefended", "nn")  # corrected: printed TPR 14.37
  Rates(tpr=0.2, tnr=14.37)
  >>> hamp_max_rates("purchase100", "undefended").tpr_attack
  'lira_online'
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, NamedTuple

from hampjax import validation

__all__ = [
    "DEFENSE_ALIASES",
    "Accuracy",
    "Rates",
    "MaxRates",
    "Entropy",
    "AblationRow",
    "Overhead",
    "RelaxLossRow",
    "PoisoningRow",
    "HAMP_DATASETS",
    "HAMP_ATTACK_NAMES",
    "HAMP_BOUNDARY_IS_NOISE",
    "SWAPPED_ATTACKS",
    "HAMP_ACCURACY",
    "HAMP_ATTACK_RATES",
    "HAMP_BASELINE_MAX_PRINTED",
    "HAMP_DP_SGD",
    "HAMP_DP_SWEEP",
    "HAMP_EARLY_STOPPING",
    "HAMP_ABLATION",
    "HAMP_ABLATION_DATASET",
    "HAMP_ENTROPY",
    "HAMP_PARAMS",
    "HAMP_PARAMS_DATASET",
    "HAMP_OVERHEAD",
    "HAMP_SIZES_TEXT",
    "RELAXLOSS_POSTER",
    "TRUST_FPR",
    "HAMP_POISONING",
    "HAMP_POISONING_DATASET",
    "HAMP_POISONING_UNPOISONED",
    "hamp_accuracy",
    "hamp_attack_rates",
    "hamp_max_rates",
]


class Accuracy(NamedTuple):
    """Table I row: training / testing accuracy and delta to the undefended model (%)."""

    train: float
    test: float
    delta: float


class Rates(NamedTuple):
    """Attack TPR @ 0.1% FPR and TNR @ 0.1% FNR (%); ``None`` where N/A."""

    tpr: float | None
    tnr: float | None


class MaxRates(NamedTuple):
    """The highest TPR and TNR over the attacks of Table VIII, with the attack reaching each
    (a rate is ``None`` where the paper does not give it, see :func:`hamp_max_rates`)."""

    tpr: float | None
    tpr_attack: str
    tnr: float | None
    tnr_attack: str


class Entropy(NamedTuple):
    """Table IV row: mean prediction entropy on members / non-members and their difference."""

    members: float
    nonmembers: float
    difference: float


class AblationRow(NamedTuple):
    """Table II / Table V row: train acc, test acc, max TPR @ 0.1% FPR, max TNR @ 0.1% FNR (%)."""

    train_acc: float
    test_acc: float
    tpr: float | None
    tnr: float | None


class Overhead(NamedTuple):
    """Table VII row: per-sample inference time (ms)."""

    undefended: float
    memguard: float
    hamp: float


class RelaxLossRow(NamedTuple):
    """RelaxLoss poster column: top-1 test acc without / with defense, best attack AUC (%)."""

    acc_undefended: float
    acc_defended: float
    auc_undefended: float
    auc_nonadaptive: float
    auc_adaptive: float


class PoisoningRow(NamedTuple):
    """HAMP Section V-C (Truth-Serum poisoning): TPR @ 0.1% FPR, TNR @ 0.1% FNR (%) and the
    test-accuracy change against the undefended model (percentage points; ``None``: not given)."""

    tpr: float
    tnr: float
    acc_delta: float | None


def _frozen(d: dict) -> Mapping:
    return types.MappingProxyType(
        {k: _frozen(v) if isinstance(v, dict) else v for k, v in d.items()})


HAMP_DATASETS = ("purchase100", "texas100", "location30", "cifar10", "cifar100")
"""The HAMP paper's datasets, under our names."""

HAMP_ATTACK_NAMES: Mapping[str, str] = _frozen({
    "NN-based": "nn",
    "Loss-based": "loss",
    "Confidence-based": "confidence",
    "Entropy-based": "entropy",
    "M-entropy-based": "modified_entropy",
    "Augmentation-based": "label_only_augmentation",
    "Boundary-based": "label_only_boundary",
    "LiRA": "lira_online",
})
"""Table VIII column -> our attack name (``hampjax.evaluation``), in column order."""

HAMP_BOUNDARY_IS_NOISE = ("purchase100", "texas100", "location30")
"""Datasets whose Table VIII Boundary column is bit-flip noise robustness (binary features;
paper Section IV-A), not the CW2 perturbation distance of the image datasets."""

SWAPPED_ATTACKS = ("nn",)
"""Attacks whose printed TPR and TNR are swapped by the authors' label bug (members labelled 0)."""

# ------------------------------------------------------------------------------------------
# HAMP Table I: model accuracy (training acy, testing acy, acy delta), percent.
# ------------------------------------------------------------------------------------------
HAMP_ACCURACY: Mapping[str, Mapping[str, Accuracy]] = _frozen({
    "purchase100": {
        "undefended": Accuracy(99.36, 80.85, 0.00),       # Table I, Purchase100 / Undefended
        "memguard": Accuracy(99.36, 80.85, 0.00),         # Table I, Purchase100 / MemGuard
        "advreg": Accuracy(93.97, 75.75, -5.10),          # Table I, Purchase100 / AdvReg
        "dp_sgd": Accuracy(61.06, 54.05, -26.80),         # Table I, Purchase100 / DPSGD
        "label_smoothing": Accuracy(99.54, 85.60, 4.75),  # Table I, Purchase100 / LS
        "selena": Accuracy(85.19, 76.50, -4.35),          # Table I, Purchase100 / SELENA
        "hamp": Accuracy(91.12, 81.15, 0.30),             # Table I, Purchase100 / HAMP
    },
    "cifar100": {
        "undefended": Accuracy(86.21, 59.56, 0.00),       # Table I, CIFAR100 / Undefended
        "memguard": Accuracy(86.21, 59.56, 0.00),         # Table I, CIFAR100 / MemGuard
        "advreg": Accuracy(55.78, 44.36, -15.20),         # Table I, CIFAR100 / AdvReg
        "dmp": Accuracy(53.37, 47.52, -12.04),            # Table I, CIFAR100 / DMP
        "label_smoothing": Accuracy(88.80, 63.24, 3.68),  # Table I, CIFAR100 / LS
        "selena": Accuracy(62.15, 57.64, -1.92),          # Table I, CIFAR100 / SELENA
        "hamp": Accuracy(68.44, 58.92, -0.64),            # Table I, CIFAR100 / HAMP
    },
    "location30": {
        "undefended": Accuracy(99.56, 57.40, 0.00),       # Table I, Location30 / Undefended
        "memguard": Accuracy(99.56, 57.40, 0.00),         # Table I, Location30 / MemGuard
        "advreg": Accuracy(69.70, 48.20, -9.20),          # Table I, Location30 / AdvReg
        "dp_sgd": Accuracy(36.37, 28.00, -29.40),         # Table I, Location30 / DPSGD
        "dmp": Accuracy(92.81, 54.30, -3.10),             # Table I, Location30 / DMP
        "selena": Accuracy(67.41, 55.80, -1.60),          # Table I, Location30 / SELENA
        "hamp": Accuracy(78.22, 56.30, -1.10),            # Table I, Location30 / HAMP
    },
    "cifar10": {
        "undefended": Accuracy(98.72, 86.72, 0.00),       # Table I, CIFAR10 / Undefended
        "memguard": Accuracy(98.72, 86.72, 0.00),         # Table I, CIFAR10 / MemGuard
        "advreg": Accuracy(86.73, 82.16, -4.56),          # Table I, CIFAR10 / AdvReg
        "dmp": Accuracy(91.08, 85.56, -1.16),             # Table I, CIFAR10 / DMP
        "selena": Accuracy(86.86, 84.52, -2.20),          # Table I, CIFAR10 / SELENA
        "hamp": Accuracy(95.88, 86.28, -0.44),            # Table I, CIFAR10 / HAMP
    },
    "texas100": {
        # Table I, Texas100 / Undefended (the extracted row lost its delta cell; 0.00 by
        # definition, as for every undefended row).
        "undefended": Accuracy(76.79, 54.80, 0.00),
        "memguard": Accuracy(76.79, 54.80, 0.00),         # Table I, Texas100 / MemGuard
        "advreg": Accuracy(62.76, 51.60, -3.20),          # Table I, Texas100 / AdvReg
        "dp_sgd": Accuracy(43.08, 39.47, -15.33),         # Table I, Texas100 / DPSGD
        "dmp": Accuracy(46.92, 43.07, -11.73),            # Table I, Texas100 / DMP
        "label_smoothing": Accuracy(75.52, 56.33, 1.53),  # Table I, Texas100 / LS
        "selena": Accuracy(58.58, 53.60, -1.20),          # Table I, Texas100 / SELENA
        "hamp": Accuracy(68.56, 54.40, -0.40),            # Table I, Texas100 / HAMP
    },
})
"""HAMP Table I: ``{dataset: {defense: Accuracy}}`` (percent; N/A defenses are absent)."""

# ------------------------------------------------------------------------------------------
# HAMP Table VIII: per-attack TPR @ 0.1% FPR / TNR @ 0.1% FNR, AS PRINTED (NN swapped).
# Column order: NN, Loss, Confidence, Entropy, M-entropy, Augmentation, Boundary, LiRA.
# ------------------------------------------------------------------------------------------
_NA = None


def _row(tpr: tuple, tnr: tuple) -> dict[str, Rates]:
    names = tuple(HAMP_ATTACK_NAMES.values())
    assert len(tpr) == len(tnr) == len(names)
    return {name: Rates(p, n) for name, p, n in zip(names, tpr, tnr)}


HAMP_ATTACK_RATES: Mapping[str, Mapping[str, Mapping[str, Rates]]] = _frozen({
    "purchase100": {
        # Table VIII, Purchase100 / Undefended, Attack TPR and Attack TNR rows
        "undefended": _row((14.37, 0.09, 0.09, 0.08, 0.08, _NA, 0.00, 1.86),
                           (0.20, 10.24, 10.24, 1.70, 9.64, _NA, 0.00, 13.19)),
        # Table VIII, Purchase100 / LS
        "label_smoothing": _row((3.22, 0.08, 0.08, 0.08, 0.08, _NA, 0.00, 5.83),
                                (0.14, 5.07, 5.07, 1.69, 5.26, _NA, 0.00, 5.44)),
        # Table VIII, Purchase100 / HAMP
        "hamp": _row((0.39, 0.09, 0.09, 0.11, 0.09, _NA, 0.00, 0.40),
                     (0.13, 0.35, 0.35, 0.08, 0.33, _NA, 0.00, 0.44)),
    },
    "texas100": {
        # Table VIII, Texas100 / Undefended
        "undefended": _row((3.67, 0.17, 0.17, 0.16, 0.17, _NA, 0.00, 3.87),
                           (0.68, 2.03, 2.03, 0.40, 1.87, _NA, 0.00, 13.13)),
        # Table VIII, Texas100 / LS
        "label_smoothing": _row((1.11, 0.15, 0.15, 0.16, 0.15, _NA, 0.00, 5.61),
                                (0.62, 1.03, 1.03, 0.59, 0.97, _NA, 0.00, 1.75)),
        # Table VIII, Texas100 / HAMP
        "hamp": _row((0.31, 0.12, 0.12, 0.07, 0.12, _NA, 0.00, 1.20),
                     (0.07, 0.59, 0.59, 0.11, 0.59, _NA, 0.00, 0.70)),
    },
    "location30": {  # Table VIII has no LS rows for Location30.
        # Table VIII, Location30 / Undefended
        "undefended": _row((34.67, 0.15, 0.15, 0.07, 0.15, _NA, 0.00, 16.22),
                           (1.93, 19.56, 19.56, 0.89, 11.63, _NA, 0.00, 42.81)),
        # Table VIII, Location30 / HAMP
        "hamp": _row((0.30, 0.52, 0.52, 0.15, 0.44, _NA, 0.00, 1.19),
                     (0.59, 0.22, 0.22, 0.22, 0.22, _NA, 0.00, 0.59)),
    },
    "cifar10": {  # Table VIII has no LS rows for CIFAR10.
        # Table VIII, CIFAR10 / Undefended
        "undefended": _row((8.23, 0.00, 0.00, 0.10, 0.00, 0.02, 0.10, 2.76),
                           (0.05, 6.24, 5.99, 0.40, 6.00, 3.63, 0.00, 10.15)),
        # Table VIII, CIFAR10 / HAMP
        "hamp": _row((0.39, 0.00, 0.11, 0.00, 0.00, 0.08, 0.12, 0.92),
                     (0.17, 0.17, 0.26, 0.00, 0.51, 0.38, 0.00, 0.77)),
    },
    "cifar100": {
        # Table VIII, CIFAR100 / Undefended
        "undefended": _row((6.24, 0.09, 0.13, 0.14, 0.15, 0.07, 0.12, 3.57),
                           (0.46, 2.80, 2.56, 0.24, 2.52, 1.05, 0.10, 20.16)),
        # Table VIII, CIFAR100 / LS
        "label_smoothing": _row((1.56, 0.07, 0.08, 0.08, 0.08, 0.30, 0.09, 4.03),
                                (0.28, 2.92, 2.92, 0.29, 2.71, 0.37, 0.00, 2.88)),
        # Table VIII, CIFAR100 / HAMP
        "hamp": _row((0.22, 0.16, 0.16, 0.00, 0.17, 0.09, 0.10, 0.46),
                     (0.08, 0.41, 0.41, 0.07, 0.41, 0.24, 0.00, 0.47)),
    },
})
"""HAMP Table VIII as printed: ``{dataset: {defense: {attack: Rates}}}`` (percent).

Only the undefended, HAMP and LS rows are kept. The ``"nn"`` entries are swapped by the
authors' bug; use :func:`hamp_attack_rates` for the corrected reading.
"""

# ------------------------------------------------------------------------------------------
# HAMP Table VIII maxima of the baselines the table above does not keep per attack (Fig. 3):
# the highest printed TPR@0.1%FPR and TNR@0.1%FNR with the attack reaching each.
# ------------------------------------------------------------------------------------------
_L, _N, _C = "lira_online", "nn", "loss"  # Table VIII's LiRA, NN-based, loss/confidence


def _max(tpr: float, tpr_attack: str, tnr: float, tnr_attack: str) -> MaxRates:
    return MaxRates(tpr, tpr_attack, tnr, tnr_attack)


HAMP_BASELINE_MAX_PRINTED: Mapping[str, Mapping[str, MaxRates]] = _frozen({
    "purchase100": {
        "memguard": _max(8.84, _N, 11.19, _L),  # Table VIII, Purchase100 / MemGuard
        "advreg": _max(2.93, _N, 3.14, _L),     # Table VIII, Purchase100 / AdvReg
        "dp_sgd": _max(0.26, _L, 0.26, _L),     # Table VIII, Purchase100 / DPSGD
        "selena": _max(0.77, _L, 1.17, _L),     # Table VIII, Purchase100 / SELENA
    },
    "texas100": {
        "memguard": _max(3.24, _N, 9.64, _L),   # Table VIII, Texas100 / MemGuard
        "advreg": _max(2.19, _L, 2.99, _L),     # Table VIII, Texas100 / AdvReg
        "dp_sgd": _max(0.24, _N, 0.29, _L),     # Table VIII, Texas100 / DPSGD
        "selena": _max(0.53, _L, 1.97, _L),     # Table VIII, Texas100 / SELENA
        "dmp": _max(0.24, _N, 0.21, _L),        # Table VIII, Texas100 / DMP
    },
    "location30": {
        "memguard": _max(13.19, _N, 17.85, _L),  # Table VIII, Location30 / MemGuard
        "advreg": _max(2.07, _N, 2.07, _L),      # Table VIII, Location30 / AdvReg
        "dp_sgd": _max(0.59, _L, 0.37, _L),      # Table VIII, Location30 / DPSGD
        "selena": _max(1.33, _L, 3.70, _L),      # Table VIII, Location30 / SELENA
        "dmp": _max(7.26, _N, 23.33, _L),        # Table VIII, Location30 / DMP
    },
    "cifar10": {
        "memguard": _max(3.89, _N, 6.57, _L),   # Table VIII, CIFAR10 / MemGuard
        "advreg": _max(0.57, _N, 0.63, _L),     # Table VIII, CIFAR10 / AdvReg
        "selena": _max(0.98, _L, 0.43, _L),     # Table VIII, CIFAR10 / SELENA
        "dmp": _max(0.73, _N, 0.72, _L),        # Table VIII, CIFAR10 / DMP
    },
    "cifar100": {
        "memguard": _max(4.26, _N, 9.21, _L),   # Table VIII, CIFAR100 / MemGuard
        "advreg": _max(0.71, _N, 0.85, _L),     # Table VIII, CIFAR100 / AdvReg
        "selena": _max(1.72, _L, 1.28, _L),     # Table VIII, CIFAR100 / SELENA
        "dmp": _max(0.30, _N, 0.24, _C),        # Table VIII, CIFAR100 / DMP
    },
})
"""The baselines' Table VIII maxima as printed: ``{dataset: {defense: MaxRates}}`` (percent).

A maximum reached by the NN attack is its printed column, which the authors' label bug swapped
(the NN attack's true TPR is its printed TNR, not given here), so :func:`hamp_max_rates` gives
no corrected reading of such a field (``None``)."""

# ------------------------------------------------------------------------------------------
# DP-SGD: the HAMP code's settings (Sec. IV-A, App. A) and the Fig. 5 sweep's anchors.
# ------------------------------------------------------------------------------------------
HAMP_DP_SGD: Mapping[str, Mapping[str, float]] = _frozen({
    # App. A / the HAMP code: noise multiplier, clip norm, batch, epochs; the paper's eps = 4
    # is the classic RDP conversion at delta 1e-5 (4.01 / 4.01 / 4.03; Opacus's improved
    # conversion gives 3.52 / 3.53 / 3.53).
    "purchase100": {"noise_multiplier": 1.7, "clip_norm": 1.0, "batch_size": 128,
                    "epochs": 200, "eps": 4.01, "eps_improved": 3.52},
    "texas100": {"noise_multiplier": 1.44, "clip_norm": 1.0, "batch_size": 64,
                 "epochs": 200, "eps": 4.01, "eps_improved": 3.53},
    "location30": {"noise_multiplier": 2.91, "clip_norm": 3.0, "batch_size": 128,
                   "epochs": 50, "eps": 4.03, "eps_improved": 3.53},
})
"""The HAMP code's DP-SGD settings per dataset with the eps they give (delta 1e-5)."""

HAMP_DP_SWEEP: Mapping[str, Any] = _frozen({
    "dataset": "purchase100",
    "noise_multipliers": (0.0, 0.1, 0.5, 0.9),  # Fig. 5
    "clip_norms": (1.0, 5.0, 10.0),             # Fig. 5
    # Fig. 5 / Sec. V: eps per noise multiplier (sigma 0: infinite).
    "eps": {0.0: float("inf"), 0.1: 12069.1, 0.5: 62.5, 0.9: 10.9},
    "undefended": Rates(14.37, 14.62),  # Sec. V, the sweep's undefended reference
    # Sec. V text: (setting, TPR, TNR, test-accuracy loss in points); the other parameter of
    # the last two points is not stated.
    "points": (
        ({"clip_norm": 10.0, "noise_multiplier": 0.0}, Rates(3.86, 9.36), "< 1"),
        ({"clip_norm": 1.0}, Rates(0.67, 0.62), 8.2),
        ({"noise_multiplier": 0.5}, Rates(0.50, 0.49), 13.6),
    ),
})
"""HAMP Fig. 5: the clip x noise grid on Purchase100 and the anchors the text states."""

HAMP_EARLY_STOPPING: Mapping[str, Any] = _frozen({
    # Fig. 7's one stated anchor: Purchase100 stopped at epoch 15.
    "purchase100": {"epoch": 15, "test_acc": 68.6, "rates": Rates(0.67, 1.01)},
})
"""HAMP Fig. 7 (early stopping): the anchors the text states (the epochs are not listed)."""

# ------------------------------------------------------------------------------------------
# HAMP Table II: ablation on Purchase100 (components 1: soft labels, 2: entropy regularizer,
# 3: output modification). Rates are the highest over attacks, as printed.
# ------------------------------------------------------------------------------------------
HAMP_ABLATION: Mapping[str, AblationRow] = _frozen({
    "none": AblationRow(99.36, 80.85, 14.37, 14.62),   # Table II, None (undefended)
    "1": AblationRow(94.58, 81.75, 4.76, 4.22),        # Table II, (1)
    "2": AblationRow(98.06, 81.10, 3.39, 4.19),        # Table II, (2)
    "3": AblationRow(99.36, 80.85, 8.51, 5.34),        # Table II, (3)
    "1+2": AblationRow(91.12, 81.15, 1.86, 1.07),      # Table II, (1) + (2)
    "1+3": AblationRow(94.58, 81.75, 0.82, 1.23),      # Table II, (1) + (3)
    "2+3": AblationRow(98.06, 81.10, 2.90, 3.76),      # Table II, (2) + (3)
    "1+2+3": AblationRow(91.12, 81.15, 0.40, 0.44),    # Table II, (1) + (2) + (3) (full)
})
"""HAMP Table II (Purchase100): ``{components: AblationRow}``. The undefended TPR 14.37 equals
Table VIII's printed NN-based TPR, so it is likely the swapped NN reading."""

HAMP_ABLATION_DATASET = "purchase100"

# ------------------------------------------------------------------------------------------
# HAMP Table IV: mean prediction entropy (nats) on members / non-members.
# ------------------------------------------------------------------------------------------
HAMP_ENTROPY: Mapping[str, Mapping[str, Entropy]] = _frozen({
    "purchase100": {
        "undefended": Entropy(0.389, 0.576, 0.187),  # Table IV, Undefended / Purchase100
        "hamp": Entropy(4.485, 4.490, 0.006),        # Table IV, HAMP / Purchase100
    },
    "texas100": {
        "undefended": Entropy(0.505, 0.771, 0.266),  # Table IV, Undefended / Texas100
        "hamp": Entropy(4.484, 4.495, 0.011),        # Table IV, HAMP / Texas100
    },
    "cifar100": {
        "undefended": Entropy(0.685, 1.020, 0.337),  # Table IV, Undefended / CIFAR100
        "hamp": Entropy(4.124, 4.157, 0.032),        # Table IV, HAMP / CIFAR100
    },
    "cifar10": {
        "undefended": Entropy(0.102, 0.226, 0.125),  # Table IV, Undefended / CIFAR10
        "hamp": Entropy(2.010, 2.029, 0.019),        # Table IV, HAMP / CIFAR10
    },
    "location30": {
        "undefended": Entropy(0.224, 0.567, 0.343),  # Table IV, Undefended / Location30
        "hamp": Entropy(2.789, 2.847, 0.058),        # Table IV, HAMP / Location30
    },
})
"""HAMP Table IV: ``{dataset: {defense: Entropy}}`` (nats)."""

# ------------------------------------------------------------------------------------------
# HAMP Table V: parameters on Purchase100. Keys are our defense names, f"{name}={value:g}".
# ------------------------------------------------------------------------------------------
_GAMMA_ROWS = (
    (0.9, AblationRow(73.79, 66.7, 0.38, 0.26)),    # Table V, gamma 0.9
    (0.8, AblationRow(91.12, 81.15, 0.4, 0.44)),    # Table V, gamma 0.8 (default)
    (0.7, AblationRow(94.56, 82.35, 0.53, 0.68)),   # Table V, gamma 0.7
    (0.6, AblationRow(96.73, 83.4, 0.87, 1.15)),    # Table V, gamma 0.6
    (0.5, AblationRow(97.93, 83.55, 0.98, 1.41)),   # Table V, gamma 0.5
    (0.4, AblationRow(98.49, 83.5, 0.9, 1.97)),     # Table V, gamma 0.4
    (0.3, AblationRow(98.67, 83.9, 1.23, 1.47)),    # Table V, gamma 0.3
    (0.2, AblationRow(98.85, 84.55, 1.17, 2.09)),   # Table V, gamma 0.2
    (0.1, AblationRow(99.06, 84.45, 2.02, 1.91)),   # Table V, gamma 0.1
)
_ALPHA_ROWS = (
    # Table V, alpha 0.5: the text extraction lost the TNR cell (None).
    (0.5, AblationRow(31.81, 29.1, 0.31, None)),
    (0.1, AblationRow(34.27, 33.25, 0.15, 0.2)),    # Table V, alpha 0.1
    (0.05, AblationRow(74.98, 68.05, 0.22, 0.36)),  # Table V, alpha 0.05
    (0.01, AblationRow(91.12, 81.15, 0.4, 0.44)),   # Table V, alpha 0.01 (default)
    (0.005, AblationRow(92.53, 81.45, 0.44, 0.46)), # Table V, alpha 0.005
    (0.001, AblationRow(93.8, 82.1, 0.56, 0.53)),   # Table V, alpha 0.001
    (0.0005, AblationRow(94.22, 81.85, 0.7, 0.78)), # Table V, alpha 0.0005
    (0.0001, AblationRow(94.69, 82.6, 0.81, 0.91)), # Table V, alpha 0.0001
)
HAMP_PARAMS: Mapping[str, AblationRow] = _frozen(
    {f"gamma={g:g}": row for g, row in _GAMMA_ROWS}
    | {f"alpha={a:g}": row for a, row in _ALPHA_ROWS})
"""HAMP Table V (Purchase100): ``{"gamma=<g>" | "alpha=<a>": AblationRow}``."""

HAMP_PARAMS_DATASET = "purchase100"

# ------------------------------------------------------------------------------------------
# HAMP Table VII: inference overhead per sample (ms), one V100.
# ------------------------------------------------------------------------------------------
HAMP_OVERHEAD: Mapping[str, Overhead] = _frozen({
    "purchase100": Overhead(0.34, 354.72, 0.74),   # Table VII, Purchase100
    "texas100": Overhead(0.31, 345.61, 0.69),      # Table VII, Texas100
    "cifar100": Overhead(16.0, 407.75, 16.34),     # Table VII, CIFAR100
    "cifar10": Overhead(12.2, 389.90, 12.24),      # Table VII, CIFAR10
    "location30": Overhead(0.23, 335.42, 0.32),    # Table VII, Location30
})
"""HAMP Table VII: ``{dataset: Overhead}`` (ms per sample)."""

# ------------------------------------------------------------------------------------------
# HAMP Fig. 6 (training sizes on Purchase100): no table; averages from Section V-B's text.
# ------------------------------------------------------------------------------------------
HAMP_SIZES_TEXT: Mapping = _frozen({
    "dataset": "purchase100",
    "sizes": (2500, 5000, 7500, 10000, 30000, 50000),  # Section V-B, first paragraph
    # Section V-B: "The average attack TPR on the undefended model is 24.7% and attack TNR 22.9%"
    "undefended": Rates(24.7, 22.9),
    # Section V-B: "... significantly higher than the 1.3% and 1.5% by HAMP"
    "hamp": Rates(1.3, 1.5),
})
"""Fig. 6 averages over the six training sizes quoted in the text (percent)."""

# ------------------------------------------------------------------------------------------
# RelaxLoss poster: "Defense effectiveness without losing utility" (top-1 rows) and
# "Adaptive attack" (best attack AUC, %) tables. Keys are hampjax.training.presets.RELAXLOSS keys.
# ------------------------------------------------------------------------------------------
RELAXLOSS_POSTER: Mapping[str, RelaxLossRow] = _frozen({
    "cifar10_resnet20": RelaxLossRow(70.5, 73.8, 87.3, 50.0, 56.0),    # poster, CIFAR10 (ResNet20)
    "cifar10_vgg11_bn": RelaxLossRow(73.8, 74.4, 80.7, 50.0, 68.2),    # poster, CIFAR10 (VGG11)
    "cifar100_resnet20": RelaxLossRow(33.2, 35.1, 92.6, 50.0, 57.8),   # poster, CIFAR100 (ResNet20)
    "cifar100_vgg11_bn": RelaxLossRow(41.4, 41.4, 97.5, 50.0, 84.2),   # poster, CIFAR100 (VGG11)
    "texas100_fc": RelaxLossRow(52.3, 55.3, 79.0, 50.0, 53.8),         # poster, Texas100
    "purchase100_fc": RelaxLossRow(89.1, 89.1, 65.7, 50.1, 56.0),      # poster, Purchase100
})
"""RelaxLoss poster: ``{preset: RelaxLossRow}`` (percent; CH-MNIST is not kept)."""

# ------------------------------------------------------------------------------------------
# Trust paper: FPR (%) of the fixed max-score attack on non-member sets (Sec. 4.2).
# ------------------------------------------------------------------------------------------
TRUST_FPR: Mapping[str, Mapping[str, float]] = _frozen({
    # Sec. 4.2, ResNet-18 CIFAR-10, max-score FPR %
    "resnet18": {"test": 44.8, "stl10": 32.7, "svhn": 6.3, "permuted": 58.4, "scaled": 99.8},
    "resnet18_llla": {"scaled": 0.0, "permuted": 14.7},          # Sec. 4.2, "With LLLA"
    "resnet18_label_smoothing": {"test": 24.0, "scaled": 92.8},  # Sec. 4.2, "LS"
    "resnet18_temperature10": {"scaled": 100.0},                 # Sec. 4.2, "T=10"
    "resnet18_l2": {"scaled": 99.2},                             # Sec. 4.2, "L2"
    "efficientnet_b0": {"scaled": 91.0},                         # Sec. 4.2, EfficientNet-B0
})
"""Trust paper FPRs: ``{model setting: {non-member set: FPR %}}`` (for the trust experiment)."""


HAMP_POISONING_DATASET = "cifar10"
"""The dataset of HAMP's poisoning evaluation (V-C: 250 targets x 8 replicas, 128 models)."""

HAMP_POISONING: Mapping[str, PoisoningRow] = _frozen({
    "undefended": PoisoningRow(52.44, 24.52, None),  # V-C text, "after data poisoning"
    "hamp": PoisoningRow(0.34, 0.71, -0.6),           # V-C text, "accuracy drop of 0.6%"
})
"""HAMP V-C: LiRA (leave-one-out, online, fixed variance) on the poisoned targets, pooled."""

HAMP_POISONING_UNPOISONED = Rates(8.23, 10.15)  # V-C text: undefended, without poisoning
"""HAMP V-C: the undefended model's rates without poisoning (Table VIII's CIFAR-10 maxima)."""


# ------------------------------------------------------------------------------------------
# Lookups.
# ------------------------------------------------------------------------------------------


def _check_str(name: str, value) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")


DEFENSE_ALIASES: Mapping[str, str] = _frozen({"hamp_ls": "label_smoothing"})
"""Our defense keys whose paper numbers are another key's: ``hamp_ls`` (HAMP's LS baseline at
the paper's intensities, ``preset_spec("hamp_ls", ...)``) is the paper's LS row."""


def _defense_key(defense: str) -> str:
    _check_str("defense", defense)
    return DEFENSE_ALIASES.get(defense, defense)


def hamp_accuracy(dataset: str, defense: str) -> Accuracy | None:
    """Table I accuracy of ``defense`` on ``dataset``, or ``None`` where the paper has none.

    Args:
      dataset: our dataset name (e.g. ``"purchase100"``; ``"digits"`` gives ``None``).
      defense: defense key (``"undefended"``, ``"hamp"``, ``"label_smoothing"``, ...).

    Returns:
      An :class:`Accuracy` (percent) or ``None``.

    Raises:
      ValueError: if an argument is not a string.

    Example:
      >>> hamp_accuracy("cifar10", "hamp")
      Accuracy(train=95.88, test=86.28, delta=-0.44)
    """
    _check_str("dataset", dataset)
    defense = _defense_key(defense)
    return HAMP_ACCURACY.get(dataset, {}).get(defense)


def hamp_attack_rates(dataset: str, defense: str, attack: str, *,
                      corrected: bool = True) -> Rates | None:
    """Table VIII TPR/TNR of one attack, or ``None`` where the paper has no such row.

    Args:
      dataset: our dataset name.
      defense: ``"undefended"``, ``"hamp"`` or ``"label_smoothing"``.
      attack: our attack name (a value of :data:`HAMP_ATTACK_NAMES`).
      corrected: swap TPR and TNR of the attacks in :data:`SWAPPED_ATTACKS` (the NN-based
        attack) to undo the authors' label bug; ``False`` returns the printed values.

    Returns:
      :class:`Rates` (percent; a field is ``None`` where the paper prints N/A) or ``None``.

    Raises:
      ValueError: if an argument has the wrong type.

    Example:
      >>> hamp_attack_rates("cifar10", "undefended", "nn", corrected=False)
      Rates(tpr=8.23, tnr=0.05)
    """
    _check_str("dataset", dataset)
    defense = _defense_key(defense)
    _check_str("attack", attack)
    corrected = validation.check_bool("corrected", corrected)
    rates = HAMP_ATTACK_RATES.get(dataset, {}).get(defense, {}).get(attack)
    if rates is not None and corrected and attack in SWAPPED_ATTACKS:
        rates = Rates(rates.tnr, rates.tpr)
    return rates


def hamp_max_rates(dataset: str, defense: str, *, corrected: bool = True) -> MaxRates | None:
    """The highest Table VIII TPR and TNR over attacks, with the attack reaching each.

    Ties go to the first attack in column order. With ``corrected=False`` this is the paper's
    headline reading (e.g. Purchase100 undefended TPR 14.37 by the NN attack); the corrected
    reading swaps the NN attack's TPR and TNR first. Baselines whose per-attack rows are not
    kept (:data:`HAMP_BASELINE_MAX_PRINTED`: MemGuard, AdvReg, DP-SGD, SELENA, DMP) give their
    printed maxima; corrected, a field the NN attack reached is ``None`` (not in the paper).

    Args:
      dataset: our dataset name.
      defense: a defense key of Table VIII (``"undefended"``, ``"hamp"``,
        ``"label_smoothing"``, ``"advreg"``, ``"dp_sgd"``, ...).
      corrected: as in :func:`hamp_attack_rates`.

    Returns:
      :class:`MaxRates` (percent) or ``None`` where the paper has no such row.

    Raises:
      ValueError: if an argument has the wrong type.

    Example:
      >>> hamp_max_rates("purchase100", "undefended", corrected=False)
      MaxRates(tpr=14.37, tpr_attack='nn', tnr=13.19, tnr_attack='lira_online')
    """
    _check_str("dataset", dataset)
    defense = _defense_key(defense)
    corrected = validation.check_bool("corrected", corrected)
    rows = HAMP_ATTACK_RATES.get(dataset, {}).get(defense)
    if rows is None:
        printed = HAMP_BASELINE_MAX_PRINTED.get(dataset, {}).get(defense)
        if printed is None or not corrected:
            return printed
        # The NN attack's printed column is swapped: its corrected value is not in the paper.
        unknown = lambda value, attack: None if attack in SWAPPED_ATTACKS else value
        return MaxRates(unknown(printed.tpr, printed.tpr_attack), printed.tpr_attack,
                        unknown(printed.tnr, printed.tnr_attack), printed.tnr_attack)
    rates = {a: hamp_attack_rates(dataset, defense, a, corrected=corrected) for a in rows}

    def best(field: str) -> tuple[float, str]:
        value, name = -1.0, ""
        for attack, r in rates.items():
            v = getattr(r, field)
            if v is not None and v > value:
                value, name = v, attack
        return value, name

    tpr, tpr_attack = best("tpr")
    tnr, tnr_attack = best("tnr")
    return MaxRates(tpr, tpr_attack, tnr, tnr_attack)
