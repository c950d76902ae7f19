"""Tables and figures of the DP-SGD experiments: HAMP Fig. 5's clip x noise grid, the Weighted
Smoothing slides' trade-off against DP-SGD, and the (eps, delta) of every DP-SGD defense.

Each DP-SGD defense's epsilon is the one its evaluation recorded (``stats.json``:
``dp_epsilon`` and the other ``dp_*`` entries of :func:`hampjax.defenses.privacy_stats`,
computed from the recorded recipe spec and member count), never recomputed here. Grid
coordinates come from the recorded specs (``privacy.noise_multiplier``, ``privacy.clip_norm``),
never from defense names.

* ``hamp_dp_grid``: :func:`dp_grid_tables` (accuracy, highest rates and eps per grid cell, next
  to the paper's eps and stated anchors) and :func:`dp_grid_figure` (``dp_grid_<cell>.png``:
  accuracy delta and highest TPR / TNR as heatmaps over clip norm x noise multiplier, each
  cell annotated with its eps).
* ``ws_dp_tradeoff``: :func:`tradeoff_tables` and :func:`tradeoff_figure`
  (``ws_dp_tradeoff_<cell>.png``: test accuracy against the highest attack AUC and TPR, one
  curve for Weighted Smoothing over sigma and one for DP-SGD over eps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from hampjax.report import plots
from hampjax.repro import paper
from hampjax.repro.cells import spec_value
from hampjax.repro.figures import figure_png, panels_png
from hampjax.repro.rundir import RunResults
from hampjax.repro.tables import (AUC, FLAG_NOTE, TNR, TPR, Entry, Table, accuracy_percent,
                                  max_entry, percent)

__all__ = ["dp_point", "privacy_table", "with_privacy", "dp_grid_tables", "dp_grid_figure",
           "tradeoff_tables", "tradeoff_figure"]


def dp_point(run: RunResults, cell: str, name: str) -> dict[str, Any] | None:
    """A DP-SGD defense's recorded settings and epsilon, ``None`` for other defenses.

    Returns:
      ``{"noise_multiplier", "clip_norm", "sampling", "epsilon", "epsilon_improved",
      "epsilon_pld", "delta"}``; an epsilon is ``math.inf`` where the evaluation recorded none
      (noise multiplier 0, or a value the accountant does not compute).
    """
    spec = run.defense_spec(cell, name)
    if not spec or (spec.get("privacy") or {}).get("kind", "none") == "none":
        return None
    stats = run.stats.get(cell, {}).get(name, {})
    eps = lambda key: float(stats[key]) if stats.get(key) is not None else math.inf
    return {"noise_multiplier": float(spec_value(spec, "privacy.noise_multiplier")),
            "clip_norm": float(spec_value(spec, "privacy.clip_norm")),
            "sampling": spec_value(spec, "privacy.sampling"),
            "epsilon": eps("dp_epsilon"), "epsilon_improved": eps("dp_epsilon_rdp_improved"),
            "epsilon_pld": eps("dp_epsilon_pld"),
            "delta": float(spec_value(spec, "privacy.delta"))}


def _eps(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


def privacy_table(run: RunResults) -> Table | None:
    """(eps, delta) of every DP-SGD defense of the run, ours / the paper's where it states one
    (HAMP App. A: the classic RDP conversion; Opacus's improved conversion alongside)."""
    rows = []
    for cell in run.reports:
        for name in run.reports[cell]["defenses"]:
            point = dp_point(run, cell, name)
            if point is None:
                continue
            dataset = run.dataset(cell)
            ref = paper.HAMP_DP_SGD.get(dataset)
            matches = ref is not None and (ref["noise_multiplier"], ref["clip_norm"]) == (
                point["noise_multiplier"], point["clip_norm"])
            rows.append(((cell, name), (
                Entry(point["noise_multiplier"]), Entry(point["clip_norm"]),
                Entry(_eps(point["epsilon"]), ref["eps"] if matches else None),
                Entry(_eps(point["epsilon_improved"]), ref["eps_improved"] if matches else None),
                Entry(_eps(point["epsilon_pld"])))))
    if not rows:
        return None
    return Table("dp_epsilon", "DP-SGD privacy: (eps, delta = 1e-5) of each DP-SGD defense, "
                 "ours / paper", ("cell", "defense"),
                 ("noise multiplier", "clip norm", "eps (classic RDP)", "eps (improved RDP)",
                  "eps (PLD)"), tuple(rows), unit="", notes=(
                     "eps from the recorded recipe and member count (hampjax.defenses."
                     "privacy_stats; Poisson sampling at q = 1/ceil(N/B) as Opacus's "
                     "make_private, shuffled batches at q = B/N). The paper's 'eps = 4' is the "
                     "classic RDP conversion (HAMP App. A); '—' where infinite (sigma 0) or not "
                     "computed.",))


def with_privacy(builder: Callable[[RunResults], list[Table]]
                 ) -> Callable[[RunResults], list[Table]]:
    """A kind's table builder followed by :func:`privacy_table` (where the run has DP-SGD
    defenses)."""

    def tables(run: RunResults) -> list[Table]:
        eps = privacy_table(run)
        return builder(run) + ([eps] if eps is not None else [])

    tables.__name__ = builder.__name__
    tables.__doc__ = builder.__doc__
    return tables


def _grid(run: RunResults, cell: str) -> dict[tuple[float, float], tuple[str, dict]]:
    out = {}
    for name in run.reports[cell]["defenses"]:
        point = dp_point(run, cell, name)
        if point is not None:
            out[(point["noise_multiplier"], point["clip_norm"])] = (name, point)
    return out


def dp_grid_tables(run: RunResults) -> list[Table]:
    """HAMP Fig. 5: one row per (noise multiplier, clip norm) cell of the grid."""
    rows, eps_rows = [], []
    for cell, report in run.reports.items():
        defenses = report["defenses"]
        base = accuracy_percent(defenses.get("undefended"), "test_acc")
        ours = run.dataset(cell) == paper.HAMP_DP_SWEEP["dataset"]  # the paper's numbers apply
        ref = paper.HAMP_DP_SWEEP["undefended"]
        rows.append(((cell, "undefended"), (
            Entry(base), Entry(None if base is None else 0.0),
            max_entry(defenses.get("undefended"), TPR, ref.tpr if ours else None),
            max_entry(defenses.get("undefended"), TNR, ref.tnr if ours else None),
            max_entry(defenses.get("undefended"), AUC))))
        for (sigma, clip), (name, point) in sorted(_grid(run, cell).items()):
            d = defenses[name]
            test = accuracy_percent(d, "test_acc")
            label = f"sigma={sigma:g}, C={clip:g}"
            rows.append(((cell, label), (
                Entry(test), Entry(None if base is None or test is None else test - base),
                max_entry(d, TPR), max_entry(d, TNR), max_entry(d, AUC))))
            paper_eps = paper.HAMP_DP_SWEEP["eps"].get(sigma) if ours else None
            eps_rows.append(((cell, label), (Entry(_eps(point["epsilon"]), _eps(paper_eps)),
                                             Entry(_eps(point["epsilon_pld"])))))
    anchors = "; ".join(
        f"{', '.join(f'{k}={v:g}' for k, v in setting.items())}: TPR {r.tpr:.2f}, TNR "
        f"{r.tnr:.2f}, accuracy loss {loss} points"
        for setting, r, loss in paper.HAMP_DP_SWEEP["points"])
    return [
        Table("dp_grid", "HAMP Fig. 5: DP-SGD's clip norm x noise multiplier grid, accuracy and "
              "highest attack rates (%), ours / paper", ("cell", "defense"),
              ("test acc", "acc delta", "max TPR@0.1%FPR", "max TNR@0.1%FNR", "max AUC"),
              tuple(rows), notes=(
                  "Acc delta: test accuracy minus the undefended model's (points).",
                  "The paper draws the grid as a figure; its text states only these points "
                  f"(Purchase100, undefended TPR / TNR 14.37 / 14.62): {anchors}.",
                  FLAG_NOTE)),
        Table("dp_grid_epsilon", "HAMP Fig. 5: eps (delta = 1e-5) of each grid cell, ours / "
              "paper", ("cell", "defense"), ("eps (classic RDP)", "eps (PLD)"),
              tuple(eps_rows), unit="", notes=(
                  "The paper's eps per noise multiplier (HAMP Sec. V): 0.1 -> 12069.1 (only "
                  "with RDP orders near 1), 0.5 -> 62.5, 0.9 -> 10.9, 0 -> infinite ('—').",)),
    ]


def dp_grid_figure(run: RunResults) -> dict[str, bytes]:
    """``dp_grid_<cell>.png``: accuracy delta, highest TPR and highest TNR over the grid."""
    figure_cls, _ = plots.import_matplotlib()
    out = {}
    for cell, report in run.reports.items():
        grid = _grid(run, cell)
        if not grid:
            continue
        defenses = report["defenses"]
        base = accuracy_percent(defenses.get("undefended"), "test_acc")
        sigmas = sorted({s for s, _ in grid})
        clips = sorted({c for _, c in grid})
        panels = (("test accuracy delta (points)", lambda d: None if base is None else
                   (accuracy_percent(d, "test_acc") or 0.0) - base),
                  ("max TPR@0.1%FPR (%)", lambda d: percent(d.get(f"max_{TPR}"))),
                  ("max TNR@0.1%FNR (%)", lambda d: percent(d.get(f"max_{TNR}"))))
        fig = figure_cls(figsize=(5.0 * len(panels), 4.2))
        for i, (title, value) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            z = [[float("nan")] * len(clips) for _ in sigmas]
            for (s, c), (name, point) in grid.items():
                v = value(defenses[name])
                z[sigmas.index(s)][clips.index(c)] = float("nan") if v is None else v
            image = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis")
            fig.colorbar(image, ax=ax)
            for (s, c), (name, point) in grid.items():
                eps = point["epsilon"]
                ax.text(clips.index(c), sigmas.index(s),
                        "eps=inf" if math.isinf(eps) else f"eps={eps:.3g}", ha="center",
                        va="center", fontsize="x-small", color="white")
            ax.set_xticks(range(len(clips)), [f"{c:g}" for c in clips])
            ax.set_yticks(range(len(sigmas)), [f"{s:g}" for s in sigmas])
            ax.set_xlabel("clip norm C")
            ax.set_ylabel("noise multiplier sigma")
            ax.set_title(title)
        fig.suptitle(f"DP-SGD grid ({cell}; HAMP Fig. 5)")
        out[f"dp_grid_{cell}.png"] = figure_png(fig)
    return out


def _tradeoff_points(run: RunResults, cell: str) -> dict[str, list[tuple[float, str, Mapping]]]:
    """``{"weighted_smoothing": [(sigma, label, report)], "dp_sgd": [(eps, label, report)],
    "other": [...]}`` from the recorded specs."""
    series: dict[str, list] = {"weighted_smoothing": [], "dp_sgd": [], "other": []}
    for name, d in run.reports[cell]["defenses"].items():
        spec = run.defense_spec(cell, name) or {}
        point = dp_point(run, cell, name)
        if point is not None:
            eps = point["epsilon"]
            series["dp_sgd"].append((eps, "eps=inf" if math.isinf(eps) else f"eps={eps:.3g}",
                                     d))
        elif (spec.get("defense") or {}).get("kind") == "weighted_smoothing":
            sigma = float(spec_value(spec, "defense.sigma"))
            series["weighted_smoothing"].append((sigma, f"sigma={sigma:g}", d))
        else:
            series["other"].append((0.0, name, d))
    for points in series.values():
        points.sort(key=lambda p: p[0])
    return series


def tradeoff_tables(run: RunResults) -> list[Table]:
    """The trade-off's points: accuracy and highest rates per sigma (WS) and per eps (DP)."""
    rows = []
    for cell in run.reports:
        for kind, points in _tradeoff_points(run, cell).items():
            for _, label, d in points:
                rows.append(((cell, label if kind == "other" else f"{kind} {label}"), (
                    Entry(accuracy_percent(d, "train_acc")), Entry(accuracy_percent(d, "test_acc")),
                    max_entry(d, TPR), max_entry(d, TNR), max_entry(d, AUC))))
    return [Table("ws_dp_tradeoff", "Weighted Smoothing over sigma vs DP-SGD over eps: accuracy "
                  "and highest attack rates (%), ours only", ("cell", "defense"),
                  ("train acc", "test acc", "max TPR@0.1%FPR", "max TNR@0.1%FNR", "max AUC"),
                  tuple(rows), has_paper=False, notes=(
                      "The Weighted Smoothing slides show this trade-off as a curve without "
                      "numbers or DP-SGD settings. Both defenses train the same model on the "
                      "same split; eps at delta 1e-5 (classic RDP).", FLAG_NOTE))]


def tradeoff_figure(run: RunResults) -> dict[str, bytes]:
    """``ws_dp_tradeoff_<cell>.png``: test accuracy vs the highest AUC and TPR@0.1%FPR."""
    names = {"weighted_smoothing": "Weighted Smoothing (sigma)", "dp_sgd": "DP-SGD (eps)",
             "other": "other"}
    nan = lambda v: float("nan") if v is None else v
    out = {}
    for cell in run.reports:
        series = _tradeoff_points(run, cell)
        panels = [{"xlabel": label, "ylabel": "test accuracy (%)", "series": {
            names[kind]: ([nan(percent(d.get(f"max_{metric}"))) for _, _, d in points],
                          [nan(accuracy_percent(d, "test_acc")) for _, _, d in points],
                          [text for _, text, _ in points], kind != "other")
            for kind, points in series.items()}}
            for metric, label in ((AUC, "max attack AUC (%)"), (TPR, "max TPR@0.1%FPR (%)"))]
        out[f"ws_dp_tradeoff_{cell}.png"] = panels_png(
            panels, title=f"Privacy-utility trade-off ({cell}): Weighted Smoothing vs DP-SGD")
    return out
