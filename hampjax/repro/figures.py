"""Figures of the experiments that the papers show as figures, from run directories.

:func:`figures` returns ``{file name: PNG bytes}`` for a run (see
:func:`hampjax.repro.results.load_run`):

* ``ws_sigma``: ``ws_tradeoff_<cell>.png``, Weighted Smoothing's accuracy vs attack trade-off:
  test accuracy against the highest attack AUC and the highest TPR@0.1%FPR, one point per sigma
  (joined in sigma order, labelled) and the ablations as separate points.
* ``hamp_sizes``: ``hamp_sizes.png`` (HAMP Fig. 6): the highest TPR@0.1%FPR and TNR@0.1%FNR
  against the training size, one line per defense.
* ``hamp_params``: ``hamp_params.png`` (HAMP Table V as curves): test accuracy and the highest
  TPR@0.1%FPR against gamma and against alpha (log axis).

Other kinds have no figure (an empty dict). ``experiments/results.py --plots`` writes them into
the run directory. matplotlib is required (the ``plots`` extra); the figures use only its
object-oriented API, as :mod:`hampjax.report.plots` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from hampjax.repro.results import RunResults
from hampjax.report import plots as _plots

__all__ = ["figures"]

_TPR, _TNR, _AUC = "max_tpr@0.1%fpr", "max_tnr@0.1%fnr", "max_auc"


def _pct(value: Any) -> float:
    return float("nan") if value is None else 100.0 * float(value)


def _panels_png(panels: Sequence[Mapping[str, Any]], *, title: str) -> bytes:
    """One row of panels; each panel: ``xlabel``, ``ylabel``, ``log_x``, ``series`` =
    ``{name: (xs, ys, point labels or None, joined)}``."""
    figure_cls, canvas_cls = _plots._import_matplotlib()
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
    fig.tight_layout()
    return _plots._png_bytes(fig, canvas_cls)


def _sigma(name: str) -> tuple[float, str] | None:
    m = re.fullmatch(r"sigma=([^,]+)(,.*)?", name)
    return None if m is None else (float(m.group(1)), (m.group(2) or "")[1:])


def _ws_figures(run: RunResults) -> dict[str, bytes]:
    out = {}
    for cell, report in run.reports.items():
        sweep, ablations = [], []
        for name, d in report["defenses"].items():
            parsed = _sigma(name)
            if parsed is None:
                continue
            point = (parsed[0], parsed[1], _pct(d.get("test_acc")), _pct(d.get(_AUC)),
                     _pct(d.get(_TPR)))
            (ablations if parsed[1] else sweep).append(point)
        sweep.sort()
        panels = []
        for col, label in ((3, "highest attack AUC (%)"), (4, "highest TPR@0.1%FPR (%)")):
            series = {"sigma sweep": ([p[col] for p in sweep], [p[2] for p in sweep],
                                      [f"{p[0]:g}" for p in sweep], True)}
            if ablations:
                series["ablations"] = ([p[col] for p in ablations], [p[2] for p in ablations],
                                       [f"{p[0]:g} {p[1]}" for p in ablations], False)
            panels.append(dict(xlabel=label, ylabel="test accuracy (%)", series=series))
        out[f"ws_tradeoff_{cell}.png"] = _panels_png(
            panels, title=f"Weighted Smoothing on {cell}: accuracy vs attack")
    return out


def _sizes_figure(run: RunResults) -> dict[str, bytes]:
    sizes = sorted((int(cell.split("=", 1)[1]), cell) for cell in run.reports
                   if re.fullmatch(r"n=\d+", cell))
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
    return {"hamp_sizes.png": _panels_png(panels, title="HAMP Fig. 6: training size")}


def _params_figure(run: RunResults) -> dict[str, bytes]:
    panels = []
    for cell, report in run.reports.items():
        for param, log_x in (("gamma", False), ("alpha", True)):
            pts = sorted((float(name.split("=", 1)[1]), d) for name, d in report["defenses"].items()
                         if name.startswith(f"{param}="))
            if not pts:
                continue
            xs = [p[0] for p in pts]
            series = {"test accuracy": (xs, [_pct(p[1].get("test_acc")) for p in pts], None, True),
                      "highest TPR@0.1%FPR": (xs, [_pct(p[1].get(_TPR)) for p in pts], None, True),
                      "highest TNR@0.1%FNR": (xs, [_pct(p[1].get(_TNR)) for p in pts], None, True)}
            panels.append(dict(xlabel=param, ylabel=f"% ({cell})", series=series, log_x=log_x))
    return {"hamp_params.png": _panels_png(panels, title="HAMP Table V")} if panels else {}


_FIGURES = {"ws_sigma": _ws_figures, "hamp_sizes": _sizes_figure, "hamp_params": _params_figure}


def figures(run: RunResults) -> dict[str, bytes]:
    """The run's figures as ``{file name: PNG bytes}`` (empty for kinds without figures).

    Args:
      run: from :func:`hampjax.repro.results.load_run`.

    Returns:
      ``{file name: PNG bytes}``.

    Raises:
      ValueError: if ``run`` is not a ``RunResults``.
      ImportError: if a figure is due and matplotlib is not installed.
    """
    if not isinstance(run, RunResults):
        raise ValueError(f"run must be a RunResults (from load_run), got {type(run).__name__}")
    builder = _FIGURES.get(run.kind)
    return builder(run) if builder is not None else {}
