"""Tests for hampjax.report.report / tables / plots / rebuild: schema, values, files, rebuild."""

import functools
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hampjax.metrics.intervals import bootstrap_interval
from hampjax.metrics.roc import auc, balanced_accuracy, tnr_at_fnr, tpr_at_fpr
from hampjax.report import plots
from hampjax.report.rebuild import main as rebuild_main
from hampjax.report.report import (
    AttackScores,
    DefenseResult,
    Evaluation,
    build_report,
    collect_versions,
    config_hash,
    load_evaluation,
    rebuild,
    write_report,
)
from hampjax.report.tables import format_table, markdown_document

RATE_KEYS = ["tpr@0%fpr", "tpr@0.001%fpr", "tpr@0.01%fpr", "tpr@0.1%fpr", "tpr@1%fpr", "tnr@0.1%fnr"]
METRIC_KEYS = ["auc", "balanced_accuracy", "attacker_advantage"] + RATE_KEYS


def _attack(rng, num_members, num_nonmembers, shift):
    y = np.concatenate([np.ones(num_members, bool), np.zeros(num_nonmembers, bool)])
    return rng.normal(size=y.size) + shift * y, y


def _evaluation(n=60, *, seed=0, keep=True, versions=None):
    rng = np.random.default_rng(seed)
    defenses = {
        "none": DefenseResult(1.0, 0.75, {"lira": _attack(rng, n, n, 2.0), "loss": _attack(rng, n, n, 0.5)}),
        "hamp": DefenseResult(0.9, 0.74, {"lira": _attack(rng, n, n, 0.2), "loss": _attack(rng, n, n, 0.6)}),
    }
    return Evaluation(
        defenses=defenses,
        num_models=4,
        num_queries=2,
        seeds={"keep": 0, "train": 1},
        config={"lr": 0.1, "widths": (8, 8), "name": "quick"},
        timings={"train": 3.25, "attack": 0.5},
        keep=(rng.random((4, 2 * n)) < 0.5) if keep else None,
        versions=versions,
    )


# ------------------------------------------------------------------------------------------
# Slow, obviously-correct references.
# ------------------------------------------------------------------------------------------


def _ref_auc(s, y):
    pos, neg = s[y], s[~y]
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def _ref_points(s, y):
    pts = [(0.0, 0.0)]
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        pts.append((np.mean(pred[~y]), np.mean(pred[y])))
    return pts


def _ref_tpr(s, y, t):
    ok = [tpr for fpr, tpr in _ref_points(s, y) if (fpr < t if t > 0 else fpr <= 0)]
    return max(ok) if ok else 0.0


def _ref_tnr(s, y, t):
    ok = [1 - fpr for fpr, tpr in _ref_points(s, y) if 1 - tpr < t]
    return max(ok) if ok else 0.0


# ------------------------------------------------------------------------------------------
# Schema and values.
# ------------------------------------------------------------------------------------------


def test_schema_types_and_required_keys():
    ev = _evaluation()
    report = build_report(ev, bootstrap_resamples=20, seed=3)
    assert report["format"] == "hampjax.report/1"
    assert list(report["defenses"]) == ["none", "hamp"]
    for d_name, entry in report["defenses"].items():
        assert isinstance(entry["train_acc"], float) and isinstance(entry["test_acc"], float)
        assert list(entry["attacks"]) == ["lira", "loss"]
        for a_name, s in entry["attacks"].items():
            for k in METRIC_KEYS:
                assert isinstance(s[k], float), k
                assert 0.0 <= s[k] <= 1.0
            for k in RATE_KEYS:
                assert isinstance(s[f"{k}/below_resolution"], bool)
            assert s["num_members"] == 60 and s["num_nonmembers"] == 60
            assert isinstance(s["num_members"], int)
            assert s["reading"] == "strict"
            assert set(s["intervals"]) == set(METRIC_KEYS)
            for k in ("auc", "tpr@0.1%fpr"):
                iv = s["intervals"][k]
                assert set(iv) == {"estimate", "low", "high"}
                assert iv["estimate"] == s[k] and iv["low"] <= iv["high"]
        for k in METRIC_KEYS:
            assert isinstance(entry[f"max_{k}"], float)
            assert entry[f"max_{k}/attack"] in entry["attacks"]
        # The keys a later demo reads.
        for k in ("max_tpr@0.1%fpr", "max_tnr@0.1%fnr"):
            assert k in entry
    run = report["run"]
    assert run["num_models"] == 4 and run["num_queries"] == 2
    assert run["seeds"] == {"keep": 0, "train": 1}
    assert run["config"] == {"lr": 0.1, "widths": [8, 8], "name": "quick"}
    canonical = json.dumps({"lr": 0.1, "name": "quick", "widths": [8, 8]}, separators=(",", ":"))
    assert run["config_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert run["timings"] == {"train": 3.25, "attack": 0.5}
    assert set(run["versions"]) >= {"jax", "flax", "optax", "numpy", "hampjax", "python"}
    settings = report["settings"]
    assert settings["fprs"] == [0.0, 1e-5, 1e-4, 1e-3, 1e-2] and settings["fnrs"] == [1e-3]
    assert settings["bootstrap"] == {"resamples": 20, "seed": 3, "confidence": 0.95, "stratified": True}
    json.dumps(report, allow_nan=False)  # JSON-ready


def test_values_match_slow_reference_and_max_over_attacks():
    ev = _evaluation(n=40)
    report = build_report(ev, bootstrap_resamples=0, seed=0)
    for d_name, result in ev.defenses.items():
        entry = report["defenses"][d_name]
        assert entry["train_acc"] == result.train_acc and entry["test_acc"] == result.test_acc
        for a_name, att in result.attacks.items():
            s = entry["attacks"][a_name]
            assert s["auc"] == pytest.approx(_ref_auc(att.scores, att.is_member), abs=1e-12)
            for t, key in [(0.0, "tpr@0%fpr"), (1e-3, "tpr@0.1%fpr"), (0.05, None)]:
                if key is not None:
                    assert s[key] == pytest.approx(_ref_tpr(att.scores, att.is_member, t))
            assert s["tnr@0.1%fnr"] == pytest.approx(_ref_tnr(att.scores, att.is_member, 1e-3))
            assert s["intervals"] == {}
        for k in METRIC_KEYS:
            values = {a: entry["attacks"][a][k] for a in entry["attacks"]}
            assert entry[f"max_{k}"] == max(values.values())
            best = entry[f"max_{k}/attack"]
            assert values[best] == max(values.values())
            assert best == next(a for a in values if values[a] == max(values.values()))  # first on ties
    assert report["defenses"]["none"]["max_auc/attack"] == "lira"
    assert report["defenses"]["hamp"]["max_auc/attack"] == "loss"


def test_below_resolution_flags():
    rng = np.random.default_rng(1)
    small = DefenseResult(0.5, 0.5, {"a": _attack(rng, 20, 20, 1.0)})
    large = DefenseResult(0.5, 0.5, {"a": _attack(rng, 1000, 2000, 1.0)})
    ev = Evaluation({"small": small, "large": large}, num_models=1, num_queries=1, seeds={}, config={}, timings={})
    r = build_report(ev, bootstrap_resamples=0, seed=0)
    s = r["defenses"]["small"]["attacks"]["a"]
    assert s["tpr@0%fpr/below_resolution"] is False
    for k in RATE_KEYS[1:]:
        assert s[f"{k}/below_resolution"] is True, k  # every positive target < 1 / 20
    g = r["defenses"]["large"]["attacks"]["a"]
    assert g["tpr@0.1%fpr/below_resolution"] is False and g["tpr@1%fpr/below_resolution"] is False
    assert g["tpr@0.01%fpr/below_resolution"] is True  # 1e-4 < 1 / 2000
    assert g["tnr@0.1%fnr/below_resolution"] is False  # 1e-3 == 1 / 1000 is resolvable
    assert g["min_resolvable_fpr"] == 1 / 2000 and g["min_resolvable_fnr"] == 1 / 1000
    table = format_table(r, defenses=["small"])
    assert "*" in table and "below the resolution" in table
    assert "*" not in format_table(r, defenses=["large"], metrics=["auc", "tpr@1%fpr"])


def test_bootstrap_intervals_equal_metrics_bootstrap_interval():
    rng = np.random.default_rng(2)
    s, y = _attack(rng, 1000, 1000, 1.0)
    s = np.round(s, 1)  # ties
    ev = Evaluation({"d": DefenseResult(1.0, 0.5, {"a": (s, y)})}, num_models=1, num_queries=1,
                    seeds={}, config={}, timings={})
    ivs = build_report(ev, bootstrap_resamples=40, seed=7)["defenses"]["d"]["attacks"]["a"]["intervals"]
    fns = {
        "auc": auc,
        "balanced_accuracy": balanced_accuracy,
        "tpr@0.1%fpr": functools.partial(tpr_at_fpr, fpr=1e-3),
        "tpr@1%fpr": functools.partial(tpr_at_fpr, fpr=1e-2),
        "tpr@0%fpr": functools.partial(tpr_at_fpr, fpr=0.0, strict=False),
        "tnr@0.1%fnr": functools.partial(tnr_at_fnr, fnr=1e-3),
    }
    for key, fn in fns.items():
        ref = bootstrap_interval(fn, s, y, seed=7, num_resamples=40)
        assert ivs[key] == {"estimate": ref.estimate, "low": ref.low, "high": ref.high}, key
    other = build_report(ev, bootstrap_resamples=40, seed=8)["defenses"]["d"]["attacks"]["a"]["intervals"]
    assert other["auc"] != ivs["auc"]


def test_attack_scores_normalises_dtypes():
    a = AttackScores(np.array([3, 1], np.int32), np.array([1, 0]))
    assert a.scores.dtype == np.float64 and a.is_member.dtype == np.bool_
    d = DefenseResult(1, 0, {"x": AttackScores([0.2, 0.1], [True, False])})
    assert d.train_acc == 1.0 and isinstance(d.train_acc, float)


def test_config_hash_and_versions():
    assert config_hash({"b": (1, 2), "a": 0}) == config_hash({"a": 0, "b": [1, 2]})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    versions = collect_versions()
    assert set(versions) == {"python", "jax", "jaxlib", "flax", "optax", "numpy", "hampjax"}
    assert all(isinstance(v, str) for v in versions.values())


def test_config_dict_accepted():
    ml_collections = pytest.importorskip("ml_collections")
    cfg = ml_collections.ConfigDict({"lr": 0.1, "model": {"width": 8}})
    assert config_hash(cfg) == config_hash({"lr": 0.1, "model": {"width": 8}})


# ------------------------------------------------------------------------------------------
# Files, rebuild.
# ------------------------------------------------------------------------------------------


def _no_temp_files(run_dir):
    return [f for f in os.listdir(run_dir) if f.startswith(".tmp")] == []


def test_write_report_files_and_scores_npz(tmp_path):
    ev = _evaluation()
    report = write_report(tmp_path, ev, bootstrap_resamples=10, seed=0, plots=False)
    files = sorted(os.listdir(tmp_path))
    assert files == ["evaluation.json", "manifest.json", "report.json", "report.md", "scores.npz"]
    with open(tmp_path / "report.json") as f:
        assert json.load(f) == report
    with np.load(tmp_path / "scores.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(
            ["keep"] + [f"{k}/{d}/{a}" for k in ("scores", "is_member") for d in ("none", "hamp") for a in ("lira", "loss")]
        )
        np.testing.assert_array_equal(npz["keep"], ev.keep)
        np.testing.assert_array_equal(npz["scores/hamp/loss"], ev.defenses["hamp"].attacks["loss"].scores)
        assert npz["is_member/none/lira"].dtype == np.bool_
    assert _no_temp_files(tmp_path)
    loaded = load_evaluation(tmp_path)
    assert loaded.versions == ev.versions and loaded.timings == ev.timings and loaded.config == ev.config
    np.testing.assert_array_equal(loaded.keep, ev.keep)


def test_report_md_contains_table(tmp_path):
    report = write_report(tmp_path, _evaluation(), bootstrap_resamples=5, seed=0, plots=False)
    md = (tmp_path / "report.md").read_text()
    table = format_table(report)
    assert table in md
    assert md == markdown_document(report)
    header = table.splitlines()[0]
    assert header.startswith("| defense | train acc | test acc | lira AUC | lira TPR@0.1%FPR | lira TNR@0.1%FNR |")
    assert header.endswith("| max AUC | max TPR@0.1%FPR | max TNR@0.1%FNR |")
    rows = [line for line in table.splitlines() if line.startswith("| none") or line.startswith("| hamp")]
    assert len(rows) == 2 and rows[0].startswith("| none | 100.00% | 75.00% |")
    assert "config hash" in md and report["run"]["config_hash"] in md


def test_format_table_known_output():
    ev = Evaluation(
        {"plain": DefenseResult(0.995, 0.8, {"lira": ([4.0, 3.0, 2.0, 1.0], [1, 0, 1, 0]),
                                             "loss": ([4.0, 3.0, 2.0, 1.0], [1, 1, 0, 0])}),
         "hamp": DefenseResult(0.9, 0.79, {"loss": ([1.0, 2.0, 3.0, 4.0], [1, 1, 0, 0])})},
        num_models=1, num_queries=1, seeds={}, config={}, timings={})
    r = build_report(ev, bootstrap_resamples=0, seed=0)
    out = format_table(r, metrics=["auc", "tpr@1%fpr"])
    assert out.splitlines()[:4] == [
        "| defense | train acc | test acc | lira AUC | lira TPR@1%FPR | loss AUC | loss TPR@1%FPR | max AUC | max TPR@1%FPR |",
        "|---|---|---|---|---|---|---|---|---|",
        "| plain | 99.50% | 80.00% | 0.7500 | 50.00%* | 1.0000 | 100.00%* | 1.0000 (loss) | 100.00%* (loss) |",
        "| hamp | 90.00% | 79.00% | - | - | 0.0000 | 0.00%* | 0.0000 (loss) | 0.00%* (loss) |",
    ]
    only = format_table(r, defenses=["hamp"], metrics=["auc"])
    assert only.splitlines()[0] == "| defense | train acc | test acc | loss AUC | max AUC |"


def test_rebuild_reproduces_report_exactly(tmp_path):
    ev = _evaluation(versions={"jax": "0.0.fake", "hampjax": "9.9"})
    report = write_report(tmp_path, ev, bootstrap_resamples=15, seed=4, plots=False)
    original = (tmp_path / "report.json").read_bytes()
    md = (tmp_path / "report.md").read_text()
    os.remove(tmp_path / "report.json")
    os.remove(tmp_path / "report.md")
    again = rebuild(tmp_path, plots=False)
    assert again == report
    assert (tmp_path / "report.json").read_bytes() == original  # same timings, versions, intervals
    assert (tmp_path / "report.md").read_text() == md
    assert again["run"]["versions"] == {"jax": "0.0.fake", "hampjax": "9.9"}
    assert _no_temp_files(tmp_path)


def test_rebuild_command(tmp_path, capsys):
    report = write_report(tmp_path, _evaluation(), bootstrap_resamples=3, seed=0, plots=False)
    assert rebuild_main([str(tmp_path), "--no-plots"]) == 0
    assert capsys.readouterr().out == format_table(report)
    with open(tmp_path / "report.json") as f:
        assert json.load(f) == report


def test_rebuild_module_entry_point(tmp_path):
    write_report(tmp_path, _evaluation(n=10), bootstrap_resamples=2, seed=0, plots=False)
    before = (tmp_path / "report.json").read_bytes()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-m", "hampjax.report.rebuild", str(tmp_path), "--no-plots"],
        capture_output=True, text=True, env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        check=True,
    )
    assert out.stdout.startswith("| defense |")
    assert (tmp_path / "report.json").read_bytes() == before


def test_failed_write_leaves_no_temp_files_and_keeps_old_files(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    write_report(tmp_path, _evaluation(n=10), bootstrap_resamples=0, seed=0, plots=False)
    before = (tmp_path / "report.json").read_bytes()

    def boom(fig, canvas_cls):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "_png_bytes", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(tmp_path, _evaluation(n=10, seed=5), bootstrap_resamples=0, seed=0)
    assert _no_temp_files(tmp_path)
    assert not any(f.endswith(".png") for f in os.listdir(tmp_path))
    assert (tmp_path / "report.json").read_bytes() != before  # replaced whole, never partial
    json.loads((tmp_path / "report.json").read_text())

    from hampjax import atomic  # the report's files are written by hampjax.atomic

    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, fd, mode):
            self.f = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

        def write(self, data):
            self.f.write(data[:3])
            raise OSError("no space")

    monkeypatch.setattr(atomic.os, "fdopen", Failing)
    good = (tmp_path / "report.json").read_bytes()
    with pytest.raises(OSError, match="no space"):
        atomic.write_bytes(str(tmp_path / "report.json"), b"{}")
    assert (tmp_path / "report.json").read_bytes() == good
    assert _no_temp_files(tmp_path)


# ------------------------------------------------------------------------------------------
# Plots.
# ------------------------------------------------------------------------------------------


def test_plots_written(tmp_path):
    pytest.importorskip("matplotlib")
    write_report(tmp_path, _evaluation(), bootstrap_resamples=0, seed=0)
    for name in ("none", "hamp", "lira", "loss"):
        data = (tmp_path / f"roc_{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert _no_temp_files(tmp_path)
    for f in tmp_path.iterdir():
        if f.suffix == ".png":
            os.remove(f)
    rebuild(tmp_path)
    assert (tmp_path / "roc_lira.png").stat().st_size > 1000


def test_histograms_of_scores_and_boundary_distances_listed_and_rebuilt(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    spread = {"mean": 0.6, "std": 0.1, "per_target": [0.5, 0.7]}
    multi = {"targets": [0, 1], "metrics": ["auc"], "train_acc": spread, "test_acc": spread,
             "attacks": {"loss": {"auc": spread}}}
    ev = Evaluation(
        defenses={"none": DefenseResult(1.0, 0.7, {"confidence": _attack(rng, 30, 30, 1.0),
                                                   "lira": _attack(rng, 30, 30, 2.0),
                                                   "label_only_boundary": _attack(rng, 5, 5, 1.0)},
                                        multi_target=multi),
                  "hamp": DefenseResult(0.9, 0.7, {"lira": _attack(rng, 30, 30, 0.1)})},
        num_models=4, num_queries=1, seeds={}, config={}, timings={})
    drawn = []
    real = plots.render_score_histogram_png

    def spy(scores, is_member, **kwargs):
        drawn.append((len(scores), kwargs["xlabel"]))
        return real(scores, is_member, **kwargs)

    monkeypatch.setattr(plots, "render_score_histogram_png", spy)
    monkeypatch.setattr(plots, "render_roc_png", lambda curves, title: b"\x89PNG stub")  # (fast)
    report = write_report(tmp_path, ev, bootstrap_resamples=0, seed=0)
    hists = {"confidence": "hist_none_confidence.png",
             "label_only_boundary": "hist_none_label_only_boundary.png"}
    assert report["defenses"]["none"]["plots"] == {"roc": "roc_none.png", "histograms": hists}
    assert report["defenses"]["hamp"]["plots"] == {"roc": "roc_hamp.png", "histograms": {}}
    assert report["plots"] == ["roc_none.png", *hists.values(), "roc_hamp.png", "roc_confidence.png",
                               "roc_lira.png", "roc_label_only_boundary.png"]
    assert drawn == [(60, "Confidence in the true class p_y"), (10, "L2 distance to the decision boundary")]
    assert report["defenses"]["none"]["multi_target"] == multi
    assert report["defenses"]["hamp"]["multi_target"] == {}
    for name in report["plots"]:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
        os.remove(tmp_path / name)
    before = (tmp_path / "report.json").read_bytes()
    assert rebuild(tmp_path) == report
    assert (tmp_path / "report.json").read_bytes() == before
    assert sorted(report["plots"]) == sorted(f for f in os.listdir(tmp_path) if f.endswith(".png"))
    assert load_evaluation(tmp_path).defenses["none"].multi_target == multi
    assert rebuild(tmp_path, plots=False)["plots"] == []


def test_roc_axes_are_log_log_1e5_to_1(monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    del matplotlib
    seen = {}
    real = plots._png_bytes

    def spy(fig, canvas_cls):
        ax = fig.axes[0]
        seen.update(xscale=ax.get_xscale(), yscale=ax.get_yscale(), xlim=ax.get_xlim(), ylim=ax.get_ylim(),
                    lines=len(ax.get_lines()))
        return real(fig, canvas_cls)

    monkeypatch.setattr(plots, "_png_bytes", spy)
    rng = np.random.default_rng(0)
    plots.render_roc_png({"a": _attack(rng, 30, 30, 1.0), "b": _attack(rng, 30, 30, 0.0)}, title="t")
    assert seen["xscale"] == seen["yscale"] == "log"
    assert seen["xlim"] == pytest.approx((1e-5, 1.0)) and seen["ylim"] == pytest.approx((1e-5, 1.0))
    assert seen["lines"] == 3  # two curves and the diagonal


def test_histogram_png():
    pytest.importorskip("matplotlib")
    png = plots.render_score_histogram_png([0.1, 0.5, 0.9, 0.3], [0, 1, 1, 0], title="h", bins=4)
    assert png[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="bins"):
        plots.render_score_histogram_png([0.1, 0.9], [0, 1], title="h", bins=0)
    with pytest.raises(ValueError, match="labels"):
        plots.render_score_histogram_png([0.1, 0.9], [1, 1], title="h")


def test_missing_matplotlib_skips_plots_with_warning(tmp_path, monkeypatch):
    def missing():
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(plots, "import_matplotlib", missing)
    assert plots.matplotlib_available() is False
    with pytest.warns(UserWarning, match="matplotlib"):
        report = write_report(tmp_path, _evaluation(n=10), bootstrap_resamples=0, seed=0)
    assert not any(f.endswith(".png") for f in os.listdir(tmp_path))
    assert "defenses" in report
    with pytest.raises(ImportError):
        plots.render_roc_png({"a": ([1.0, 0.0], [1, 0])}, title="t")


def test_plots_false_writes_no_png(tmp_path):
    write_report(tmp_path, _evaluation(n=10), bootstrap_resamples=0, seed=0, plots=False)
    assert not any(f.endswith(".png") for f in os.listdir(tmp_path))


def test_render_roc_validation():
    with pytest.raises(ValueError, match="curves"):
        plots.render_roc_png({}, title="t")
    with pytest.raises(ValueError, match="curves"):
        plots.render_roc_png([([1.0], [1])], title="t")
    with pytest.raises(ValueError, match="pair"):
        plots.render_roc_png({"a": ([1.0, 0.0],)}, title="t")
    with pytest.raises(ValueError, match="keys"):
        plots.render_roc_png({1: ([1.0, 0.0], [1, 0])}, title="t")
    with pytest.raises(ValueError, match="same shape"):
        plots.render_roc_png({"a": ([1.0, 0.0, 2.0], [1, 0])}, title="t")


# ------------------------------------------------------------------------------------------
# Validation errors.
# ------------------------------------------------------------------------------------------


def _ok_defense():
    return DefenseResult(1.0, 0.5, {"a": ([0.9, 0.1], [1, 0])})


def _ev(**overrides):
    kwargs = dict(defenses={"d": _ok_defense()}, num_models=1, num_queries=1, seeds={}, config={}, timings={})
    kwargs.update(overrides)
    return Evaluation(**kwargs)


@pytest.mark.parametrize(
    "scores, labels, match",
    [
        ([0.1, 0.2, 0.3], [1, 0], "same shape"),
        ([[0.1, 0.2]], [1, 0], "scores must be 1-D"),
        ([np.nan, 0.2], [1, 0], "finite"),
        ([np.inf, 0.2], [1, 0], "finite"),
        ([0.1, 0.2], [1, 2], "is_member must contain only"),
        ([0.1, 0.2], [1, 1], "is_member must contain both"),
        ([], [], "is_member"),
    ],
)
def test_attack_scores_validation(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        AttackScores(scores, labels)


@pytest.mark.parametrize(
    "args, match",
    [
        ((1.5, 0.5, {"a": ([0.9, 0.1], [1, 0])}), r"train_acc must be in \[0, 1\]"),
        ((0.5, -0.1, {"a": ([0.9, 0.1], [1, 0])}), r"test_acc must be in \[0, 1\]"),
        ((np.nan, 0.5, {"a": ([0.9, 0.1], [1, 0])}), "train_acc"),
        (([0.5, 0.5], 0.5, {"a": ([0.9, 0.1], [1, 0])}), "train_acc must be a scalar"),
        ((0.5, 0.5, {}), "attacks must be a non-empty mapping"),
        ((0.5, 0.5, [("a", ([0.9, 0.1], [1, 0]))]), "attacks must be a non-empty mapping"),
        ((0.5, 0.5, {"a/b": ([0.9, 0.1], [1, 0])}), "attack name"),
        ((0.5, 0.5, {"": ([0.9, 0.1], [1, 0])}), "attack name"),
        ((0.5, 0.5, {"a b": ([0.9, 0.1], [1, 0])}), "attack name"),
        ((0.5, 0.5, {3: ([0.9, 0.1], [1, 0])}), "attack name"),
        ((0.5, 0.5, {"a": [0.9, 0.1, 0.3]}), r"attacks\['a'\] must be AttackScores"),
        ((0.5, 0.5, {"a": ([0.9, 0.1], [1, 0, 1])}), "same shape"),
    ],
)
def test_defense_result_validation(args, match):
    with pytest.raises(ValueError, match=match):
        DefenseResult(*args)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(defenses={}), "defenses must be a non-empty mapping"),
        (dict(defenses=[_ok_defense()]), "defenses must be a non-empty mapping"),
        (dict(defenses={"d": {"a": ([0.9, 0.1], [1, 0])}}), r"defenses\['d'\] must be a DefenseResult"),
        (dict(defenses={"../d": _ok_defense()}), "defense name"),
        (dict(defenses={"a": _ok_defense()}), "defense names must differ from attack names"),
        (dict(num_models=0), "num_models must be an integer >= 1"),
        (dict(num_models=2.0), "num_models must be an integer >= 1"),
        (dict(num_queries=True), "num_queries must be an integer >= 1"),
        (dict(seeds={"train": -1}), "seeds"),
        (dict(seeds={"train": 1.5}), "seeds"),
        (dict(seeds=3), "seeds must be a mapping"),
        (dict(config=[1, 2]), "config must be a mapping"),
        (dict(config={"f": object()}), "config must be JSON-serializable"),
        (dict(config={"x": float("nan")}), "config must be JSON-serializable"),
        (dict(timings={"train": -1.0}), r"timings\['train'\] must be in"),
        (dict(timings={"train": np.nan}), r"timings\['train'\]"),
        (dict(timings={"train": [1.0]}), r"timings\['train'\] must be a scalar"),
        (dict(timings=1.0), "timings must be a mapping"),
        (dict(keep=np.ones((2, 3), np.int32)), "keep must be a boolean"),
        (dict(keep=np.ones(3, bool)), "keep must be 2-D"),
        (dict(keep=np.array([[True, False], [False, False]])), "keep must give every model"),
        (dict(versions={"jax": 1}), "versions must be a mapping"),
    ],
)
def test_evaluation_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        _ev(**overrides)


def test_report_function_validation(tmp_path):
    ev = _ev()
    with pytest.raises(ValueError, match="evaluation must be an Evaluation"):
        build_report({"d": _ok_defense()}, bootstrap_resamples=0, seed=0)
    with pytest.raises(ValueError, match="bootstrap_resamples must be an integer >= 0"):
        build_report(ev, bootstrap_resamples=-1, seed=0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        build_report(ev, bootstrap_resamples=0, seed=-2)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        build_report(ev, bootstrap_resamples=0, seed=None)
    with pytest.raises(ValueError, match="evaluation must be an Evaluation"):
        write_report(tmp_path, "ev", seed=0)
    with pytest.raises(ValueError, match="bootstrap_resamples"):
        write_report(tmp_path, ev, bootstrap_resamples=1.5, seed=0)
    with pytest.raises(ValueError, match="seed"):
        write_report(tmp_path, ev, seed=1.0)
    with pytest.raises(ValueError, match="run_dir must be a path"):
        write_report(3, ev, seed=0)
    with pytest.raises(TypeError):
        write_report(tmp_path, ev)  # the bootstrap seed is required
    assert os.listdir(tmp_path) == []  # nothing written before validation passed


def test_format_table_validation():
    report = build_report(_ev(), bootstrap_resamples=0, seed=0)
    with pytest.raises(ValueError, match="defenses must be one of 'd'; got 'nope'"):
        format_table(report, defenses=["nope"])
    with pytest.raises(ValueError, match="defenses must be a sequence"):
        format_table(report, defenses="d")
    with pytest.raises(ValueError, match="metrics must be one of"):
        format_table(report, metrics=["tpr@5%fpr"])
    with pytest.raises(ValueError, match="metrics must be a non-empty sequence"):
        format_table(report, metrics=[])
    with pytest.raises(ValueError, match="metrics must be a non-empty sequence"):
        format_table(report, metrics="auc")
    with pytest.raises(ValueError, match="report must be a dict built by build_report"):
        format_table({"defenses": {}})
    with pytest.raises(ValueError, match="report must be a dict built by build_report"):
        markdown_document([])


def test_rebuild_validation(tmp_path):
    with pytest.raises(ValueError, match="run_dir must contain scores.npz and evaluation.json"):
        rebuild(tmp_path)
    with pytest.raises(ValueError, match="run_dir must be a path"):
        rebuild(None)
    write_report(tmp_path, _ev(), bootstrap_resamples=0, seed=0, plots=False)
    meta = json.loads((tmp_path / "evaluation.json").read_text())
    np.savez(tmp_path / "scores.npz", **{"scores/d/a": np.array([0.9, 0.1])})
    with pytest.raises(ValueError, match="scores.npz is not the one .*evaluation.json was written with"):
        rebuild(tmp_path)
    del meta["scores_sha256"]  # a file without the hash is read on trust
    (tmp_path / "evaluation.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="scores.npz lacks 'is_member/d/a'"):
        rebuild(tmp_path)
    meta["format"] = "other"
    (tmp_path / "evaluation.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="evaluation.json must have format"):
        load_evaluation(tmp_path)
    os.remove(tmp_path / "scores.npz")
    with pytest.raises(ValueError, match="lacks scores.npz"):
        rebuild(tmp_path)


def test_markdown_lists_histograms_and_the_mean_over_targets():
    rng = np.random.default_rng(0)
    spread = {"mean": 0.6, "std": 0.05, "per_target": [0.55, 0.65]}
    multi = {"targets": [0, 1], "metrics": ["auc", "tpr@0.1%fpr"], "train_acc": spread,
             "test_acc": spread, "attacks": {"loss": {"auc": spread, "tpr@0.1%fpr": spread}}}
    ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"confidence": _attack(rng, 10, 10, 1.0)},
                                           multi_target=multi)},
                    num_models=2, num_queries=1, seeds={}, config={}, timings={})
    md = markdown_document(build_report(ev, bootstrap_resamples=0, seed=0, plots=True))
    assert "| loss | 0.6000 ± 0.0500 | 60.00% ± 5.00% |" in md
    assert "none: targets [0, 1]; train acc 60.00% ± 5.00%" in md
    assert "- none: `hist_none_confidence.png`" in md
    plain = markdown_document(build_report(_evaluation(), bootstrap_resamples=0, seed=0))
    assert "over targets" not in plain and "histograms" not in plain
