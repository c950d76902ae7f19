"""Figures of the experiments that the papers show as figures, from run directories.

One builder per experiment kind that has figures, ``(run) -> {file name: PNG bytes}``
(the registry :data:`hampjax.repro.kinds.EXPERIMENT_KINDS` names them;
:func:`hampjax.repro.results.figures` calls them). Swept values and training sizes are read
from the run's recorded ``cell_info`` (data, never parsed from names):

* ``ws_sigma``: ``ws_tradeoff_<cell>.png``, Weighted Smoothing's accuracy vs attack trade-off:
  test accuracy against the highest attack AUC and the highest TPR@0.1%FPR, one point per sigma
  (joined in sigma order, labelled) and the other defenses (ablations) as separate points.
* ``hamp_sizes``: ``hamp_sizes.png`` (HAMP Fig. 6): the highest TPR@0.1%FPR and TNR@0.1%FNR
  against the training size, one line per defense.
* ``hamp_params``: ``hamp_params.png`` (HAMP Table V as curves): test accuracy and the highest
  TPR@0.1%FPR against gamma and against alpha (log axis).

Other kinds have no figure (an empty dict). ``experiments/results.py --plots`` writes them into
the run directory. matplotlib is required (the ``plots`` extra); the figures use only its
object-oriented API, as :mod:`hampjax.report.plots` does.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from hampjax.report import plots
from hampjax.repro.rundir import RunResults
from hampjax.repro.tables import SWEEP_PARAMETERS

__all__ = ["ws_figures", "sizes_figure", "params_figure", "panels_png", "figure_png"]

_TPR, _TNR, _AUC = "max_tpr@0.1%fpr", "max_tnr@0.1%fnr", "max_auc"


def _pct(value: Any) -> float:
    return float("nan") if value is None else 100.0 * float(value)


def figure_png(fig) -> bytes:
    """A finished matplotlib ``Figure`` (suptitle set) as PNG bytes, laid out tightly."""
    _, canvas_cls = plots.import_matplotlib()
    fig.tight_layout()
    canvas_cls(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def panels_png(panels: Sequence[Mapping[str, Any]], *, title: str) -> bytes:
    """One row of panels; each panel: ``xlabel``, ``ylabel``, ``log_x``, ``series`` =
    ``{name: (xs, ys, point labels or None, joined)}``."""
    figure_cls, _ = plots.import_matplotlib()
    fig = figure_cls(figsize=(5.0 * len(panels), 4.2))
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for name, (xs, ys, labels, joined) in panel["series"].items():
            style = dict(marker="o", linestyle="-" if joined else "none")
            ax.plot(xs, ys, label=name, **style)
            for x, y, text in zip(xs, ys, labels or ()):
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4),
                            fontsize="x-small")
        if panel.get("log_x"):
            ax.set_xscale("log")
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return figure_png(fig)


def _sweep_points(run: RunResults, cell: str, field: str) -> list[tuple[float, Mapping]]:
    """``(swept value, report defense)`` of the cell's defenses swept over ``field``, by value."""
    pts = []
    for name, d in run.reports[cell]["defenses"].items():
        sweep = run.sweep(cell, name)
        if sweep is not None and sweep[0] == field:
            pts.append((float(sweep[1]), d))
    return sorted(pts, key=lambda p: p[0])


def ws_figures(run: RunResults) -> dict[str, bytes]:
    """Weighted Smoothing's trade-off per cell: the sigma sweep (recorded sweep values) joined
    in sigma order, the other defenses (ablations) as separate points labelled by name."""
    out = {}
    for cell, report in run.reports.items():
        sweep = [(v, _pct(d.get("test_acc")), _pct(d.get(_AUC)), _pct(d.get(_TPR)))
                 for v, d in _sweep_points(run, cell, "defense.sigma")]
        ablations = [(name, _pct(d.get("test_acc")), _pct(d.get(_AUC)), _pct(d.get(_TPR)))
                     for name, d in report["defenses"].items() if run.sweep(cell, name) is None]
        panels = []
        for col, label in ((2, "highest attack AUC (%)"), (3, "highest TPR@0.1%FPR (%)")):
            series = {"sigma sweep": ([p[col] for p in sweep], [p[1] for p in sweep],
                                      [f"{p[0]:g}" for p in sweep], True)}
            if ablations:
                series["ablations"] = ([p[col] for p in ablations], [p[1] for p in ablations],
                                       [p[0] for p in ablations], False)
            panels.append(dict(xlabel=label, ylabel="test accuracy (%)", series=series))
        out[f"ws_tradeoff_{cell}.png"] = panels_png(
            panels, title=f"Weighted Smoothing on {cell}: accuracy vs attack")
    return out


def sizes_figure(run: RunResults) -> dict[str, bytes]:
    """HAMP Fig. 6: highest TPR / TNR against each cell's recorded training size."""
    sizes = sorted((int(run.cell_info[cell]["train_size"]), cell) for cell in run.reports
                   if run.cell_info.get(cell, {}).get("train_size") is not None)
    if not sizes:
        return {}
    defenses = list(dict.fromkeys(n for _, cell in sizes for n in run.reports[cell]["defenses"]))
    panels = []
    for key, label in ((_TPR, "highest TPR@0.1%FPR (%)"), (_TNR, "highest TNR@0.1%FNR (%)")):
        series = {}
        for name in defenses:
            pts = [(n, run.reports[cell]["defenses"][name].get(key)) for n, cell in sizes
                   if name in run.reports[cell]["defenses"]]
            series[name] = ([p[0] for p in pts], [_pct(p[1]) for p in pts], None, True)
        panels.append(dict(xlabel="training size", ylabel=label, series=series, log_x=True))
    return {"hamp_sizes.png": panels_png(panels, title="HAMP Fig. 6: training size")}


def params_figure(run: RunResults) -> dict[str, bytes]:
    """HAMP Table V as curves: accuracy and attack rates against the recorded gamma / alpha."""
    panels = []
    for cell in run.reports:
        for field, log_x in (("defense.entropy_threshold", False), ("defense.alpha", True)):
            pts = _sweep_points(run, cell, field)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            series = {"test accuracy": (xs, [_pct(p[1].get("test_acc")) for p in pts], None, True),
                      "highest TPR@0.1%FPR": (xs, [_pct(p[1].get(_TPR)) for p in pts], None, True),
                      "highest TNR@0.1%FNR": (xs, [_pct(p[1].get(_TNR)) for p in pts], None, True)}
            panels.append(dict(xlabel=SWEEP_PARAMETERS[field], ylabel=f"% ({cell})",
                               series=series, log_x=log_x))
    return {"hamp_params.png": panels_png(panels, title="HAMP Table V")} if panels else {}
