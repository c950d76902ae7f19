"""Figures from run directories: which kinds have them, PNG output, the --plots flag."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hampjax.repro.results import figures, load_run

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("matplotlib")


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _defense(acc, auc, tpr, tnr):
    return {"train_acc": 1.0, "test_acc": acc, "max_auc": auc, "max_tpr@0.1%fpr": tpr,
            "max_tnr@0.1%fnr": tnr, "attacks": {}}


def _run(tmp_path, kind, cells, info=None):
    workdir = tmp_path / kind
    _write(workdir / "experiment.json", {"experiment": kind, "name": kind, "config": {},
                                         "cells": list(cells), "data_hashes": {},
                                         "cell_info": info or {}})
    for cell, defenses in cells.items():
        _write(workdir / cell / "report.json", {"defenses": defenses})
    return str(workdir)


def _info(dataset="digits", train_size=None, **sweeps):
    return {"dataset": dataset, "train_size": train_size,
            "sweep": {n: {"field": f, "value": v} for n, (f, v) in sweeps.items()}}


def test_figures_per_kind(tmp_path):
    s = "defense.sigma"
    ws = _run(tmp_path, "ws_sigma", {"cifar10": {
        "sigma_0p1": _defense(0.8, 0.6, 0.02, 0.03), "sigma_0": _defense(0.9, 0.7, 0.05, 0.06),
        "score_cross_entropy": _defense(0.85, 0.65, 0.03, 0.04)}},
        {"cifar10": _info("cifar10", sigma_0p1=(s, 0.1), sigma_0=(s, 0.0))})
    sizes = _run(tmp_path, "hamp_sizes", {
        "size_5000": {"undefended": _defense(0.8, 0.7, 0.1, 0.2),
                      "hamp": _defense(0.8, 0.5, 0.01, 0.01)},
        "size_2500": {"undefended": _defense(0.7, 0.8, 0.2, 0.3),
                      "hamp": _defense(0.7, 0.5, 0.01, 0.02)}},
        {"size_5000": _info("purchase100", 5000), "size_2500": _info("purchase100", 2500)})
    params = _run(tmp_path, "hamp_params", {"purchase100": {
        "gamma_0p8": _defense(0.8, 0.5, 0.004, 0.004),
        "alpha_0p01": _defense(0.8, 0.5, 0.004, 0.004)}},
        {"purchase100": _info("purchase100", gamma_0p8=("defense.entropy_threshold", 0.8),
                              alpha_0p01=("defense.alpha", 0.01))})
    main = _run(tmp_path, "hamp_main", {"digits": {"hamp": _defense(0.9, 0.5, 0.0, 0.0)}})
    for workdir, names in ((ws, ["ws_tradeoff_cifar10.png"]), (sizes, ["hamp_sizes.png"]),
                           (params, ["hamp_params.png"]), (main, [])):
        out = figures(load_run(workdir))
        assert sorted(out) == names
        assert all(png[:4] == b"\x89PNG" for png in out.values())
    with pytest.raises(ValueError, match="run must be a RunResults"):
        figures(ws)


def test_figures_read_recorded_values_not_names(tmp_path):
    """Cells and defenses with names that say nothing: the recorded values drive the plots;
    without records there is nothing to plot against."""
    sizes = _run(tmp_path, "hamp_sizes", {"small": {"hamp": _defense(0.7, 0.5, 0.01, 0.02)}},
                 {"small": _info("purchase100", 2500)})
    assert list(figures(load_run(sizes))) == ["hamp_sizes.png"]
    bare = _run(tmp_path / "bare", "hamp_sizes",
                {"n=2500": {"hamp": _defense(0.7, 0.5, 0.01, 0.02)}})
    assert figures(load_run(bare)) == {}
    params = _run(tmp_path, "hamp_params", {"digits": {"gamma=0.8": _defense(0.8, 0.5, 0.0, 0.0)}})
    assert figures(load_run(params)) == {}


def test_results_entry_point_writes_plots(tmp_path):
    ws = _run(tmp_path, "ws_sigma", {"digits": {"sigma_0p2": _defense(0.9, 0.55, 0.01, 0.02)}},
              {"digits": _info(sigma_0p2=("defense.sigma", 0.2))})
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "results.py"), ws, "--plots"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sigma=0.2" in out.stdout  # The row label, from the recorded value.
    with open(os.path.join(ws, "ws_tradeoff_digits.png"), "rb") as f:
        assert f.read(4) == b"\x89PNG"


def test_hamp_fig1_summary_averages_over_cells(tmp_path):
    """Fig. 1: each defense's highest rates and accuracy delta averaged over the cells where
    it ran; the paper's averaged over the same datasets (printed Table VIII maxima)."""
    from hampjax.repro import paper
    from hampjax.repro.summary import fig1_points, fig1_table

    main = _run(tmp_path, "hamp_main", {
        "purchase100": {"undefended": _defense(0.80, 0.7, 0.10, 0.20),
                        "hamp": _defense(0.78, 0.5, 0.01, 0.02)},
        "texas100": {"undefended": _defense(0.50, 0.7, 0.30, 0.40),
                     "hamp": _defense(0.52, 0.5, 0.03, 0.04)},
        "digits": {"undefended": _defense(0.90, 0.7, 0.05, 0.06)}},
        {c: _info(c) for c in ("purchase100", "texas100", "digits")})
    run = load_run(main)
    points = fig1_points(run)
    assert list(points) == ["undefended", "hamp"]
    hamp = points["hamp"]
    assert hamp["cells"] == ["purchase100", "texas100"]
    assert hamp["ours"]["tpr"] == pytest.approx((1.0 + 3.0) / 2)
    assert hamp["ours"]["tnr"] == pytest.approx((2.0 + 4.0) / 2)
    assert hamp["ours"]["acc_delta"] == pytest.approx(((78 - 80) + (52 - 50)) / 2)
    expect = [paper.hamp_max_rates(d, "hamp", corrected=False) for d in ("purchase100", "texas100")]
    assert hamp["paper"]["tpr"] == pytest.approx((expect[0].tpr + expect[1].tpr) / 2)
    deltas = [paper.hamp_accuracy(d, "hamp").delta for d in ("purchase100", "texas100")]
    assert hamp["paper"]["acc_delta"] == pytest.approx(sum(deltas) / 2)
    # digits has no paper numbers: the undefended paper mean covers the two paper datasets.
    assert points["undefended"]["paper_datasets"] == ["purchase100", "texas100"]
    assert points["undefended"]["ours"]["acc_delta"] == 0.0
    table = fig1_table(run)
    assert [r[0] for r in table.rows] == [("undefended",), ("hamp",)]
    out = figures(run)
    assert list(out) == ["hamp_fig1.png"] and out["hamp_fig1.png"][:4] == b"\x89PNG"
    from hampjax.repro.results import tables
    assert "fig1" in [t.name for t in tables(run)]
