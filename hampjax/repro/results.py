"""Paper-style tables from experiment run directories, side by side with the papers' numbers.

A run directory (written by :mod:`hampjax.repro.runner`) holds::

    <workdir>/experiment.json   {"experiment": kind, "name": str, "config": {...},
                                 "cells": [cell names], "data_hashes": {cell: str}}
    <workdir>/<cell>/report.json   the hampjax.report summary (README, "report.json")
    <workdir>/<cell>/stats.json    {defense: {"entropy_members", "entropy_nonmembers"}} (nats)
    <workdir>/overhead.json        kind "hamp_overhead" only: {dataset: {"forward_ms",
                                   "modify_output_ms", "hamp_ms", "batch", "device"}}
    <workdir>/<cell>/summary.json  kind "trust" only: {variant: {"train_acc", "test_acc",
                                   "ece", "oe", "mmps", "fpr": {set: {attack: fpr}}, ...}}

:func:`load_run` reads one directory into a :class:`RunResults` (cells whose report is not
written yet are listed as missing), :func:`tables` turns it into :class:`Table` objects for
its experiment kind, and :func:`render` / :func:`render_many` print them as Markdown or CSV.

Numbers are printed like the papers: accuracies, rates and AUCs in percent with 2 decimals,
entropies in nats with 3, latencies in ms with 4 (ours can be far below the paper's 0.3 ms).
A Markdown cell reads ``"ours / paper"``,
``"—"`` where there is no value (no paper number for that dataset, e.g. digits), and ``*``
marks our rates flagged ``below_resolution`` (target rate below 1/N). The CSV is tidy: one row
per (table, cell, defense, attack, column) with the raw numbers in display units.

Experiment kinds (:data:`EXPERIMENT_KINDS`) and their tables:

* ``hamp_main``: accuracy (Table I), max TPR/TNR/AUC over attacks (Fig. 3 / Table VIII maxima),
  per-attack TPR/TNR (Table VIII), prediction entropy (Table IV, where ``stats.json`` exists).
* ``hamp_entropy``: accuracy and entropy.  ``hamp_ablation``: Table II.  ``hamp_params``:
  Table V.  ``hamp_sizes``: Fig. 6 (ours only, plus the averages quoted in the text).
  ``hamp_overhead``: Table VII.  ``relaxloss``: the RelaxLoss poster.  ``ws_sigma``: ours only.
  ``trust``: accuracy and calibration per variant, the max-score FPR per non-member set
  next to the Trust paper's, and the other attacks' FPRs.

Example:
  >>> run = load_run("runs/hamp_main")                       # doctest: +SKIP
  >>> print(render(run, fmt="md"))                           # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hampjax import validation
from hampjax.repro import paper

__all__ = [
    "EXPERIMENT_KINDS",
    "FORMATS",
    "CSV_COLUMNS",
    "RunResults",
    "Entry",
    "Table",
    "load_run",
    "tables",
    "render",
    "render_many",
]

EXPERIMENT_KINDS = ("hamp_main", "hamp_entropy", "hamp_ablation", "hamp_params", "hamp_sizes",
                    "hamp_overhead", "relaxloss", "ws_sigma", "trust")
FORMATS = ("md", "csv")
CSV_COLUMNS = ("experiment", "kind", "table", "cell", "defense", "attack", "column", "ours",
               "paper", "below_resolution", "ours_attack", "paper_attack", "unit")
"""Columns of the tidy CSV written by :func:`render` with ``fmt="csv"``."""

DASH = "—"
TPR, TNR, AUC = "tpr@0.1%fpr", "tnr@0.1%fnr", "auc"
_RATE_COLUMNS = ((TPR, "TPR@0.1%FPR"), (TNR, "TNR@0.1%FNR"))
_MAX_COLUMNS = _RATE_COLUMNS + ((AUC, "AUC"),)
_FLAG_NOTE = "`*`: our rate is below the 1/N resolution of the evaluated set (report flag)."
_NN_NOTE = ("Paper NN-based TPR and TNR are shown swapped relative to the printed Table VIII: "
            "the authors labelled members 0 while their ROC treats 1 as positive (spec "
            "hamp-relaxloss.md section 3), so the printed TPR is really the TNR and vice versa.")


@dataclasses.dataclass(frozen=True)
class RunResults:
    """One experiment run directory, as read by :func:`load_run`.

    Attributes:
      workdir: the directory.
      kind: the experiment kind (one of :data:`EXPERIMENT_KINDS`).
      name: the experiment's name.
      config: the experiment config (a JSON mapping).
      cells: every cell the experiment declares, in its order.
      reports: ``{cell: report.json}`` for the finished cells.
      stats: ``{cell: stats.json}`` where written.
      missing: declared cells without results yet (no report.json / overhead entry).
      data_hashes: ``{cell: data hash}``.
      overhead: ``overhead.json`` (kind ``"hamp_overhead"``), else ``None``.
      trust: ``{cell: summary.json}`` (kind ``"trust"``): per variant accuracy, calibration
        and the FPR of every attack on every non-member set.
    """

    workdir: str
    kind: str
    name: str
    config: Mapping[str, Any]
    cells: tuple[str, ...]
    reports: Mapping[str, Mapping[str, Any]]
    stats: Mapping[str, Mapping[str, Any]]
    missing: tuple[str, ...]
    data_hashes: Mapping[str, str]
    overhead: Mapping[str, Any] | None
    trust: Mapping[str, Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One table cell: our value and the paper's (display units), ``None`` where absent.

    ``flagged`` marks our rate as below resolution; ``ours_attack`` / ``paper_attack`` name
    the attack that reaches a maximum.
    """

    ours: float | None
    paper: float | None = None
    flagged: bool = False
    ours_attack: str | None = None
    paper_attack: str | None = None


@dataclasses.dataclass(frozen=True)
class Table:
    """A rendered-to-be table.

    Attributes:
      name: short identifier (the CSV ``table`` column), e.g. ``"accuracy"``.
      title: Markdown heading.
      keys: row key columns, a subset of ``("cell", "defense", "attack")`` in that order.
      columns: value column labels.
      rows: ``(key values, entries)`` pairs, one entry per column.
      has_paper: whether cells read ``"ours / paper"`` (else ours only).
      decimals: digits after the point.
      unit: ``"%"``, ``"nats"`` or ``"ms"``.
      notes: footnotes.
    """

    name: str
    title: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[tuple[str, ...], tuple[Entry, ...]], ...]
    has_paper: bool = True
    decimals: int = 2
    unit: str = "%"
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Loading.
# --------------------------------------------------------------------------------------------


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} must be valid JSON, {path} is not: {e}") from e


def _check_cell_name(cell: Any) -> str:
    """A cell names a subdirectory of the workdir: a plain, non-empty name."""
    if (not isinstance(cell, str) or not cell or cell in (".", "..") or "/" in cell
            or os.sep in cell):
        raise ValueError(f"experiment.json 'cells' must hold plain directory names, got {cell!r}")
    return cell


def load_run(workdir: str | os.PathLike) -> RunResults:
    """Read an experiment run directory (layout in the module docstring).

    Args:
      workdir: the run directory holding ``experiment.json``.

    Returns:
      A :class:`RunResults`; cells whose ``report.json`` does not exist yet are listed in
      ``missing`` (an unfinished run is not an error).

    Raises:
      ValueError: if ``workdir`` is not a directory, has no ``experiment.json``, or a JSON file
        is malformed (unknown experiment kind, cells not a list of names, report without
        ``"defenses"``).

    Example:
      >>> load_run("runs/hamp_main").missing                     # doctest: +SKIP
      ('cifar100',)
    """
    workdir = os.fspath(workdir)
    if not os.path.isdir(workdir):
        raise ValueError(f"workdir must be an existing run directory, got {workdir!r}")
    exp_path = os.path.join(workdir, "experiment.json")
    if not os.path.isfile(exp_path):
        raise ValueError(f"workdir must contain experiment.json (written by the runner); "
                         f"{workdir!r} has none")
    exp = _read_json(exp_path, "experiment.json")
    if not isinstance(exp, dict):
        raise ValueError(f"experiment.json must hold a JSON object, got {type(exp).__name__}")
    kind = exp.get("experiment")
    validation.check_choice("experiment.json 'experiment'", kind, EXPERIMENT_KINDS)
    cells = exp.get("cells")
    if not isinstance(cells, list):
        raise ValueError(f"experiment.json 'cells' must be a list of cell names, got {cells!r}")
    cells = tuple(_check_cell_name(c) for c in cells)
    reports, stats, missing = {}, {}, []
    trust: dict[str, Any] = {}
    overhead = None
    if kind == "hamp_overhead":
        path = os.path.join(workdir, "overhead.json")
        if os.path.isfile(path):
            overhead = _read_json(path, "overhead.json")
            if not isinstance(overhead, dict) or not all(
                    isinstance(v, dict) for v in overhead.values()):
                raise ValueError("overhead.json must hold a JSON object {dataset: {...}}")
        missing = [c for c in cells if overhead is None or c not in overhead]
    else:
        for cell in cells:
            cell_dir = os.path.join(workdir, cell)
            if kind == "trust":
                summary_path = os.path.join(cell_dir, "summary.json")
                if os.path.isfile(summary_path):
                    summary = _read_json(summary_path, "summary.json")
                    if not isinstance(summary, dict) or not all(
                            isinstance(v, dict) and isinstance(v.get("fpr"), dict)
                            for v in summary.values()):
                        raise ValueError(f"summary.json must hold {{variant: {{train_acc, "
                                         f"test_acc, ece, oe, fpr: {{...}}}}}}; {summary_path} "
                                         f"does not")
                    trust[cell] = summary
                else:
                    missing.append(cell)
                continue
            report_path = os.path.join(cell_dir, "report.json")
            if not os.path.isfile(report_path):
                missing.append(cell)
                continue
            report = _read_json(report_path, "report.json")
            if not isinstance(report, dict) or not isinstance(report.get("defenses"), dict):
                raise ValueError(f"report.json must hold a 'defenses' object; {report_path} "
                                 f"does not")
            reports[cell] = report
            stats_path = os.path.join(cell_dir, "stats.json")
            if os.path.isfile(stats_path):
                cell_stats = _read_json(stats_path, "stats.json")
                if not isinstance(cell_stats, dict) or not all(
                        isinstance(v, dict) for v in cell_stats.values()):
                    raise ValueError(f"stats.json must hold a JSON object {{defense: "
                                     f"{{entropy_members, entropy_nonmembers}}}}; {stats_path} "
                                     f"does not")
                stats[cell] = cell_stats
    hashes = exp.get("data_hashes") or {}
    return RunResults(
        workdir=workdir, kind=kind, name=str(exp.get("name", os.path.basename(workdir))),
        config=types.MappingProxyType(dict(exp.get("config") or {})), cells=cells,
        reports=types.MappingProxyType(reports), stats=types.MappingProxyType(stats),
        missing=tuple(missing), data_hashes=types.MappingProxyType(dict(hashes)),
        overhead=overhead, trust=types.MappingProxyType(trust))


# --------------------------------------------------------------------------------------------
# Reading our numbers from a report.
# --------------------------------------------------------------------------------------------


def _pct(value: Any) -> float | None:
    """Percent, or None for a missing or undefined (NaN: skipped attack, empty set) value."""
    return None if value is None or value != value else 100.0 * float(value)


def _flag(defense: Mapping, attack: str | None, metric: str) -> bool:
    if attack is None or metric == AUC:
        return False
    return bool(defense.get("attacks", {}).get(attack, {}).get(f"{metric}/below_resolution"))


def _max_entry(defense: Mapping | None, metric: str, paper_value=None, paper_attack=None) -> Entry:
    if defense is None:
        return Entry(None, paper_value, paper_attack=paper_attack)
    attack = defense.get(f"max_{metric}/attack")
    return Entry(_pct(defense.get(f"max_{metric}")), paper_value, _flag(defense, attack, metric),
                 attack, paper_attack)


def _attack_entry(defense: Mapping | None, attack: str, metric: str, paper_value=None) -> Entry:
    values = (defense or {}).get("attacks", {}).get(attack)
    if values is None:
        return Entry(None, paper_value)
    return Entry(_pct(values.get(metric)), paper_value, _flag(defense, attack, metric))


def _defenses(run: RunResults, cell: str) -> Mapping[str, Mapping]:
    return run.reports[cell]["defenses"]


def _acc(defense: Mapping | None, key: str) -> float | None:
    return None if defense is None else _pct(defense.get(key))


# --------------------------------------------------------------------------------------------
# Tables per experiment kind.
# --------------------------------------------------------------------------------------------


def _accuracy_table(run: RunResults) -> Table:
    rows = []
    for cell, report in run.reports.items():
        defenses = report["defenses"]
        base = _acc(defenses.get("undefended"), "test_acc")
        for name, d in defenses.items():
            p = paper.hamp_accuracy(cell, name)
            test = _acc(d, "test_acc")
            delta = None if base is None or test is None else test - base
            rows.append(((cell, name), (
                Entry(_acc(d, "train_acc"), p and p.train),
                Entry(test, p and p.test),
                Entry(delta, p and p.delta))))
    return Table("accuracy", "Table I: model accuracy (%), ours / paper", ("cell", "defense"),
                 ("train acc", "test acc", "acc delta"), tuple(rows),
                 notes=("Accuracy delta: test accuracy minus the undefended model's in the "
                        "same cell (percentage points).",))


def _max_table(run: RunResults) -> Table:
    rows, printed = [], []
    for cell, report in run.reports.items():
        for name, d in report["defenses"].items():
            pm = paper.hamp_max_rates(cell, name)
            raw = paper.hamp_max_rates(cell, name, corrected=False)
            if pm is not None and pm != raw:
                printed.append(f"{cell}/{name}: TPR {raw.tpr:.2f} ({raw.tpr_attack}), "
                               f"TNR {raw.tnr:.2f} ({raw.tnr_attack})")
            rows.append(((cell, name), (
                _max_entry(d, TPR, pm and pm.tpr, pm and pm.tpr_attack),
                _max_entry(d, TNR, pm and pm.tnr, pm and pm.tnr_attack),
                _max_entry(d, AUC))))
    notes = [
        "Ours: the maximum over every attack we run (metric attacks, five LiRA variants, RMIA, "
        "NN, top-3, label-only), with the attack reaching it. Paper: the maximum over Table "
        "VIII's attacks (Fig. 3); the paper gives AUCs only as a figure (Fig. 4).",
        _NN_NOTE + " The paper maxima here use the corrected NN reading.",
    ]
    if printed:
        notes.append("Paper maxima as printed (uncorrected NN): " + "; ".join(printed) + ".")
    notes.append(_FLAG_NOTE)
    return Table("max_rates", "Highest attack TPR@0.1%FPR, TNR@0.1%FNR and AUC over attacks "
                 "(%), ours / paper", ("cell", "defense"), tuple(c for _, c in _MAX_COLUMNS),
                 tuple(rows), notes=tuple(notes))


def _per_attack_table(run: RunResults) -> Table:
    rows = []
    for cell, report in run.reports.items():
        for name, d in report["defenses"].items():
            for attack in paper.HAMP_ATTACK_NAMES.values():
                p = paper.hamp_attack_rates(cell, name, attack)
                entries = (_attack_entry(d, attack, TPR, p and p.tpr),
                           _attack_entry(d, attack, TNR, p and p.tnr))
                if any(e.ours is not None or e.paper is not None for e in entries):
                    rows.append(((cell, name, attack), entries))
    return Table("per_attack", "Table VIII: attack TPR@0.1%FPR and TNR@0.1%FNR per attack (%), "
                 "ours / paper", ("cell", "defense", "attack"), tuple(c for _, c in _RATE_COLUMNS),
                 tuple(rows), notes=(
                     "Attacks: Table VIII's columns under our names (NN-based=nn, Loss=loss, "
                     "Confidence=confidence, Entropy=entropy, M-entropy=modified_entropy, "
                     "Augmentation=label_only_augmentation, Boundary=label_only_boundary, "
                     "LiRA=lira_online). The paper's boundary attack on tabular data is bit-flip "
                     "noise robustness (our label_only_noise, in the maxima above).",
                     _NN_NOTE, "N/A in the paper and attacks we did not run show —.",
                     _FLAG_NOTE))


def _entropy_table(run: RunResults) -> Table | None:
    rows = []
    for cell, stats in run.stats.items():
        for name, s in stats.items():
            p = paper.HAMP_ENTROPY.get(cell, {}).get(name)
            members, nonmembers = s.get("entropy_members"), s.get("entropy_nonmembers")
            diff = None if members is None or nonmembers is None else nonmembers - members
            rows.append(((cell, name), (Entry(members, p and p.members),
                                        Entry(nonmembers, p and p.nonmembers),
                                        Entry(diff, p and p.difference))))
    if not rows:
        return None
    return Table("entropy", "Table IV: mean prediction entropy (nats), ours / paper",
                 ("cell", "defense"), ("members", "non-members", "difference"), tuple(rows),
                 decimals=3, unit="nats",
                 notes=("Difference: non-members minus members (smaller is better).",))


def _summary_rows(run: RunResults, lookup: Callable[[str, str], Any]) -> tuple:
    """Rows (cell, defense) -> train acc, test acc, max TPR, max TNR, max AUC."""
    rows = []
    for cell, report in run.reports.items():
        for name, d in report["defenses"].items():
            p = lookup(cell, name)
            rows.append(((cell, name), (
                Entry(_acc(d, "train_acc"), p and p.train_acc),
                Entry(_acc(d, "test_acc"), p and p.test_acc),
                _max_entry(d, TPR, p and p.tpr), _max_entry(d, TNR, p and p.tnr),
                _max_entry(d, AUC))))
    return tuple(rows)


_SUMMARY_COLUMNS = ("train acc", "test acc", "max TPR@0.1%FPR", "max TNR@0.1%FNR", "max AUC")


def _ablation_tables(run: RunResults) -> list[Table]:
    def lookup(cell, name):
        return paper.HAMP_ABLATION.get(name) if cell == paper.HAMP_ABLATION_DATASET else None

    return [Table("ablation", "Table II: ablation of HAMP's components (%), ours / paper",
                  ("cell", "defense"), _SUMMARY_COLUMNS, _summary_rows(run, lookup), notes=(
                      "Components: 1 = high-entropy soft labels, 2 = entropy regularizer, "
                      "3 = testing-time output modification. The paper's numbers are on "
                      "Purchase100 only.",
                      "Paper rates are the highest over attacks as printed; the undefended "
                      "TPR 14.37 equals Table VIII's printed NN-based TPR, which the authors' "
                      "label bug swaps (spec section 3).", _FLAG_NOTE))]


def _params_tables(run: RunResults) -> list[Table]:
    def lookup(cell, name):
        return paper.HAMP_PARAMS.get(name) if cell == paper.HAMP_PARAMS_DATASET else None

    return [Table("params", "Table V: HAMP under different parameters (%), ours / paper",
                  ("cell", "defense"), _SUMMARY_COLUMNS, _summary_rows(run, lookup), notes=(
                      "gamma = entropy threshold (alpha at its default), alpha = regularization "
                      "strength (gamma at its default). The paper's numbers are on Purchase100 "
                      "only; its alpha=0.5 TNR was lost in the text extraction (—).",
                      _FLAG_NOTE))]


def _sizes_tables(run: RunResults) -> list[Table]:
    main = Table("sizes", "Fig. 6: training-set sizes (%), ours only", ("cell", "defense"),
                 _SUMMARY_COLUMNS, _summary_rows(run, lambda c, d: None), has_paper=False,
                 notes=("The paper shows these results only as a figure (Fig. 6, Purchase100, "
                        "sizes 2,500 to 50,000): no per-size numbers to compare.", _FLAG_NOTE))
    rows = []
    for name in ("undefended", "hamp"):
        values = {TPR: [], TNR: []}
        for report in run.reports.values():
            d = report["defenses"].get(name)
            for metric in values:
                if d is not None and d.get(f"max_{metric}") is not None:
                    values[metric].append(100.0 * float(d[f"max_{metric}"]))
        p = paper.HAMP_SIZES_TEXT.get(name)
        rows.append((("mean", name), tuple(
            Entry(sum(v) / len(v) if v else None, getattr(p, field))
            for v, field in ((values[TPR], "tpr"), (values[TNR], "tnr")))))
    mean = Table("sizes_mean", "Fig. 6: mean over the sizes (%), ours / paper text",
                 ("cell", "defense"), ("max TPR@0.1%FPR", "max TNR@0.1%FNR"), tuple(rows),
                 notes=("Paper: the averages over its six sizes quoted in Section V-B. Ours: "
                        "the mean over the finished cells of this run.",))
    return [main, mean]


def _overhead_tables(run: RunResults) -> list[Table]:
    rows, devices = [], []
    for cell in run.cells:
        o = (run.overhead or {}).get(cell)
        if o is None:
            continue
        p = paper.HAMP_OVERHEAD.get(cell)
        rows.append(((cell,), (Entry(o.get("forward_ms"), p and p.undefended),
                               Entry(o.get("hamp_ms"), p and p.hamp),
                               Entry(o.get("modify_output_ms")),
                               Entry(None, p and p.memguard))))
        devices.append(f"{cell}: batch {o.get('batch')}, {o.get('device')}")
    notes = ("Milliseconds per sample. Undefended = one forward pass; HAMP = forward pass plus "
             "output modification; output modification alone has no paper column. Paper: one "
             "V100 GPU; MemGuard is not implemented here.",)
    if devices:
        notes += ("Ours: " + "; ".join(devices) + ".",)
    return [Table("overhead", "Table VII: inference overhead (ms per sample), ours / paper",
                  ("cell",), ("undefended", "HAMP", "output modification", "MemGuard"),
                  tuple(rows), decimals=4, unit="ms", notes=notes)]


def _relaxloss_tables(run: RunResults) -> list[Table]:
    names = ("undefended", "relaxloss_nonadaptive", "relaxloss_adaptive")
    rows = []
    for cell, report in run.reports.items():
        defenses = report["defenses"]
        p = paper.RELAXLOSS_POSTER.get(cell)
        accs = (p and p.acc_undefended, p and p.acc_defended, p and p.acc_defended)
        aucs = (p and p.auc_undefended, p and p.auc_nonadaptive, p and p.auc_adaptive)
        entries = [Entry(_acc(defenses.get(n), "test_acc"), a) for n, a in zip(names, accs)]
        entries += [_max_entry(defenses.get(n), AUC, a) for n, a in zip(names, aucs)]
        rows.append(((cell,), tuple(entries)))
    return [Table("relaxloss", "RelaxLoss poster: test accuracy and best attack AUC (%), "
                  "ours / paper", ("cell",),
                  ("test acc undefended", "test acc non-adaptive", "test acc adaptive",
                   "AUC undefended", "AUC non-adaptive", "AUC adaptive"), tuple(rows), notes=(
                      "Paper: top-1 test accuracy without -> with RelaxLoss (one defended "
                      "accuracy for both attack settings) and the best attack AUC; "
                      "'adaptive' = shadow models trained with RelaxLoss too.",
                      "Ours: the highest AUC over every attack we run, with the attack."))]


def _ws_tables(run: RunResults) -> list[Table]:
    return [Table("ws_sigma", "Weighted Smoothing: accuracy and highest attack rates vs sigma "
                  "(%), ours only", ("cell", "defense"), _SUMMARY_COLUMNS,
                  _summary_rows(run, lambda c, d: None), has_paper=False, notes=(
                      "Weighted Smoothing has no public numbers to compare with.", _FLAG_NOTE))]


# The Trust paper's settings (spec B.3) by our variant name; its numbers are ResNet-18 on CIFAR-10.
_TRUST_PAPER_KEYS = {"standard": "resnet18", "llla": "resnet18_llla",
                     "label_smoothing": "resnet18_label_smoothing", "l2": "resnet18_l2"}


def _trust_paper(run: RunResults, variant: str, nonmember_set: str) -> float | None:
    cfg = run.config
    if cfg.get("dataset") != "cifar10" or cfg.get("model") != "resnet18":
        return None
    key = _TRUST_PAPER_KEYS.get(variant)
    if variant == "temperature" and float(cfg.get("temperature", 0)) == 10.0:
        key = "resnet18_temperature10"
    if key is None:
        return None
    name = "scaled" if nonmember_set == "scaled_x255" else nonmember_set
    return paper.TRUST_FPR.get(key, {}).get(name)


def _trust_tables(run: RunResults) -> list[Table]:
    sets: list[str] = []
    attacks: list[str] = []
    for summary in run.trust.values():
        for entry in summary.values():
            for s_name, per in entry["fpr"].items():
                sets += [s_name] if s_name not in sets else []
                attacks += [a for a in per if a not in attacks]
    calib, max_rows, other_rows = [], [], []
    for cell, summary in run.trust.items():
        for variant, e in summary.items():
            calib.append(((cell, variant), (
                Entry(_pct(e.get("train_acc"))), Entry(_pct(e.get("test_acc"))),
                Entry(_pct(e.get("ece"))), Entry(_pct(e.get("oe"))), Entry(_pct(e.get("mmps"))))))
            for attack in attacks:
                entries = tuple(Entry(_pct(e["fpr"].get(s_name, {}).get(attack)),
                                      _trust_paper(run, variant, s_name)
                                      if attack == "max_score" else None) for s_name in sets)
                (max_rows if attack == "max_score" else other_rows).append(
                    ((cell, variant, attack), entries))
    notes = ("FPR: the share of a non-member set the attack (fitted on the shadow model's own "
             "members and non-members) calls members. Paper: ResNet-18 on CIFAR-10 (spec B.3; "
             "the paper shows most numbers as figures).",
             "Sets: test = the target's test non-members; scaled_x<d> = those inputs times d "
             "(the paper's Scaled is x255); permuted = pixels shuffled per image; OOD sets by "
             "name; uniform_noise = uniform random pixels.")
    return [
        Table("trust_calibration", "Trust: accuracy and calibration of the target (%), ours only",
              ("cell", "defense"), ("train acc", "test acc", "ECE", "OE", "MMPS"),
              tuple(calib), has_paper=False, notes=(
                  "ECE / OE with 15 bins on the target's test non-members; MMPS: mean max "
                  "prediction score. Variants are listed in the defense column.",)),
        Table("trust_fpr_max_score", "Trust: max-score attack FPR per non-member set (%), "
              "ours / paper", ("cell", "defense", "attack"), tuple(sets), tuple(max_rows),
              notes=notes),
        Table("trust_fpr_other", "Trust: FPR of the other attacks per non-member set (%), ours "
              "only", ("cell", "defense", "attack"), tuple(sets), tuple(other_rows),
              has_paper=False, notes=notes[1:]),
    ]


def _hamp_main_tables(run: RunResults) -> list[Table]:
    out = [_accuracy_table(run), _max_table(run), _per_attack_table(run)]
    entropy = _entropy_table(run)
    return out + ([entropy] if entropy is not None else [])


def _hamp_entropy_tables(run: RunResults) -> list[Table]:
    entropy = _entropy_table(run)
    return [_accuracy_table(run)] + ([entropy] if entropy is not None else [])


_BUILDERS: Mapping[str, Callable[[RunResults], list[Table]]] = types.MappingProxyType({
    "hamp_main": _hamp_main_tables,
    "hamp_entropy": _hamp_entropy_tables,
    "hamp_ablation": _ablation_tables,
    "hamp_params": _params_tables,
    "hamp_sizes": _sizes_tables,
    "hamp_overhead": _overhead_tables,
    "relaxloss": _relaxloss_tables,
    "ws_sigma": _ws_tables,
    "trust": lambda run: _trust_tables(run),
})


def _check_run(run: Any) -> None:
    if not isinstance(run, RunResults):
        raise ValueError(f"run must be a RunResults (from load_run), got {type(run).__name__}")


def tables(run: RunResults) -> list[Table]:
    """The paper-style tables of one run, for its experiment kind (module docstring).

    Args:
      run: from :func:`load_run`.

    Returns:
      A list of :class:`Table`.

    Raises:
      ValueError: if ``run`` is not a :class:`RunResults`.
    """
    _check_run(run)
    return _BUILDERS[run.kind](run)


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------


def _num(value: float | None, decimals: int) -> str:
    return DASH if value is None else f"{value:.{decimals}f}"


def _cell_text(e: Entry, table: Table) -> str:
    ours = _num(e.ours, table.decimals) + ("*" if e.flagged and e.ours is not None else "")
    if e.ours is not None and e.ours_attack:
        ours += f" ({e.ours_attack})"
    if not table.has_paper:
        return ours
    theirs = _num(e.paper, table.decimals)
    if e.paper is not None and e.paper_attack:
        theirs += f" ({e.paper_attack})"
    return f"{ours} / {theirs}"


def _md_table(table: Table) -> list[str]:
    header = list(table.keys) + list(table.columns)
    lines = [f"## {table.title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for keys, entries in table.rows:
        cells = list(keys) + [_cell_text(e, table) for e in entries]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if not table.rows:
        lines.append("| " + " | ".join([DASH] * len(header)) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {n}" for n in table.notes)
    return lines + [""]


def _md(run: RunResults, run_tables: list[Table]) -> str:
    lines = [f"# {run.name} ({run.kind})", "", f"- workdir: `{run.workdir}`",
             f"- cells: {', '.join(run.cells) if run.cells else DASH}"]
    if run.data_hashes:
        lines.append("- data hashes: " + ", ".join(
            f"{c}={str(h)[:12]}" for c, h in run.data_hashes.items()))
    if run.missing:
        lines.append(f"- missing (run not finished): {', '.join(run.missing)}")
    lines.append("")
    for t in run_tables:
        lines += _md_table(t)
    return "\n".join(lines).rstrip("\n") + "\n"


def _csv_num(value: float | None) -> str:
    return "" if value is None else format(float(value), ".10g")


def _csv_rows(run: RunResults, run_tables: list[Table]) -> list[list[str]]:
    rows = []
    for t in run_tables:
        for keys, entries in t.rows:
            named = dict(zip(t.keys, keys))
            for column, e in zip(t.columns, entries):
                rows.append([run.name, run.kind, t.name, named.get("cell", ""),
                             named.get("defense", ""), named.get("attack", ""), column,
                             _csv_num(e.ours), _csv_num(e.paper) if t.has_paper else "",
                             str(bool(e.flagged)).lower(), e.ours_attack or "",
                             (e.paper_attack or "") if t.has_paper else "", t.unit])
    blank = [""] * (len(CSV_COLUMNS) - 4)
    rows += [[run.name, run.kind, "missing", cell] + blank for cell in run.missing]
    return rows


def _to_csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return buf.getvalue()


def render(run: RunResults, *, fmt: str = "md") -> str:
    """Render one run's tables as Markdown or CSV.

    Args:
      run: from :func:`load_run`.
      fmt: ``"md"`` (headed tables, cells ``"ours / paper"``, footnotes) or ``"csv"`` (tidy
        rows with the columns :data:`CSV_COLUMNS`, numbers in display units).

    Returns:
      The text, ending with a newline.

    Raises:
      ValueError: if ``run`` is not a :class:`RunResults` or ``fmt`` is unknown.

    Example:
      >>> text = render(load_run("runs/hamp_main"), fmt="csv")    # doctest: +SKIP
    """
    _check_run(run)
    validation.check_choice("fmt", fmt, FORMATS)
    run_tables = tables(run)
    if fmt == "md":
        return _md(run, run_tables)
    return _to_csv(_csv_rows(run, run_tables))


def render_many(workdirs: Sequence[str | os.PathLike], *, fmt: str = "md") -> str:
    """Load and render several run directories into one document (one CSV header).

    Args:
      workdirs: run directories (non-empty sequence).
      fmt: as in :func:`render`.

    Returns:
      The text: Markdown sections one after another, or one CSV.

    Raises:
      ValueError: if ``workdirs`` is empty or a string, ``fmt`` is unknown, or as
        :func:`load_run`.
    """
    validation.check_choice("fmt", fmt, FORMATS)
    if isinstance(workdirs, (str, bytes, os.PathLike)) or not isinstance(workdirs, Sequence):
        raise ValueError(f"workdirs must be a sequence of run directories, got {workdirs!r}")
    if not workdirs:
        raise ValueError("workdirs must name at least 1 run directory, got none")
    runs = [load_run(w) for w in workdirs]
    if fmt == "md":
        return "\n".join(render(r, fmt="md") for r in runs)
    rows = []
    for r in runs:
        rows += _csv_rows(r, tables(r))
    return _to_csv(rows)
