"""HAMP Fig. 1: privacy and utility of every defense, averaged over the datasets.

For each defense of a ``hamp_main`` run, the mean over the run's cells (datasets) where it was
evaluated of its highest attack TPR@0.1%FPR, its highest TNR@0.1%FNR and its accuracy delta
(test accuracy minus the undefended model's in the same cell). The paper's values are averaged
over the same datasets where the paper reports the defense, from its printed Table VIII
maxima (the reading its Fig. 1 plots) and Table I accuracies; a defense the paper reports on
none of them has no paper value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hampjax.repro import paper
from hampjax.repro.figures import panels_png
from hampjax.repro.rundir import RunResults
from hampjax.repro.tables import Entry, Table, accuracy_percent, percent

__all__ = ["fig1_points", "fig1_table", "fig1_figure"]

_TPR, _TNR = "max_tpr@0.1%fpr", "max_tnr@0.1%fnr"
_FIELDS = ("tpr", "tnr", "acc_delta")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def fig1_points(run: RunResults) -> dict[str, dict[str, Any]]:
    """Per defense (first-seen order): ``{"cells": [...], "ours": {field: mean},
    "paper": {field: mean or None}, "paper_datasets": [...]}`` with fields ``tpr``, ``tnr``
    (percent) and ``acc_delta`` (percentage points); a cell without an undefended model gives
    no accuracy delta."""
    ours: dict[str, dict[str, list[float]]] = {}
    theirs: dict[str, dict[str, list[float]]] = {}
    cells: dict[str, list[str]] = {}
    datasets: dict[str, list[str]] = {}
    for cell, report in run.reports.items():
        defenses: Mapping[str, Mapping] = report["defenses"]
        base = accuracy_percent(defenses.get("undefended"), "test_acc")
        dataset = run.dataset(cell)
        for name, d in defenses.items():
            cells.setdefault(name, []).append(cell)
            mine = ours.setdefault(name, {f: [] for f in _FIELDS})
            test = accuracy_percent(d, "test_acc")
            for field, value in (("tpr", percent(d.get(_TPR))), ("tnr", percent(d.get(_TNR))),
                                 ("acc_delta", None if base is None or test is None
                                  else test - base)):
                if value is not None:
                    mine[field].append(value)
            rates = paper.hamp_max_rates(dataset, name, corrected=False)
            acc = paper.hamp_accuracy(dataset, name)
            if rates is None or acc is None:
                continue
            datasets.setdefault(name, []).append(dataset)
            other = theirs.setdefault(name, {f: [] for f in _FIELDS})
            for field, value in (("tpr", rates.tpr), ("tnr", rates.tnr),
                                 ("acc_delta", acc.delta)):
                if value is not None:
                    other[field].append(float(value))
    return {name: {"cells": cells[name],
                   "ours": {f: _mean(v) for f, v in ours[name].items()},
                   "paper": {f: _mean(theirs.get(name, {}).get(f, [])) for f in _FIELDS},
                   "paper_datasets": datasets.get(name, [])}
            for name in ours}


def fig1_table(run: RunResults) -> Table:
    """HAMP Fig. 1 as a table: per defense, the averaged highest TPR / TNR and accuracy delta,
    ours / paper."""
    rows = []
    for name, p in fig1_points(run).items():
        rows.append(((name,), tuple(Entry(p["ours"][f], p["paper"][f]) for f in _FIELDS)))
    return Table("fig1", "Fig. 1: privacy and utility averaged over datasets (%), ours / paper",
                 ("defense",), ("highest TPR@0.1%FPR", "highest TNR@0.1%FNR", "acc delta"),
                 tuple(rows),
                 notes=("Ours: the mean over this run's cells where the defense ran. Paper: "
                        "the mean over the same datasets where the paper reports the defense "
                        "(printed Table VIII maxima, as its Fig. 1; Table I accuracy deltas).",))


def fig1_figure(run: RunResults) -> dict[str, bytes]:
    """HAMP Fig. 1 as a figure (``hamp_fig1.png``): two panels, highest TPR@0.1%FPR and
    highest TNR@0.1%FNR against the accuracy delta, one labelled point per defense, ours and
    the paper's. Empty for a run with no accuracy deltas (no undefended model)."""
    points = fig1_points(run)
    panels = []
    for field, label in (("tpr", "highest TPR@0.1%FPR (%)"), ("tnr", "highest TNR@0.1%FNR (%)")):
        series = {}
        for who in ("ours", "paper"):
            pts = [(p[who]["acc_delta"], p[who][field], name) for name, p in points.items()
                   if p[who]["acc_delta"] is not None and p[who][field] is not None]
            if pts:
                series[who] = ([x for x, _, _ in pts], [y for _, y, _ in pts],
                               [n for _, _, n in pts], False)
        if series:
            panels.append(dict(xlabel="accuracy delta (percentage points)", ylabel=label,
                               series=series))
    if not panels:
        return {}
    return {"hamp_fig1.png": panels_png(
        panels, title="HAMP Fig. 1: privacy and utility, averaged over datasets")}
