"""Tests of the paper numbers (hampjax.repro.paper) and the results command (hampjax.repro.results).

Fixtures are run directories written as files in tmp_path, in the runner's layout.
"""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from hampjax.repro import paper
from hampjax.repro.results import (
    CSV_COLUMNS,
    EXPERIMENT_KINDS,
    RunResults,
    load_run,
    render,
    render_many,
    tables,
)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ENTRY = os.path.join(ROOT, "experiments", "results.py")


# --------------------------------------------------------------------------------------------
# Fixture writers.
# --------------------------------------------------------------------------------------------


def _attack(auc, tpr, tnr, *, tpr_low=False, tnr_low=False):
    return {"auc": auc, "tpr@0.1%fpr": tpr, "tnr@0.1%fnr": tnr,
            "tpr@0.1%fpr/below_resolution": tpr_low, "tnr@0.1%fnr/below_resolution": tnr_low,
            "num_members": 1000, "num_nonmembers": 1000}


def _defense(train_acc, test_acc, attacks):
    """A report.json defense entry with max_<metric> computed the report's way (first on ties)."""
    d = {"train_acc": train_acc, "test_acc": test_acc, "attacks": attacks}
    for metric in ("auc", "tpr@0.1%fpr", "tnr@0.1%fnr"):
        best = max(attacks, key=lambda a: attacks[a][metric])  # max() keeps the first maximum
        d[f"max_{metric}"] = attacks[best][metric]
        d[f"max_{metric}/attack"] = best
    return d


def _write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def _experiment(workdir, kind, cells, name=None, *, config=None, cell_info=None):
    _write(os.path.join(workdir, "experiment.json"), {
        "experiment": kind, "name": name or kind, "config": config or {"quick": False},
        "cells": cells, "data_hashes": {c: "abcdef0123456789" for c in cells},
        "cell_info": cell_info or {}})


def _sweep_info(dataset, **sweeps):
    """cell_info of one cell whose defenses sweep ``{name: (field, value)}``."""
    return {"dataset": dataset, "train_size": None,
            "sweep": {n: {"field": f, "value": v} for n, (f, v) in sweeps.items()}}


def _report(workdir, cell, defenses, stats=None):
    _write(os.path.join(workdir, cell, "report.json"),
           {"format": "hampjax.report/1", "defenses": defenses})
    if stats is not None:
        _write(os.path.join(workdir, cell, "stats.json"), stats)


PURCHASE_DEFENSES = {
    "undefended": _defense(0.9936, 0.8085, {
        "nn": _attack(0.61, 0.0150, 0.0030),
        "loss": _attack(0.60, 0.0010, 0.1100),
        "lira_online": _attack(0.70, 0.0200, 0.1400),
    }),
    "hamp": _defense(0.9100, 0.8120, {
        "nn": _attack(0.51, 0.0040, 0.0010),
        "loss": _attack(0.50, 0.0005, 0.0030, tpr_low=True),
        "lira_online": _attack(0.52, 0.0041, 0.0045),
    }),
}


@pytest.fixture
def main_run(tmp_path):
    workdir = str(tmp_path / "hamp_main")
    _experiment(workdir, "hamp_main", ["purchase100", "digits", "cifar10"])
    _report(workdir, "purchase100", PURCHASE_DEFENSES, stats={
        "undefended": {"entropy_members": 0.40, "entropy_nonmembers": 0.60},
        "hamp": {"entropy_members": 4.40, "entropy_nonmembers": 4.41}})
    _report(workdir, "digits", {
        "undefended": _defense(1.0, 0.9572, {"loss": _attack(0.65, 0.0754, 0.1228)}),
        "hamp": _defense(1.0, 0.9899, {"loss": _attack(0.54, 0.0084, 0.0234, tnr_low=True)}),
    })
    # cifar10: report not written yet.
    return workdir


def _md_row(text, *keys):
    """The cells of the Markdown table row whose leading cells equal ``keys`` (in a section)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and tuple(cells[:len(keys)]) == keys:
            return cells[len(keys):]
    raise AssertionError(f"no row {keys} in:\n{text}")


def _section(text, title_start):
    parts = text.split("\n## ")
    for p in parts:
        if p.startswith(title_start):
            return p
    raise AssertionError(f"no section {title_start!r}")


def _csv(text):
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and list(rows[0]) == list(CSV_COLUMNS)
    return rows


# --------------------------------------------------------------------------------------------
# paper.py
# --------------------------------------------------------------------------------------------


def test_paper_numbers_spot_checks():
    assert paper.hamp_accuracy("purchase100", "hamp") == (91.12, 81.15, 0.30)
    assert paper.hamp_accuracy("texas100", "label_smoothing").test == 56.33
    assert paper.hamp_accuracy("cifar10", "label_smoothing") is None  # N/A in Table I
    assert paper.hamp_accuracy("digits", "hamp") is None
    assert paper.HAMP_ENTROPY["location30"]["hamp"] == (2.789, 2.847, 0.058)
    assert paper.HAMP_ABLATION["1+3"] == (94.58, 81.75, 0.82, 1.23)
    assert paper.HAMP_PARAMS["alpha=0.0001"].test_acc == 82.6
    assert paper.HAMP_PARAMS["gamma=0.8"] == paper.HAMP_PARAMS["alpha=0.01"]
    assert len(paper.HAMP_PARAMS) == 17
    assert paper.HAMP_OVERHEAD["cifar100"] == (16.0, 407.75, 16.34)
    assert paper.RELAXLOSS_POSTER["cifar100_vgg11_bn"].auc_adaptive == 84.2
    assert paper.TRUST_FPR["resnet18"]["scaled"] == 99.8


def test_paper_keys_match_our_names():
    from hampjax.attacks.lira import LIRA_VARIANT_NAMES
    from hampjax.attacks.metric import METRIC_SCORES
    from hampjax.training import PRESETS

    assert set(paper.RELAXLOSS_POSTER) == set(PRESETS["relaxloss"])
    ours = set(METRIC_SCORES) | set(LIRA_VARIANT_NAMES) | {
        "nn", "label_only_augmentation", "label_only_boundary"}
    assert set(paper.HAMP_ATTACK_NAMES.values()) <= ours
    for dataset, rows in paper.HAMP_ATTACK_RATES.items():
        assert dataset in paper.HAMP_DATASETS
        for defense, attacks in rows.items():
            assert tuple(attacks) == tuple(paper.HAMP_ATTACK_NAMES.values())
            assert defense in paper.HAMP_ACCURACY[dataset]


def test_paper_table1_deltas_are_consistent():
    """Table I's delta column equals test acc minus the undefended test acc (to rounding)."""
    for dataset, rows in paper.HAMP_ACCURACY.items():
        base = rows["undefended"].test
        for acc in rows.values():
            assert acc.delta == pytest.approx(acc.test - base, abs=0.011), dataset


def test_paper_entropy_differences_are_consistent():
    # The paper's own rounding: CIFAR100 undefended prints 1.020 - 0.685 as 0.337.
    for rows in paper.HAMP_ENTROPY.values():
        for e in rows.values():
            assert e.difference == pytest.approx(e.nonmembers - e.members, abs=0.0025)


def test_nn_swap_and_max_rates():
    printed = paper.hamp_attack_rates("purchase100", "undefended", "nn", corrected=False)
    assert printed == (14.37, 0.20)
    assert paper.hamp_attack_rates("purchase100", "undefended", "nn") == (0.20, 14.37)
    assert paper.hamp_attack_rates("purchase100", "undefended", "lira_online") == (1.86, 13.19)
    assert paper.hamp_attack_rates("texas100", "hamp", "label_only_augmentation") == (None, None)
    assert paper.hamp_attack_rates("location30", "label_smoothing", "nn") is None
    # Headline as printed (HAMP Table I) vs corrected.
    assert paper.hamp_max_rates("purchase100", "undefended", corrected=False) == (
        14.37, "nn", 13.19, "lira_online")
    assert paper.hamp_max_rates("purchase100", "undefended") == (1.86, "lira_online", 14.37, "nn")
    for dataset, (tpr, tnr) in {"purchase100": (0.40, 0.44), "texas100": (1.20, 0.70),
                                "location30": (1.19, 0.59), "cifar10": (0.92, 0.77),
                                "cifar100": (0.46, 0.47)}.items():  # HAMP Table I
        m = paper.hamp_max_rates(dataset, "hamp", corrected=False)
        assert (m.tpr, m.tnr) == (tpr, tnr)
    # Spec section 4: mean undefended max TPR (printed) 13.48 and TNR 19.89.
    raw = [paper.hamp_max_rates(d, "undefended", corrected=False) for d in paper.HAMP_DATASETS]
    assert sum(m.tpr for m in raw) / 5 == pytest.approx(13.48, abs=0.01)
    assert sum(m.tnr for m in raw) / 5 == pytest.approx(19.89, abs=0.01)


def test_paper_validation():
    with pytest.raises(ValueError, match="dataset must be a string"):
        paper.hamp_accuracy(3, "hamp")
    with pytest.raises(ValueError, match="defense must be a string"):
        paper.hamp_max_rates("purchase100", None)
    with pytest.raises(ValueError, match="attack must be a string"):
        paper.hamp_attack_rates("purchase100", "hamp", 1)
    with pytest.raises(ValueError, match="corrected must be a Python bool"):
        paper.hamp_attack_rates("purchase100", "hamp", "nn", corrected=1)


# --------------------------------------------------------------------------------------------
# load_run / render: hamp_main
# --------------------------------------------------------------------------------------------


def test_load_run_main(main_run):
    run = load_run(main_run)
    assert isinstance(run, RunResults)
    assert run.kind == "hamp_main" and run.cells == ("purchase100", "digits", "cifar10")
    assert set(run.reports) == {"purchase100", "digits"}
    assert run.missing == ("cifar10",)
    assert set(run.stats) == {"purchase100"}


def test_render_main_markdown(main_run):
    text = render(load_run(main_run))
    assert "missing (run not finished): cifar10" in text
    acc = _section(text, "Table I")
    assert _md_row(acc, "purchase100", "hamp") == ["91.00 / 91.12", "81.20 / 81.15",
                                                   "0.35 / 0.30"]
    assert _md_row(acc, "purchase100", "undefended")[2] == "0.00 / 0.00"
    assert _md_row(acc, "digits", "hamp") == ["100.00 / —", "98.99 / —", "3.27 / —"]

    mx = _section(text, "Highest")
    tpr, tnr, auc = _md_row(mx, "purchase100", "undefended")
    assert tpr == "2.00 (lira_online) / 1.86 (lira_online)"   # corrected paper maximum
    assert tnr == "14.00 (lira_online) / 14.37 (nn)"
    assert auc == "70.00 (lira_online) / —"
    assert "purchase100/undefended: TPR 14.37 (nn), TNR 13.19 (lira_online)" in mx
    assert _md_row(mx, "digits", "hamp")[1] == "2.34* (loss) / —"

    per = _section(text, "Table VIII")
    assert _md_row(per, "purchase100", "undefended", "nn") == ["1.50 / 0.20", "0.30 / 14.37"]
    assert _md_row(per, "purchase100", "hamp", "loss") == ["0.05* / 0.09", "0.30 / 0.35"]
    assert _md_row(per, "purchase100", "hamp", "confidence") == ["— / 0.09", "— / 0.35"]
    assert "swapped" in per
    with pytest.raises(AssertionError):  # N/A in the paper and not run: no row
        _md_row(per, "purchase100", "hamp", "label_only_augmentation")

    ent = _section(text, "Table IV")
    assert _md_row(ent, "purchase100", "hamp") == ["4.400 / 4.485", "4.410 / 4.490",
                                                   "0.010 / 0.006"]


def test_render_main_csv(main_run):
    rows = _csv(render(load_run(main_run), fmt="csv"))
    by = {(r["table"], r["cell"], r["defense"], r["attack"], r["column"]): r for r in rows}
    r = by[("accuracy", "purchase100", "hamp", "", "test acc")]
    assert float(r["ours"]) == pytest.approx(81.2) and float(r["paper"]) == 81.15
    r = by[("per_attack", "purchase100", "undefended", "nn", "TNR@0.1%FNR")]
    assert float(r["paper"]) == 14.37 and float(r["ours"]) == pytest.approx(0.3)
    r = by[("per_attack", "purchase100", "hamp", "loss", "TPR@0.1%FPR")]
    assert r["below_resolution"] == "true"
    r = by[("max_rates", "purchase100", "undefended", "", "TNR@0.1%FNR")]
    assert r["ours_attack"] == "lira_online" and r["paper_attack"] == "nn"
    r = by[("accuracy", "digits", "hamp", "", "test acc")]
    assert r["paper"] == ""
    assert [r["cell"] for r in rows if r["table"] == "missing"] == ["cifar10"]
    assert by[("entropy", "purchase100", "hamp", "", "members")]["unit"] == "nats"


def test_entropy_kind_and_no_stats(tmp_path):
    workdir = str(tmp_path / "ent")
    _experiment(workdir, "hamp_entropy", ["purchase100"])
    _report(workdir, "purchase100", PURCHASE_DEFENSES, stats={
        "undefended": {"entropy_members": 0.5, "entropy_nonmembers": 0.7}})
    names = [t.name for t in tables(load_run(workdir))]
    assert names == ["accuracy", "entropy"]
    text = render(load_run(workdir))
    assert _md_row(_section(text, "Table IV"), "purchase100", "undefended") == [
        "0.500 / 0.389", "0.700 / 0.576", "0.200 / 0.187"]
    # hamp_main without stats.json: no entropy table.
    main = str(tmp_path / "main")
    _experiment(main, "hamp_main", ["purchase100"])
    _report(main, "purchase100", PURCHASE_DEFENSES)
    assert [t.name for t in tables(load_run(main))] == ["accuracy", "max_rates", "per_attack",
                                                       "fig1"]


# --------------------------------------------------------------------------------------------
# The other kinds.
# --------------------------------------------------------------------------------------------


def _component_spec(components):
    """A minimal recorded spec of a Table II component set ("none", "1+3", ...)."""
    on = set(components.split("+")) - {"none"}
    if on & {"1", "2"}:
        defense = {"kind": "hamp", "entropy_threshold": 0.8 if "1" in on else 0.0,
                   "alpha": 0.01 if "2" in on else 0.0}
    else:
        defense = {"kind": "cross_entropy"}
    return {"defense": defense, "output": {"kind": "hamp" if "3" in on else "none"}}


def test_ablation_and_params(tmp_path):
    workdir = str(tmp_path / "abl")
    # Defense names are config paths (c1_c2); the rows are labelled from the recorded specs.
    names = {f"c{k.replace('+', '_c')}" if k != "none" else "none": k for k in paper.HAMP_ABLATION}
    config = {"cells": {"purchase100": {"defenses": {
        n: _component_spec(k) for n, k in names.items()}}}}
    _experiment(workdir, "hamp_ablation", ["purchase100"], config=config,
                cell_info={"purchase100": _sweep_info("purchase100")})
    attacks = {"lira_online": _attack(0.55, 0.0050, 0.0060)}
    _report(workdir, "purchase100", {n: _defense(0.95, 0.81, attacks) for n in names})
    text = render(load_run(workdir))
    assert "c1_c2" in names and _md_row(text, "purchase100", "1+2") == [
        "95.00 / 91.12", "81.00 / 81.15", "0.50 (lira_online) / 1.86",
        "0.60 (lira_online) / 1.07", "55.00 (lira_online) / —"]
    assert _md_row(text, "purchase100", "none")[2].endswith("/ 14.37")
    assert _md_row(text, "purchase100", "3")[1] == "81.00 / 80.85"

    workdir = str(tmp_path / "par")
    g, a = "defense.entropy_threshold", "defense.alpha"
    sweeps = {"gamma_0p9": (g, 0.9), "alpha_0p0001": (a, 0.0001), "alpha_0p5": (a, 0.5),
              "gamma_0p35": (g, 0.35)}
    _experiment(workdir, "hamp_params", ["purchase100"],
                cell_info={"purchase100": _sweep_info("purchase100", **sweeps)})
    _report(workdir, "purchase100", {n: _defense(0.9, 0.8, attacks) for n in sweeps})
    text = render(load_run(workdir))
    assert _md_row(text, "purchase100", "alpha=0.0001")[1] == "80.00 / 82.60"
    assert _md_row(text, "purchase100", "gamma=0.9")[1] == "80.00 / 66.70"
    assert _md_row(text, "purchase100", "alpha=0.5")[3] == "0.60 (lira_online) / —"  # lost TNR
    assert _md_row(text, "purchase100", "gamma=0.35")[1] == "80.00 / —"  # not in Table V

    # The values come from the record, not the names: a misleading name changes nothing.
    workdir = str(tmp_path / "par_named")
    _experiment(workdir, "hamp_params", ["purchase100"],
                cell_info={"purchase100": _sweep_info("purchase100", gamma_0p1=(g, 0.9))})
    _report(workdir, "purchase100", {"gamma_0p1": _defense(0.9, 0.8, attacks)})
    assert _md_row(render(load_run(workdir)), "purchase100", "gamma=0.9")[1] == "80.00 / 66.70"

    # The same run on another dataset has no paper numbers.
    workdir = str(tmp_path / "par_digits")
    _experiment(workdir, "hamp_params", ["digits"],
                cell_info={"digits": _sweep_info("digits", gamma_0p9=(g, 0.9))})
    _report(workdir, "digits", {"gamma_0p9": _defense(0.9, 0.8, attacks)})
    assert _md_row(render(load_run(workdir)), "digits", "gamma=0.9")[1] == "80.00 / —"


def test_sizes(tmp_path):
    workdir = str(tmp_path / "sizes")
    _experiment(workdir, "hamp_sizes", ["n=2500", "n=5000", "n=50000"])
    for n, tpr in (("n=2500", 0.30), ("n=5000", 0.10)):
        _report(workdir, n, {
            "undefended": _defense(1.0, 0.6, {"lira_online": _attack(0.8, tpr, 0.2)}),
            "hamp": _defense(0.9, 0.6, {"lira_online": _attack(0.5, 0.01, 0.02)})})
    run = load_run(workdir)
    assert run.missing == ("n=50000",)
    text = render(run)
    assert "no per-size numbers" in text
    sizes = _section(text, "Fig. 6: training-set sizes")
    assert _md_row(sizes, "n=2500", "undefended")[:2] == ["100.00", "60.00"]  # ours only
    mean = _section(text, "Fig. 6: mean")
    assert _md_row(mean, "mean", "undefended") == ["20.00 / 24.70", "20.00 / 22.90"]
    assert _md_row(mean, "mean", "hamp") == ["1.00 / 1.30", "2.00 / 1.50"]
    rows = _csv(render(run, fmt="csv"))
    assert all(r["paper"] == "" for r in rows if r["table"] == "sizes")


def test_overhead(tmp_path):
    workdir = str(tmp_path / "over")
    _experiment(workdir, "hamp_overhead", ["purchase100", "digits", "cifar10"])
    assert load_run(workdir).missing == ("purchase100", "digits", "cifar10")
    _write(os.path.join(workdir, "overhead.json"), {
        "purchase100": {"forward_ms": 0.01, "modify_output_ms": 0.002, "hamp_ms": 0.012,
                        "batch": 1000, "device": "cpu", "memguard_ms": 11.9,
                        "memguard_search_single_ms": 44.0, "memguard_batch": 100},
        "digits": {"forward_ms": 0.005, "modify_output_ms": 0.001, "hamp_ms": 0.006,
                   "batch": 100, "device": "cpu"}})
    run = load_run(workdir)
    assert run.missing == ("cifar10",)
    text = render(run)
    assert _md_row(text, "purchase100") == ["0.0100 / 0.3400", "0.0120 / 0.7400",
                                            "0.0020 / —", "11.9000 / 354.7200", "44.0000 / —"]
    assert _md_row(text, "digits")[0] == "0.0050 / —"
    assert _md_row(text, "digits")[3:] == ["— / —", "— / —"]  # no MemGuard figures
    assert "purchase100: batch 1000 (MemGuard 100), cpu" in text
    rows = _csv(render(run, fmt="csv"))
    r = [r for r in rows if r["cell"] == "purchase100" and r["column"] == "HAMP"][0]
    assert float(r["ours"]) == 0.012 and float(r["paper"]) == 0.74 and r["unit"] == "ms"


def test_relaxloss(tmp_path):
    workdir = str(tmp_path / "rl")
    _experiment(workdir, "relaxloss", ["cifar10_resnet20", "digits", "texas100_fc"])

    def d(acc, auc):
        return _defense(0.9, acc, {"loss": _attack(auc, 0.01, 0.01)})

    for cell in ("cifar10_resnet20", "digits"):
        _report(workdir, cell, {"undefended": d(0.70, 0.85),
                                "relaxloss_nonadaptive": d(0.74, 0.51),
                                "relaxloss_adaptive": d(0.73, 0.57)})
    text = render(load_run(workdir))
    assert _md_row(text, "cifar10_resnet20") == [
        "70.00 / 70.50", "74.00 / 73.80", "73.00 / 73.80", "85.00 (loss) / 87.30",
        "51.00 (loss) / 50.00", "57.00 (loss) / 56.00"]
    assert _md_row(text, "digits")[0] == "70.00 / —"
    assert "missing (run not finished): texas100_fc" in text


def test_ws_sigma(tmp_path):
    workdir = str(tmp_path / "ws")
    _experiment(workdir, "ws_sigma", ["digits"],
                cell_info={"digits": _sweep_info("digits", sigma_0p5=("defense.sigma", 0.5))})
    attacks = {"loss": _attack(0.6, 0.02, 0.03, tnr_low=True)}
    _report(workdir, "digits", {"sigma_0p5": _defense(0.99, 0.95, attacks),
                                "noise_on_logits": _defense(0.99, 0.94, attacks)})
    text = render(load_run(workdir))
    assert _md_row(text, "digits", "noise_on_logits") == [
        "99.00", "94.00", "2.00 (loss)", "3.00* (loss)", "60.00 (loss)"]
    assert _md_row(text, "digits", "sigma=0.5")[1] == "95.00"
    assert " / " not in _section(text, "Weighted")
    rows = _csv(render(load_run(workdir), fmt="csv"))
    assert {r["defense"] for r in rows} == {"sigma=0.5", "noise_on_logits"}


def test_trust_tables(tmp_path):
    workdir = str(tmp_path / "trust")
    _write(os.path.join(workdir, "experiment.json"), {
        "experiment": "trust", "name": "trust", "cells": ["cifar10_resnet18", "digits_fc"],
        "config": {"dataset": "cifar10", "model": "resnet18", "temperature": 10.0},
        "data_hashes": {}})
    fpr = {"test": {"max_score": 0.45, "loss": 0.4}, "scaled_x255": {"max_score": 1.0,
                                                                      "loss": float("nan")}}
    _write(os.path.join(workdir, "cifar10_resnet18", "summary.json"), {
        "standard": {"train_acc": 1.0, "test_acc": 0.8, "ece": 0.1, "oe": 0.05, "mmps": 0.9,
                     "fpr": fpr},
        "temperature": {"train_acc": 1.0, "test_acc": 0.8, "ece": 0.5, "oe": 0.0, "mmps": 0.2,
                        "fpr": fpr}})
    run = load_run(workdir)
    assert run.missing == ("digits_fc",) and list(run.trust) == ["cifar10_resnet18"]
    text = render(run)
    section = _section(text, "Trust: max-score")
    assert _md_row(section, "cifar10_resnet18", "standard", "max_score") == [
        "45.00 / 44.80", "100.00 / 99.80"]
    assert _md_row(section, "cifar10_resnet18", "temperature", "max_score") == [
        "45.00 / —", "100.00 / 100.00"]
    other = _section(text, "Trust: FPR of the other")
    assert _md_row(other, "cifar10_resnet18", "standard", "loss") == ["40.00", "—"]
    calib = _section(text, "Trust: accuracy")
    assert _md_row(calib, "cifar10_resnet18", "temperature") == [
        "100.00", "80.00", "50.00", "0.00", "20.00"]
    rows = _csv(render(run, fmt="csv"))
    assert ("missing", "digits_fc") in {(r["table"], r["cell"]) for r in rows}
    _write(os.path.join(workdir, "digits_fc", "summary.json"), {"standard": {"fpr": 3}})
    with pytest.raises(ValueError, match="summary.json must hold"):
        load_run(workdir)


def test_every_kind_renders_an_empty_run(tmp_path):
    from hampjax.repro.kinds import EXPERIMENT_KINDS as REGISTRY

    assert EXPERIMENT_KINDS is REGISTRY  # One registry, read by the results module.
    for kind in EXPERIMENT_KINDS:
        workdir = str(tmp_path / kind)
        _experiment(workdir, kind, ["purchase100"])
        run = load_run(workdir)
        assert run.missing == ("purchase100",)
        assert "missing (run not finished): purchase100" in render(run)
        _csv(render(run, fmt="csv"))


# --------------------------------------------------------------------------------------------
# render_many, the entry point, validation.
# --------------------------------------------------------------------------------------------


def test_render_many(main_run, tmp_path):
    other = str(tmp_path / "ws")
    _experiment(other, "ws_sigma", ["digits"])
    _report(other, "digits", {"sigma_1": _defense(0.9, 0.9, {"loss": _attack(0.6, 0.1, 0.1)})})
    md = render_many([main_run, other])
    assert md.index("# hamp_main (hamp_main)") < md.index("# ws_sigma (ws_sigma)")
    text = render_many([main_run, other], fmt="csv")
    assert text.count("experiment,kind,table") == 1
    assert {r["experiment"] for r in _csv(text)} == {"hamp_main", "ws_sigma"}


def test_entry_point(main_run, tmp_path):
    out = str(tmp_path / "out.csv")
    proc = subprocess.run([sys.executable, ENTRY, "--fmt=csv", f"--out={out}", main_run],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        assert f.read() == proc.stdout
    assert any(r["table"] == "missing" for r in _csv(proc.stdout))
    proc = subprocess.run([sys.executable, ENTRY, str(tmp_path / "nowhere")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "workdir must be an existing run directory" in proc.stderr


def test_validation_errors(tmp_path, main_run):
    with pytest.raises(ValueError, match="workdir must be an existing run directory"):
        load_run(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="workdir must contain experiment.json"):
        load_run(empty)
    bad = str(tmp_path / "bad")
    _experiment(bad, "hamp_nonsense", [])
    with pytest.raises(ValueError, match="experiment.json 'experiment' must be one of"):
        load_run(bad)
    _write(os.path.join(bad, "experiment.json"), ["not", "an", "object"])
    with pytest.raises(ValueError, match="experiment.json must hold a JSON object"):
        load_run(bad)
    _write(os.path.join(bad, "experiment.json"), {"experiment": "hamp_main", "cells": "abc"})
    with pytest.raises(ValueError, match="'cells' must be a list"):
        load_run(bad)
    _experiment(bad, "hamp_main", ["../escape"])
    with pytest.raises(ValueError, match="'cells' must hold plain directory names"):
        load_run(bad)
    with open(os.path.join(bad, "experiment.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="experiment.json must be valid JSON"):
        load_run(bad)
    _experiment(bad, "hamp_main", ["purchase100"])
    _write(os.path.join(bad, "purchase100", "report.json"), {"format": "x"})
    with pytest.raises(ValueError, match="report.json must hold a 'defenses' object"):
        load_run(bad)
    _write(os.path.join(bad, "purchase100", "report.json"), {"defenses": {}})
    _write(os.path.join(bad, "purchase100", "stats.json"), {"hamp": 4.4})
    with pytest.raises(ValueError, match="stats.json must hold a JSON object"):
        load_run(bad)
    over = str(tmp_path / "over")
    _experiment(over, "hamp_overhead", ["purchase100"])
    for bad_overhead in ([1], {"purchase100": 0.3}):
        _write(os.path.join(over, "overhead.json"), bad_overhead)
        with pytest.raises(ValueError, match="overhead.json must hold a JSON object"):
            load_run(over)

    run = load_run(main_run)
    with pytest.raises(ValueError, match="fmt must be one of 'md', 'csv'"):
        render(run, fmt="html")
    with pytest.raises(ValueError, match="run must be a RunResults"):
        render(main_run)
    with pytest.raises(ValueError, match="run must be a RunResults"):
        tables({"kind": "hamp_main"})
    with pytest.raises(ValueError, match="workdirs must name at least 1"):
        render_many([])
    with pytest.raises(ValueError, match="workdirs must be a sequence"):
        render_many(main_run)
    with pytest.raises(ValueError, match="fmt must be one of"):
        render_many([main_run], fmt="tex")
