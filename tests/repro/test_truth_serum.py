"""The Truth-Serum poisoning kind (config checks, its table with the paper's numbers) and the
architecture sweep's table; their quick runs are in tests/repro/test_configs.py."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

from hampjax.repro import run_experiment, tables, truth_serum
from hampjax.repro.kinds import EXPERIMENT_KINDS
from hampjax.repro.results import load_run, render

ROOT = Path(__file__).resolve().parents[2]


def load_config(name, arg="quick"):
    spec = importlib.util.spec_from_file_location(
        f"config_{name}", ROOT / "experiments" / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _defense(train_acc, test_acc, attacks):
    d = {"train_acc": train_acc, "test_acc": test_acc, "attacks": attacks}
    for metric in ("auc", "tpr@0.1%fpr", "tnr@0.1%fnr"):
        best = max(attacks, key=lambda a: attacks[a][metric])
        d[f"max_{metric}"], d[f"max_{metric}/attack"] = attacks[best][metric], best
    return d


def _rates(auc, tpr, tnr):
    return {"auc": auc, "tpr@0.1%fpr": tpr, "tnr@0.1%fnr": tnr,
            "tpr@0.1%fpr/below_resolution": False, "tnr@0.1%fnr/below_resolution": False}


def _run(workdir, kind, cells, config, reports):
    _write(os.path.join(workdir, "experiment.json"), {
        "experiment": kind, "name": kind, "config": config, "cells": list(cells),
        "data_hashes": {c: "abcdef0123456789" for c in cells},
        "cell_info": {c: {"dataset": d, "train_size": None, "sweep": {}} for c, d in cells.items()}})
    for cell, defenses in reports.items():
        _write(os.path.join(workdir, cell, "report.json"),
               {"format": "hampjax.report/1", "defenses": defenses})


def test_kinds_registered_and_attack_name_shared():
    assert EXPERIMENT_KINDS["truth_serum"].run is truth_serum.run_truth_serum
    assert EXPERIMENT_KINDS["hamp_archs"].tables is tables.archs_tables
    assert tables._POISONING_ATTACK == truth_serum.ATTACK


def test_full_configs_match_the_paper():
    c = load_config("truth_serum", None)
    assert (c.poison.num_targets, c.poison.replicas, c.num_models) == (250, 8, 128)
    assert list(c.cells) == ["cifar10"] and list(c.cells.cifar10.defenses) == ["undefended", "hamp"]
    assert c.cells.cifar10.defenses.hamp.output.kind == "hamp"
    a = load_config("hamp_archs", None)
    assert [a.cells[k].model for k in a.cells] == ["resnet18", "mobilenetv2", "shufflenetv2"]
    assert all(a.cells[k].dataset == "cifar10" for k in a.cells)
    assert list(load_config("hamp_archs", "mobilenetv2").cells) == ["mobilenetv2"]
    with pytest.raises(ValueError, match="not an architecture"):
        load_config("hamp_archs", "vgg")


def test_truth_serum_config_checks(tmp_path):
    bad = load_config("truth_serum")
    bad.cells.digits.non_adaptive_shadows.hamp = "undefended"
    with pytest.raises(ValueError, match="non_adaptive_shadows must be empty"):
        run_experiment(bad, str(tmp_path / "a"))
    bad = load_config("truth_serum")
    bad.poison.replicas = 0
    with pytest.raises(ValueError, match="config.poison.replicas"):
        run_experiment(bad, str(tmp_path / "b"))
    assert not os.listdir(tmp_path)


def test_truth_serum_table_has_the_paper_numbers(tmp_path):
    a = truth_serum.ATTACK
    _run(str(tmp_path), "truth_serum", {"cifar10": "cifar10"}, {}, {"cifar10": {
        "undefended": _defense(0.99, 0.86, {a: _rates(0.80, 0.50, 0.20)}),
        "hamp": _defense(0.95, 0.855, {a: _rates(0.51, 0.004, 0.006)})}})
    text = render(load_run(str(tmp_path)))
    assert "| cifar10 | undefended | 99.00 / — | 86.00 / — | 0.00 / — | 50.00 / 52.44 | 20.00 / 24.52 |" in text
    assert "| cifar10 | hamp | 95.00 / — | 85.50 / — | -0.50 / -0.60 | 0.40 / 0.34 | 0.60 / 0.71 |" in text
    assert "8.23 / 10.15" in text


def test_archs_table_rows_per_architecture(tmp_path):
    reports = {arch: {"undefended": _defense(0.99, 0.8, {"loss": _rates(0.6, 0.01, 0.02)}),
                      "hamp": _defense(0.95, 0.8, {"loss": _rates(0.5, 0.001, 0.002)})}
               for arch in ("resnet18", "mobilenetv2")}
    config = {"cells": {a: {"model": a} for a in reports}}
    _run(str(tmp_path), "hamp_archs", {a: "cifar10" for a in reports}, config, reports)
    text = render(load_run(str(tmp_path)))
    for arch in reports:
        assert f"| {arch} | undefended | 99.00 | 80.00 | 1.00 (loss)" in text
    assert "not transcribed" in text


def test_table_viii_boundary_rows_and_notes(tmp_path):
    attacks = {"loss": _rates(0.6, 0.01, 0.02), "label_only_boundary": _rates(0.55, 0.0, 0.3),
               "label_only_noise": _rates(0.52, 0.0, 0.01)}
    reports = {"purchase100": {"undefended": _defense(0.99, 0.8, attacks)},
               "cifar10": {"undefended": _defense(0.99, 0.8, attacks)}}
    config = {"attacks": {"boundary_samples": 100, "boundary_attack": "auto"}}
    _run(str(tmp_path), "hamp_main", {c: c for c in reports}, config, reports)
    text = render(load_run(str(tmp_path)))
    assert "on 100 evaluated members + 100 non-members" in text
    # Tabular: the paper's Boundary column (noise robustness) sits next to label_only_noise.
    assert "| purchase100 | undefended | label_only_boundary | 0.00 / — |" in text
    assert "| purchase100 | undefended | label_only_noise | 0.00 / " in text
    assert "| purchase100 | undefended | label_only_noise | 0.00 / — |" not in text
    assert "| cifar10 | undefended | label_only_boundary | 0.00 / — |" not in text
