"""Figures from run directories: which kinds have them, PNG output, the --plots flag."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hampjax.repro.figures import _sigma, figures
from hampjax.repro.results import load_run

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("matplotlib")


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _defense(acc, auc, tpr, tnr):
    return {"train_acc": 1.0, "test_acc": acc, "max_auc": auc, "max_tpr@0.1%fpr": tpr,
            "max_tnr@0.1%fnr": tnr, "attacks": {}}


def _run(tmp_path, kind, cells):
    workdir = tmp_path / kind
    _write(workdir / "experiment.json", {"experiment": kind, "name": kind, "config": {},
                                         "cells": list(cells), "data_hashes": {}})
    for cell, defenses in cells.items():
        _write(workdir / cell / "report.json", {"defenses": defenses})
    return str(workdir)


def test_sigma_names():
    assert _sigma("sigma=0.01") == (0.01, "")
    assert _sigma("sigma=0.1,noise_on=logits") == (0.1, "noise_on=logits")
    assert _sigma("undefended") is None


def test_figures_per_kind(tmp_path):
    ws = _run(tmp_path, "ws_sigma", {"cifar10": {
        "sigma=0.1": _defense(0.8, 0.6, 0.02, 0.03), "sigma=0": _defense(0.9, 0.7, 0.05, 0.06),
        "sigma=0.1,score=cross_entropy": _defense(0.85, 0.65, 0.03, 0.04)}})
    sizes = _run(tmp_path, "hamp_sizes", {
        "n=5000": {"undefended": _defense(0.8, 0.7, 0.1, 0.2), "hamp": _defense(0.8, 0.5, 0.01, 0.01)},
        "n=2500": {"undefended": _defense(0.7, 0.8, 0.2, 0.3), "hamp": _defense(0.7, 0.5, 0.01, 0.02)}})
    params = _run(tmp_path, "hamp_params", {"purchase100": {
        "gamma=0.8": _defense(0.8, 0.5, 0.004, 0.004), "alpha=0.01": _defense(0.8, 0.5, 0.004, 0.004)}})
    main = _run(tmp_path, "hamp_main", {"digits": {"hamp": _defense(0.9, 0.5, 0.0, 0.0)}})
    for workdir, names in ((ws, ["ws_tradeoff_cifar10.png"]), (sizes, ["hamp_sizes.png"]),
                           (params, ["hamp_params.png"]), (main, [])):
        out = figures(load_run(workdir))
        assert sorted(out) == names
        assert all(png[:4] == b"\x89PNG" for png in out.values())
    with pytest.raises(ValueError, match="run must be a RunResults"):
        figures(ws)


def test_results_entry_point_writes_plots(tmp_path):
    ws = _run(tmp_path, "ws_sigma", {"digits": {"sigma=0.2": _defense(0.9, 0.55, 0.01, 0.02)}})
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "results.py"), ws, "--plots"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sigma=0.2" in out.stdout
    with open(os.path.join(ws, "ws_tradeoff_digits.png"), "rb") as f:
        assert f.read(4) == b"\x89PNG"
