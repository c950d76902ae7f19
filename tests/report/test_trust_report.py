"""Tests for hampjax.report.trust: KDE, trust.json / trust.md, KDE plots, EMD."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from hampjax.attacks.shift import FittedScoreAttack, calibration_summary, evaluate_shift
from hampjax.report import plots as plots_module
from hampjax.report import trust
from hampjax.report.trust import (
    build_trust_report,
    gaussian_kde,
    render_score_kde_png,
    scott_bandwidth,
    write_trust_report,
)

HAS_MPL = plots_module.matplotlib_available()


# --------------------------------------------------------------------------------------------
# KDE.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 7, 300])
def test_gaussian_kde_matches_scipy(n):
    rng = np.random.default_rng(n)
    samples = rng.beta(5.0, 1.0, size=n)
    grid = np.linspace(-0.5, 1.5, 101)
    np.testing.assert_allclose(gaussian_kde(samples, grid), scipy.stats.gaussian_kde(samples)(grid),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        scott_bandwidth(samples), np.sqrt(scipy.stats.gaussian_kde(samples).covariance[0, 0]),
        rtol=1e-12
    )


def test_gaussian_kde_explicit_bandwidth_and_normalization():
    samples = np.array([0.0, 1.0, 3.0])
    grid = np.linspace(-10.0, 13.0, 4001)
    density = gaussian_kde(samples, grid, bandwidth=0.5)
    ref = np.mean(
        [np.exp(-0.5 * ((grid - s) / 0.5) ** 2) / (0.5 * np.sqrt(2 * np.pi)) for s in samples],
        axis=0)
    np.testing.assert_allclose(density, ref, rtol=1e-12)
    assert np.sum(density) * (grid[1] - grid[0]) == pytest.approx(1.0, abs=1e-6)
    # Scott's rule on samples that match scipy's bw_method scalar factor.
    factor = 0.5 / np.std(samples, ddof=1)
    scipy_kde = scipy.stats.gaussian_kde(samples, bw_method=factor)
    np.testing.assert_allclose(density[::50], scipy_kde(grid[::50]), rtol=1e-10)
    assert scott_bandwidth([4.0]) == 0.0 and scott_bandwidth([1.0, 1.0]) == 0.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(samples=[1.0, 1.0]), "positive spread"),
        (dict(samples=[0.5]), "positive spread"),
        (dict(samples=[]), "at least 1 example"),
        (dict(samples=[[0.1, 0.2]]), "samples must be 1-D"),
        (dict(samples=[0.1, np.nan]), "finite"),
        (dict(samples=np.array([True, False])), "real numbers"),
        (dict(grid=[]), "grid must contain"),
        (dict(bandwidth=0.0), "bandwidth must be in"),
        (dict(bandwidth=-1.0), "bandwidth must be in"),
        (dict(bandwidth=np.inf), "bandwidth must be in"),
        (dict(bandwidth=[0.1]), "bandwidth must be a positive finite scalar"),
        (dict(bandwidth=True), "bandwidth must be a positive finite scalar"),
    ],
)
def test_gaussian_kde_validation(kwargs, match):
    args = dict(samples=[0.1, 0.4, 0.5], grid=[0.0, 0.5], bandwidth=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gaussian_kde(args["samples"], args["grid"], bandwidth=args["bandwidth"])


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def _results():
    rng = np.random.default_rng(0)
    mz = jnp.asarray(rng.normal(size=(30, 3)) * 3.0, jnp.float32)
    my = jnp.asarray(rng.integers(0, 3, 30))
    nz = jnp.asarray(rng.normal(size=(20, 3)), jnp.float32)
    ny = jnp.asarray(rng.integers(0, 3, 20))
    attacks = {"max_score": FittedScoreAttack("max_score", 3, 1.0),
               "loss": FittedScoreAttack("loss", 3, 0.0)}
    sets = {"test": (nz, ny), "scaled x255": (255.0 * nz, None)}
    return evaluate_shift(attacks, mz, my, sets), (mz, my, nz)


def _groups():
    rng = np.random.default_rng(1)
    return {
        "members": rng.beta(8.0, 1.0, size=50),
        "test": rng.beta(3.0, 1.0, size=40),
        "scaled x255": np.ones(30),  # saturated: a point mass at 1.0
    }


def test_write_trust_report_files_and_schema(tmp_path):
    results, (mz, my, _) = _results()
    groups = _groups()
    calib = {"target/test": calibration_summary(mz, my)}
    report = write_trust_report(tmp_path / "run", results, score_groups=groups, calibration=calib)
    run = tmp_path / "run"
    with open(run / "trust.json") as f:
        loaded = json.load(f)
    assert loaded == report
    assert set(loaded) == {"format", "attacks", "nonmember_sets", "results", "calibration",
                           "score_distributions", "plots", "plots_available"}
    assert loaded["format"] == trust.TRUST_FORMAT
    assert loaded["attacks"] == ["max_score", "loss"]
    assert loaded["nonmember_sets"] == ["test", "scaled x255"]
    # Every metric is there; NaN became null.
    for s in loaded["nonmember_sets"]:
        for a in loaded["attacks"]:
            assert set(loaded["results"][s][a]) == set(results[s][a])
    skipped = loaded["results"]["scaled x255"]["loss"]
    assert skipped["skipped"] is True and skipped["fpr"] is None
    assert "no labels" in skipped["skip_reason"]
    got_fpr = loaded["results"]["test"]["max_score"]["fpr"]
    assert got_fpr == pytest.approx(results["test"]["max_score"]["fpr"])
    assert loaded["calibration"]["target/test"]["ece"] == pytest.approx(calib["target/test"]["ece"])
    dist = loaded["score_distributions"]
    assert dist["reference"] == "members" and set(dist["emd"]) == {"test", "scaled x255"}
    point_mass = {"count": 30, "mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0}
    assert dist["groups"]["scaled x255"] == point_mass
    # EMD against a NumPy reference in quantile form: integral over u of |Q_a(u) - Q_b(u)|.
    for name in ("test", "scaled x255"):
        a, b = np.sort(groups["members"]), np.sort(groups[name])
        levels = np.unique(np.concatenate([np.arange(a.size + 1) / a.size,
                                           np.arange(b.size + 1) / b.size]))
        mid = (levels[1:] + levels[:-1]) / 2
        qa, qb = a[(mid * a.size).astype(int)], b[(mid * b.size).astype(int)]
        ref = np.sum(np.abs(qa - qb) * np.diff(levels))
        assert dist["emd"][name] == pytest.approx(ref, rel=1e-12)
        assert dist["emd"][name] == pytest.approx(
            scipy.stats.wasserstein_distance(groups["members"], groups[name]), rel=1e-12)
    # Equal sizes: EMD is the mean absolute difference of the sorted samples.
    groups_eq = {"members": [0.1, 0.5, 0.9], "g": [0.3, 0.2, 1.0]}
    eq = build_trust_report(results, score_groups=groups_eq)
    ref = np.mean(np.abs([0.1 - 0.2, 0.5 - 0.3, 0.9 - 1.0]))
    assert eq["score_distributions"]["emd"]["g"] == pytest.approx(ref)
    # Markdown tables.
    md = (run / "trust.md").read_text()
    assert "| non-member set | max_score | loss |" in md
    assert "## AUROC" in md and "## Mean max prediction score per confusion cell" in md
    assert "n/a" in md and "Skipped" in md and "## Calibration" in md
    fpr_row = next(line for line in md.splitlines() if line.startswith("| test |"))
    assert f"{100 * results['test']['max_score']['fpr']:.1f}" in fpr_row
    # Plots.
    if HAS_MPL:
        assert loaded["plots_available"] is True
        assert loaded["plots"] == ["kde_all.png", "kde_test.png", "kde_scaled_x255.png"]
        for name in loaded["plots"]:
            assert (run / name).read_bytes()[:4] == b"\x89PNG"
            assert f"]({name})" in md
    assert not [f for f in os.listdir(run) if f.startswith(".tmp")]


def test_write_trust_report_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setattr(plots_module, "matplotlib_available", lambda: False)
    results, _ = _results()
    report = write_trust_report(tmp_path, results, score_groups=_groups())
    assert report["plots"] == [] and report["plots_available"] is False
    assert sorted(os.listdir(tmp_path)) == ["trust.json", "trust.md"]
    assert set(report["score_distributions"]["emd"]) == {"test", "scaled x255"}  # EMD still there


def test_write_trust_report_minimal(tmp_path):
    results, _ = _results()
    report = write_trust_report(tmp_path, results)
    assert report["score_distributions"] is None and report["calibration"] is None
    assert report["plots"] == []
    assert sorted(os.listdir(tmp_path)) == ["trust.json", "trust.md"]


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib not installed")
def test_render_score_kde_png():
    png = render_score_kde_png(_groups(), title="top-1")
    assert png[:4] == b"\x89PNG" and len(png) > 1000


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib not installed")
def test_colliding_file_stems_get_distinct_names(tmp_path):
    results, _ = _results()
    groups = {"members": [0.1, 0.5], "a b": [0.2, 0.3], "a_b": [0.4, 0.6]}
    report = write_trust_report(tmp_path, results, score_groups=groups)
    assert report["plots"] == ["kde_all.png", "kde_a_b.png", "kde_a_b_1.png"]


def test_report_validation(tmp_path):
    results, _ = _results()
    bad_results = [
        ({}, "results must be a non-empty"),
        ({1: results["test"]}, "results keys must be strings"),
        ({"test": {}}, "must be a non-empty mapping attack"),
        ({"a": results["test"], "b": {"max_score": results["test"]["max_score"]}},
         "must have the attacks"),
        ({"a": {"m": {"fpr": 0.1}}}, "missing"),
    ]
    for bad, match in bad_results:
        with pytest.raises(ValueError, match=match):
            build_trust_report(bad)
    cases = [
        (dict(score_groups={}), "score_groups must be a non-empty"),
        (dict(score_groups={"test": [0.1]}), "must contain a 'members' group"),
        (dict(score_groups={"members": [[0.1]]}), "must be 1-D"),
        (dict(score_groups={"members": [np.inf]}), "finite"),
        (dict(score_groups={"members": [0.1], "": [0.2]}), "non-empty strings"),
        (dict(calibration={}), "calibration must be None or a non-empty"),
        (dict(calibration={"x": {"ece": 0.1}}), "calibration_summary dict"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            write_trust_report(tmp_path / "never", results, **kwargs)
    assert not (tmp_path / "never").exists()  # validation runs before anything is written
    with pytest.raises(ValueError, match="groups must be a non-empty"):
        render_score_kde_png({}, title="t")
