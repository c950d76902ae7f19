"""Report for the "To Trust or Not To Trust" non-member-shift study (Hintersdorf et al. 2022).

:func:`write_trust_report` turns the output of :func:`hampjax.attacks.shift.evaluate_shift`
(optionally with top-1 score samples and calibration summaries) into::

    RUN_DIR/
      trust.json         the summary (schema below), written atomically
      trust.md           Markdown: FPR table (rows = non-member set, columns = attack),
                         AUROC table, MMPS-per-cell table, FPR split by argmax == label,
                         earth mover's distances and calibration (when given)
      kde_all.png        KDE of every score group             (score_groups and matplotlib)
      kde_<group>.png    KDE of the reference group vs <group> (score_groups and matplotlib)

``trust.json`` schema (NaN is written as ``null``)::

    {"format": "hampjax.trust/1",
     "attacks": [<attack>, ...],                 # column order
     "nonmember_sets": [<set>, ...],             # row order
     "results": {<set>: {<attack>: {
         "threshold", "fpr", "precision", "recall", "accuracy", "auroc", "aupr",
         "fpr@95%tpr", "mmps_tp", "mmps_fp", "mmps_fn", "mmps_tn",
         "fpr_argmax_eq_label", "fpr_argmax_ne_label":            float or null,
         "num_members", "num_nonmembers", "tp", "fp", "fn", "tn",
         "num_argmax_eq_label", "num_argmax_ne_label":            int,
         "skipped": bool, "skip_reason": str or null}}},
     "calibration": {<model or set>: {"ece", "oe", "accuracy", "mmps": float,
                                      "num_examples": int}} or null,
     "score_distributions": {
         "reference": "members",
         "groups": {<group>: {"count": int, "mean", "std", "min", "max": float}},
         "emd": {<group>: float},                # reference vs group, every other group
         "bandwidths": {<group>: float}          # KDE bandwidth (Scott's rule)
         } or null,
     "plots": [<png file name>, ...],           # empty without score_groups or matplotlib
     "plots_available": bool}                   # matplotlib importable when written

The earth mover's distance is :func:`hampjax.metrics.wasserstein_distance`. KDE plots use
matplotlib's object-oriented API only (see :mod:`hampjax.report.plots`); without matplotlib
the report is written without PNGs (``plots_available`` is false).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from hampjax import atomic, validation
from hampjax.metrics.calibration import wasserstein_distance
from hampjax.metrics.shift_keys import COUNT_KEYS, FLOAT_KEYS
from hampjax.report import plots as _plots

__all__ = [
    "TRUST_FORMAT",
    "REFERENCE_GROUP",
    "scott_bandwidth",
    "gaussian_kde",
    "render_score_kde_png",
    "build_trust_report",
    "markdown_trust",
    "write_trust_report",
]

TRUST_FORMAT = "hampjax.trust/1"
"""Value of ``trust.json``'s ``"format"`` key."""

REFERENCE_GROUP = "members"
"""Key of ``score_groups`` that every other group is compared with (EMD, pairwise KDEs)."""

_GRID_POINTS = 512


# --------------------------------------------------------------------------------------------
# Kernel density estimate.
# --------------------------------------------------------------------------------------------


def _samples(name: str, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    validation.check_ndim(name, arr, 1)
    validation.check_nonempty(name, arr)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be real numbers (float or int), got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    validation.check_finite(name, arr)
    return arr


def scott_bandwidth(samples: Any) -> float:
    """Scott's rule bandwidth ``std(samples, ddof=1) * n ** (-1/5)`` (1-D).

    This is the kernel standard deviation ``scipy.stats.gaussian_kde`` uses by default. It is
    0 for a single sample or samples that are all equal.

    Args:
      samples: ``[N]`` finite real values, ``N >= 1``.

    Returns:
      The bandwidth as a Python float ``>= 0``.

    Raises:
      ValueError: if ``samples`` is not 1-D, non-empty, real and finite.

    Example:
      >>> round(scott_bandwidth([0.0, 1.0, 2.0, 3.0]), 4)
      0.9784
    """
    s = _samples("samples", samples)
    if s.size < 2:
        return 0.0
    return float(np.std(s, ddof=1) * s.size ** (-0.2))


def gaussian_kde(samples: Any, grid: Any, *, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density estimate of 1-D samples, evaluated on ``grid``.

    ``density(x) = mean_i N(x; samples_i, bandwidth^2)``; integrates to 1 over the real line.
    With the default bandwidth (Scott's rule, :func:`scott_bandwidth`) it equals
    ``scipy.stats.gaussian_kde(samples)(grid)``.

    Args:
      samples: ``[N]`` finite real values, ``N >= 1``.
      grid: ``[G]`` finite real evaluation points.
      bandwidth: kernel standard deviation in the units of the samples, ``> 0``; default
        Scott's rule.

    Returns:
      ``[G]`` float64 densities.

    Raises:
      ValueError: if ``samples`` or ``grid`` is not 1-D, non-empty, real and finite, the
        given ``bandwidth`` is not a positive finite scalar, or the default bandwidth is 0
        (one sample, or all samples equal: pass ``bandwidth``).

    Example:
      >>> gaussian_kde([0.0], [0.0], bandwidth=1.0).round(4).tolist()  # 1 / sqrt(2 pi)
      [0.3989]
    """
    s = _samples("samples", samples)
    g = _samples("grid", grid)
    if bandwidth is None:
        bandwidth = scott_bandwidth(s)
        if bandwidth == 0.0:
            raise ValueError(
                "samples must have a positive spread for Scott's rule (got one sample or all "
                "samples equal); pass bandwidth > 0"
            )
    else:
        if np.ndim(bandwidth) != 0 or isinstance(bandwidth, bool):
            raise ValueError(f"bandwidth must be a positive finite scalar, got {bandwidth!r}")
        validation.check_positive("bandwidth", bandwidth)
        bandwidth = float(bandwidth)
    out = np.empty(g.size, dtype=np.float64)
    norm = 1.0 / (s.size * bandwidth * math.sqrt(2.0 * math.pi))
    chunk = max(1, 4_000_000 // s.size)  # bounds the [chunk, N] temporary
    for start in range(0, g.size, chunk):
        u = (g[start:start + chunk, None] - s[None, :]) / bandwidth
        out[start:start + chunk] = norm * np.sum(np.exp(-0.5 * u * u), axis=1)
    return out


def _check_groups(groups: Any, name: str) -> dict[str, np.ndarray]:
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError(f"{name} must be a non-empty mapping name -> samples [N], got {groups!r}")
    out = {}
    for key, value in groups.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{name} keys must be non-empty strings, got {key!r}")
        out[key] = _samples(f"{name}[{key!r}]", value)
    return out


def _grid(groups: Mapping[str, np.ndarray]) -> np.ndarray:
    lo = min(float(v.min()) for v in groups.values())
    hi = max(float(v.max()) for v in groups.values())
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return np.linspace(lo - pad, hi + pad, _GRID_POINTS)


def _group_bandwidth(samples: np.ndarray, grid: np.ndarray) -> float:
    """Scott's rule, or a narrow kernel (1/100 of the grid span) for a point mass."""
    bw = scott_bandwidth(samples)
    return bw if bw > 0.0 else float(grid[-1] - grid[0]) / 100.0


def render_score_kde_png(groups: Mapping[str, Any], *, title: str) -> bytes:
    """Render Gaussian KDEs of score samples (e.g. top-1 scores) to PNG, one curve per group.

    The grid spans all samples (padded by 5%). Each group uses Scott's rule; a group with no
    spread (e.g. scaled inputs whose max probability is exactly 1.0) is drawn with a narrow
    kernel of 1/100 of the grid span and marked "point mass" in the legend.

    Args:
      groups: mapping ``label -> samples [N]`` (finite reals), drawn in mapping order, e.g.
        ``{"members": ..., "non-members": ..., "scaled": ...}``.
      title: the plot title.

    Returns:
      The PNG file contents as ``bytes``.

    Raises:
      ValueError: if ``groups`` is empty, not a mapping of strings to 1-D finite samples.
      ImportError: if matplotlib is not installed.

    Example:
      >>> png = render_score_kde_png({"a": [0.1, 0.5, 0.9], "b": [1.0, 1.0]}, title="t")
      >>> png[:4] == b"\\x89PNG"
      True
    """
    checked = _check_groups(groups, "groups")
    grid = _grid(checked)
    figure_cls, canvas_cls = _plots.import_matplotlib()
    fig = figure_cls(figsize=(5.5, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    for name, samples in checked.items():
        bw = scott_bandwidth(samples)
        label = f"{name} (n={samples.size})" + ("" if bw > 0 else ", point mass")
        density = gaussian_kde(samples, grid, bandwidth=_group_bandwidth(samples, grid))
        ax.plot(grid, density, label=label)
        ax.fill_between(grid, density, alpha=0.15)
    ax.set_xlabel("Score")
    ax.set_ylabel("Density")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _plots._png_bytes(fig, canvas_cls)


# --------------------------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready value: floats (NaN/inf -> None), ints, bools, str, None."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return None if value is None else bool(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    f = float(value)
    return f if math.isfinite(f) else None


def _check_results(results: Any) -> tuple[list[str], list[str]]:
    if not isinstance(results, Mapping) or not results:
        raise ValueError(
            "results must be a non-empty mapping set -> attack -> metrics (evaluate_shift)"
        )
    attacks: list[str] | None = None
    for set_name, per_attack in results.items():
        if not isinstance(set_name, str):
            raise ValueError(
                f"results keys must be strings (non-member set names), got {set_name!r}"
            )
        if not isinstance(per_attack, Mapping) or not per_attack:
            raise ValueError(f"results[{set_name!r}] must be a non-empty mapping attack -> metrics")
        names = list(per_attack)
        if attacks is None:
            attacks = names
        elif names != attacks:
            raise ValueError(
                f"results[{set_name!r}] must have the attacks {attacks} (as the first set), "
                f"got {names}"
            )
        for attack, metrics in per_attack.items():
            required = (*FLOAT_KEYS, *COUNT_KEYS, "skipped", "skip_reason")
            if not isinstance(metrics, Mapping) or any(k not in metrics for k in required):
                missing = [
                    k for k in required if not isinstance(metrics, Mapping) or k not in metrics
                ]
                raise ValueError(
                    f"results[{set_name!r}][{attack!r}] must be an evaluate_shift result; "
                    f"missing {missing}"
                )
    return list(results), attacks


def _check_calibration(calibration: Any) -> dict[str, dict[str, Any]] | None:
    if calibration is None:
        return None
    keys = ("ece", "oe", "accuracy", "mmps", "num_examples")
    if not isinstance(calibration, Mapping) or not calibration:
        raise ValueError(
            "calibration must be None or a non-empty mapping name -> calibration_summary"
        )
    out = {}
    for name, summary in calibration.items():
        if not isinstance(name, str) or not isinstance(summary, Mapping) or any(
            k not in summary for k in keys
        ):
            raise ValueError(
                f"calibration[{name!r}] must be a calibration_summary dict with keys {keys}"
            )
        out[name] = {k: _plain(summary[k]) for k in keys}
    return out


def _file_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return stem or "group"


def _distributions(groups: dict[str, np.ndarray]) -> dict[str, Any]:
    grid = _grid(groups)
    ref = groups[REFERENCE_GROUP]
    return {
        "reference": REFERENCE_GROUP,
        "groups": {
            name: {
                "count": int(s.size),
                "mean": float(s.mean()),
                "std": float(s.std()),
                "min": float(s.min()),
                "max": float(s.max()),
            }
            for name, s in groups.items()
        },
        "emd": {
            name: wasserstein_distance(ref, s)
            for name, s in groups.items()
            if name != REFERENCE_GROUP
        },
        "bandwidths": {name: _group_bandwidth(s, grid) for name, s in groups.items()},
    }


def build_trust_report(
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    score_groups: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``trust.json`` dict (schema in the module docstring), without plots or files.

    ``"plots"`` is empty and ``"plots_available"`` false here; :func:`write_trust_report`
    fills them in.

    Args:
      results: the output of :func:`hampjax.attacks.shift.evaluate_shift`.
      score_groups: optional ``{group: samples [N]}`` of scores (e.g. top-1 probabilities)
        with a ``"members"`` group; every other group is compared with it.
      calibration: optional ``{name: calibration_summary(...)}``.

    Returns:
      The JSON-ready dict.

    Raises:
      ValueError: if ``results`` is not an evaluate_shift output (sets with the same attacks,
        every metric key present), ``score_groups`` is not a mapping of 1-D finite samples
        with a ``"members"`` group, or ``calibration`` is not a mapping of summaries.

    Example:
      >>> import jax.numpy as jnp
      >>> from hampjax.attacks.shift import FittedScoreAttack, evaluate_shift
      >>> attacks = {"max_score": FittedScoreAttack("max_score", 2, 1.0)}
      >>> sets = {"test": (jnp.array([[0.5, 0.0]]), None)}
      >>> res = evaluate_shift(attacks, jnp.array([[3.0, 0.0]]), None, sets)
      >>> out = build_trust_report(res, score_groups={"members": [0.9, 0.8], "test": [0.6, 0.7]})
      >>> out["results"]["test"]["max_score"]["fpr"]
      0.0
      >>> round(out["score_distributions"]["emd"]["test"], 3)
      0.2
    """
    sets, attacks = _check_results(results)
    calib = _check_calibration(calibration)
    distributions = None
    if score_groups is not None:
        groups = _check_groups(score_groups, "score_groups")
        if REFERENCE_GROUP not in groups:
            raise ValueError(
                f"score_groups must contain a {REFERENCE_GROUP!r} group, got {list(groups)}"
            )
        distributions = _distributions(groups)
    return {
        "format": TRUST_FORMAT,
        "attacks": attacks,
        "nonmember_sets": sets,
        "results": {
            s: {a: {k: _plain(v) for k, v in results[s][a].items()} for a in attacks} for s in sets
        },
        "calibration": calib,
        "score_distributions": distributions,
        "plots": [],
        "plots_available": False,
    }


def _cell(value: Any, *, percent: bool) -> str:
    if value is None:
        return "n/a"
    return f"{100.0 * value:.1f}" if percent else f"{value:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def markdown_trust(report: Mapping[str, Any]) -> str:
    """Markdown text of ``trust.md`` from a :func:`build_trust_report` dict."""
    sets, attacks, res = report["nonmember_sets"], report["attacks"], report["results"]
    lines = ["# To Trust or Not To Trust: non-member shift", ""]

    def per_set(key: str, percent: bool) -> list[str]:
        rows = [[s] + [_cell(res[s][a][key], percent=percent) for a in attacks] for s in sets]
        return _table(["non-member set"] + attacks, rows)

    lines += ["## FPR (%) of the fixed attacks", ""] + per_set("fpr", True)
    lines += ["## AUROC", ""] + per_set("auroc", False)
    lines += ["## Mean max prediction score per confusion cell", ""]
    rows = [
        [s, a] + [_cell(res[s][a][f"mmps_{c}"], percent=False) for c in ("tp", "fp", "fn", "tn")]
        for s in sets for a in attacks
    ]
    lines += _table(["non-member set", "attack", "TP", "FP", "FN", "TN"], rows)
    split = [
        [s, a, _cell(r["fpr_argmax_eq_label"], percent=True), str(r["num_argmax_eq_label"]),
         _cell(r["fpr_argmax_ne_label"], percent=True), str(r["num_argmax_ne_label"])]
        for s in sets for a in attacks
        for r in [res[s][a]] if r["num_argmax_eq_label"] + r["num_argmax_ne_label"] > 0
    ]
    if split:
        lines += ["## FPR (%) split by argmax == label", ""]
        header = ["non-member set", "attack", "FPR argmax = y", "n", "FPR argmax != y", "n"]
        lines += _table(header, split)
    skipped = [
        f"- {s} / {a}: {res[s][a]['skip_reason']}"
        for s in sets for a in attacks if res[s][a]["skipped"]
    ]
    if skipped:
        lines += ["Skipped (n/a above):", ""] + skipped + [""]
    dist = report["score_distributions"]
    if dist is not None:
        lines += [f"## Earth mover's distance to {dist['reference']}", ""]
        lines += _table(["group", "EMD"], [[g, f"{v:.4f}"] for g, v in dist["emd"].items()])
    if report["calibration"] is not None:
        lines += ["## Calibration", ""]
        rows = [
            [n, _cell(c["accuracy"], percent=True), _cell(c["ece"], percent=False),
             _cell(c["oe"], percent=False), _cell(c["mmps"], percent=False)]
            for n, c in report["calibration"].items()
        ]
        lines += _table(["model / set", "accuracy (%)", "ECE", "OE", "MMPS"], rows)
    for name in report["plots"]:
        lines += [f"![{name}]({name})", ""]
    return "\n".join(lines)


def write_trust_report(
    run_dir: str | os.PathLike,
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    score_groups: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``trust.json``, ``trust.md`` and (with ``score_groups``) KDE plots to ``run_dir``.

    Every file is written atomically; ``run_dir`` is created if needed. Plots are written only
    when matplotlib is available (:func:`hampjax.report.plots.matplotlib_available`):
    ``kde_all.png`` with every group and ``kde_<group>.png`` with ``"members"`` against each
    other group (``<group>`` with characters other than letters, digits, ``.``, ``_``, ``-``
    replaced by ``_``).

    Args:
      run_dir: output directory.
      results: the output of :func:`hampjax.attacks.shift.evaluate_shift`.
      score_groups: optional ``{group: samples [N]}`` of top-1 scores with a ``"members"``
        group (EMDs and KDE plots).
      calibration: optional ``{name: calibration_summary(...)}``.

    Returns:
      The report dict, equal to ``json.load(open(run_dir / "trust.json"))``.

    Raises:
      ValueError: as :func:`build_trust_report`.

    Example:
      >>> import jax.numpy as jnp, os, tempfile
      >>> from hampjax.attacks.shift import FittedScoreAttack, evaluate_shift
      >>> attacks = {"max_score": FittedScoreAttack("max_score", 2, 1.0)}
      >>> sets = {"test": (jnp.array([[0.5, 0.0]]), None)}
      >>> res = evaluate_shift(attacks, jnp.array([[3.0, 0.0]]), None, sets)
      >>> d = tempfile.mkdtemp()
      >>> _ = write_trust_report(d, res)
      >>> sorted(os.listdir(d))
      ['trust.json', 'trust.md']
    """
    report = build_trust_report(results, score_groups=score_groups, calibration=calibration)
    run_dir = os.fspath(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    report["plots_available"] = _plots.matplotlib_available()
    if score_groups is not None and report["plots_available"]:
        groups = _check_groups(score_groups, "score_groups")
        pngs = {"kde_all.png": render_score_kde_png(groups, title="Top-1 scores")}
        for name, samples in groups.items():
            if name == REFERENCE_GROUP:
                continue
            filename, i = f"kde_{_file_stem(name)}.png", 1
            while filename in pngs:  # two names with the same file stem
                filename, i = f"kde_{_file_stem(name)}_{i}.png", i + 1
            pair = {REFERENCE_GROUP: groups[REFERENCE_GROUP], name: samples}
            pngs[filename] = render_score_kde_png(
                pair, title=f"Top-1 scores: {REFERENCE_GROUP} vs {name}"
            )
        for filename, png in pngs.items():
            atomic.write_bytes(os.path.join(run_dir, filename), png)
        report["plots"] = list(pngs)
    payload = (json.dumps(report, indent=2, allow_nan=False) + "\n").encode("utf-8")
    atomic.write_bytes(os.path.join(run_dir, "trust.json"), payload)
    atomic.write_bytes(os.path.join(run_dir, "trust.md"), markdown_trust(report).encode("utf-8"))
    return report
