"""One run directory per evaluation: JSON summary, per-sample scores, Markdown table, plots.

An :class:`Evaluation` holds, per defense, the target model's train/test accuracy and, per
attack, the per-sample attack scores with the membership labels, plus the run metadata.
:func:`write_report` turns it into a run directory::

    RUN_DIR/
      scores.npz        per-sample scores and labels (key naming below), and the keep matrix
      evaluation.json   metadata needed to rebuild: the SHA-256 of scores.npz, defense/attack
                        names and order, accuracies, per-defense config, stats, timings and
                        models trained/loaded, num_models, num_queries, seeds, config,
                        timings, versions, multi-target summaries, and the report settings
                        (bootstrap resamples, seed)
      report.json       the summary (schema below)
      report.md         Markdown (hampjax.report.tables): run metadata, the main table,
                        per-attack intervals and counts
      roc_<defense>.png log-log ROC of every attack on that defense   (needs matplotlib)
      roc_<attack>.png  log-log ROC of that attack on every defense   (needs matplotlib)
      hist_<defense>_<attack>.png  member vs non-member histogram of a score or distance
                        (HAMP Figs. 9 and 12) for each attack of HISTOGRAMS the defense has
      manifest.json     written last: SHA-256 of scores.npz, evaluation.json, report.json and
                        report.md (:func:`verify_run_dir`, :func:`load_report`)

``scores.npz`` keys: ``"scores/<defense>/<attack>"`` (float64 ``[N]``, higher = member),
``"is_member/<defense>/<attack>"`` (bool ``[N]``), and ``"keep"`` (bool ``[M, N]``) when
the evaluation has a keep matrix. Read it with ``np.load(path, allow_pickle=False)``.

``report.json`` schema (all floats are Python floats; key names from
:mod:`hampjax.metrics.roc`)::

    {"format": "hampjax.report/1",
     "defenses": {<defense>: {
         "train_acc": float, "test_acc": float,
         "config": dict, "stats": {<name>: float}, "timings": {<phase>: float},
         "models_trained": int | null, "models_loaded": int | null,
         "attacks": {<attack>: {
             <every key of hampjax.metrics.summarize>:  "auc", "balanced_accuracy",
                 "attacker_advantage", "tpr@0%fpr", "tpr@0.001%fpr", "tpr@0.01%fpr",
                 "tpr@0.1%fpr", "tpr@1%fpr", "tnr@0.1%fnr", "<reading>/below_resolution"
                 (bool, target rate below 1/N), "num_members", "num_nonmembers",
                 "min_resolvable_fpr", "min_resolvable_fnr", "reading",
             "intervals": {<metric>: {"estimate", "low", "high"}}   # see below
         }},
         "max_<metric>": float, "max_<metric>/attack": str,   # for every metric, e.g.
                                     # "max_tpr@0.1%fpr", "max_tnr@0.1%fnr", "max_auc"
         "multi_target": dict,       # DefenseResult.multi_target ({} for one target)
         "plots": {"roc": "roc_<defense>.png", "histograms": {<attack>: file}} | {}
     }},
     "plots": [file, ...],           # every PNG written with the report ([] without plots)
     "run": {"num_models", "num_queries", "seeds", "config", "config_hash", "versions",
             "timings"},
     "settings": {"fprs", "fnrs", "reading", "metrics",
                  "bootstrap": {"resamples", "seed", "confidence", "stratified"}}}

Metrics are ``"auc"``, ``"balanced_accuracy"``, ``"attacker_advantage"`` and every TPR/TNR
reading. Intervals are 95% stratified percentile bootstrap intervals for every metric
(empty when ``bootstrap_resamples=0``); each (defense, attack) pair draws its resamples from
``np.random.default_rng(seed)``, so an interval equals
``hampjax.metrics.bootstrap_interval(metric, scores, labels, seed=seed,
num_resamples=bootstrap_resamples)``. The maximum over attacks takes the first attack in
order on ties.

:func:`rebuild` recomputes ``report.json``, ``report.md`` and the plots from
``evaluation.json`` and ``scores.npz`` alone (no model, no accelerator) and reproduces
``report.json`` exactly: the timings and versions saved with the run are kept. From a shell:
``python -m hampjax.report.rebuild RUN_DIR``. A kill between two writes is detected:
:func:`load_evaluation` refuses a ``scores.npz`` whose hash is not the one ``evaluation.json``
recorded, and :func:`verify_run_dir` / :func:`load_report` refuse report files that
``manifest.json`` does not match (run ``rebuild``). Corrupt or truncated files raise
``ValueError`` naming the file and how to recover.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from hampjax import atomic, validation
from hampjax.metrics import bootstrap_summary, summarize, summary_metric_keys
from hampjax.report import plots as _plots
from hampjax.report.results import (
    AttackScores,
    DefenseResult,
    Evaluation,
    collect_versions,
    config_hash,
)
from hampjax.report.tables import REPORT_FORMAT, markdown_document

__all__ = [
    "FPRS",
    "FNRS",
    "HISTOGRAMS",
    "AttackScores",
    "DefenseResult",
    "Evaluation",
    "build_report",
    "collect_versions",
    "config_hash",
    "load_evaluation",
    "load_report",
    "plot_files",
    "rebuild",
    "verify_run_dir",
    "write_report",
]

EVALUATION_FORMAT = "hampjax.evaluation/2"
_EVALUATION_FORMATS = ("hampjax.evaluation/1", EVALUATION_FORMAT)  # /1: no per-defense extras
MANIFEST_FORMAT = "hampjax.manifest/1"
FPRS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
"""Target FPRs of the TPR readings in every report (0%, 0.001%, 0.01%, 0.1%, 1%)."""
FNRS = (1e-3,)
"""Target FNRs of the TNR readings in every report (0.1%)."""
CONFIDENCE = 0.95
_SOURCES = ("scores.npz", "evaluation.json")
HISTOGRAMS = {
    "confidence": "Confidence in the true class p_y",
    "global_threshold": "Logit-scaled confidence log(p_y / (1 - p_y))",
    "label_only_boundary": "L2 distance to the decision boundary",
}
"""Attacks drawn as member / non-member histograms (``hist_<defense>_<attack>.png``) when a
defense has them, with their x-axis labels: score distributions (HAMP Fig. 9) and the
perturbation distance of the boundary attack (Fig. 12)."""
_OUTPUTS = ("report.json", "report.md")


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# The report dict.
# --------------------------------------------------------------------------------------------


def _metric_keys() -> list[str]:
    return summary_metric_keys(FPRS, FNRS)


def _bootstrap(attack: AttackScores, *, num_resamples: int, seed: int) -> dict[str, dict[str, float]]:
    """Stratified percentile bootstrap of every metric (:func:`hampjax.metrics.bootstrap_summary`)."""
    if num_resamples == 0:
        return {}
    intervals = bootstrap_summary(attack.scores, attack.is_member, fprs=FPRS, fnrs=FNRS,
                                  seed=seed, num_resamples=num_resamples, confidence=CONFIDENCE)
    return {k: i._asdict() for k, i in intervals.items()}


def _run_timings(evaluation: Evaluation) -> dict[str, float]:
    timings = dict(evaluation.timings)
    for d_name, result in evaluation.defenses.items():
        timings.update({f"{d_name}/{phase}": t for phase, t in result.timings.items()})
    return timings


def plot_files(evaluation: Evaluation) -> dict[str, Any]:
    """The PNG files a report with plots writes, by defense and in total.

    Returns:
      ``{"defenses": {<defense>: {"roc": file, "histograms": {<attack>: file}}},
      "files": [file, ...]}``: ``roc_<defense>.png``, ``hist_<defense>_<attack>.png`` for the
      defense's attacks in :data:`HISTOGRAMS`, then ``roc_<attack>.png`` for every attack.

    Example:
      >>> ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"confidence": ([0.9, 0.1], [1, 0])})},
      ...                 num_models=1, num_queries=1, seeds={}, config={}, timings={})
      >>> plot_files(ev)["files"]
      ['roc_none.png', 'hist_none_confidence.png', 'roc_confidence.png']
    """
    per_defense, files, attacks = {}, [], []
    for d_name, result in evaluation.defenses.items():
        hists = {a: f"hist_{d_name}_{a}.png" for a in HISTOGRAMS if a in result.attacks}
        per_defense[d_name] = {"roc": f"roc_{d_name}.png", "histograms": hists}
        files += [f"roc_{d_name}.png", *hists.values()]
        attacks += [a for a in result.attacks if a not in attacks]
    return {"defenses": per_defense, "files": files + [f"roc_{a}.png" for a in attacks]}


def build_report(evaluation: Evaluation, *, bootstrap_resamples: int, seed: int,
                 plots: bool = False) -> dict[str, Any]:
    """The ``report.json`` dict of an evaluation (pure: no files; schema in the module doc).

    Args:
      evaluation: the :class:`Evaluation`.
      bootstrap_resamples: bootstrap resamples per (defense, attack), ``>= 0``; 0 skips
        the intervals (``"intervals"`` is then ``{}``).
      seed: integer seed ``>= 0`` of the bootstrap (saved in the report). Required.
      plots: list the plot files (:func:`plot_files`) as written with the report.

    Returns:
      The report dict (JSON-ready: str, bool, int, float, lists and dicts only).

    Raises:
      ValueError: if ``evaluation`` is not an :class:`Evaluation`, ``bootstrap_resamples``
        is negative or ``seed`` is not a non-negative integer.

    Example:
      >>> ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...                 num_models=1, num_queries=1, seeds={}, config={}, timings={})
      >>> r = build_report(ev, bootstrap_resamples=0, seed=0)
      >>> r["defenses"]["none"]["attacks"]["loss"]["auc"], r["defenses"]["none"]["max_auc/attack"]
      (1.0, 'loss')
    """
    if not isinstance(evaluation, Evaluation):
        raise ValueError(f"evaluation must be an Evaluation, got {type(evaluation).__name__}")
    bootstrap_resamples = validation.check_positive_int("bootstrap_resamples", bootstrap_resamples, minimum=0)
    seed = validation.check_positive_int("seed", seed, minimum=0)
    keys = _metric_keys()
    files = plot_files(evaluation) if plots else {"defenses": {}, "files": []}
    defenses: dict[str, Any] = {}
    for d_name, result in evaluation.defenses.items():
        attacks = {}
        for a_name, attack in result.attacks.items():
            summary = summarize(attack.scores, attack.is_member, fprs=FPRS, fnrs=FNRS)
            summary["intervals"] = _bootstrap(attack, num_resamples=bootstrap_resamples, seed=seed)
            attacks[a_name] = summary
        entry: dict[str, Any] = {
            "train_acc": result.train_acc,
            "test_acc": result.test_acc,
            "config": result.config,
            "stats": dict(result.stats),
            "timings": dict(result.timings),
            "models_trained": result.models_trained,
            "models_loaded": result.models_loaded,
            "attacks": attacks,
        }
        for k in keys:
            best = max(attacks, key=lambda a, k=k: attacks[a][k])  # first maximiser in order
            entry[f"max_{k}"] = attacks[best][k]
            entry[f"max_{k}/attack"] = best
        entry["multi_target"] = result.multi_target
        entry["plots"] = files["defenses"].get(d_name, {})
        defenses[d_name] = entry
    return {
        "format": REPORT_FORMAT,
        "defenses": defenses,
        "plots": files["files"],
        "run": {
            "num_models": evaluation.num_models,
            "num_queries": evaluation.num_queries,
            "seeds": dict(evaluation.seeds),
            "config": evaluation.config,
            "config_hash": config_hash(evaluation.config),
            "versions": dict(evaluation.versions),
            "timings": _run_timings(evaluation),
        },
        "settings": {
            "fprs": list(FPRS),
            "fnrs": list(FNRS),
            "reading": "strict (FPR < t; a target of 0 is read as FPR <= 0)",
            "metrics": keys,
            "bootstrap": {
                "resamples": bootstrap_resamples,
                "seed": seed,
                "confidence": CONFIDENCE,
                "stratified": True,
            },
        },
    }


# --------------------------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------------------------


def _check_run_dir(run_dir: Any) -> str:
    if not isinstance(run_dir, (str, os.PathLike)):
        raise ValueError(f"run_dir must be a path (str or os.PathLike), got {run_dir!r}")
    return os.fspath(run_dir)


def _write_plots(run_dir: str, evaluation: Evaluation) -> None:
    """Render and write every file of :func:`plot_files`."""
    files = plot_files(evaluation)
    renders: dict[str, Any] = {}
    attack_curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for d_name, result in evaluation.defenses.items():
        curves = {a: (s.scores, s.is_member) for a, s in result.attacks.items()}
        renders[f"roc_{d_name}.png"] = functools.partial(
            _plots.render_roc_png, curves, title=f"Defense: {d_name}")
        for a, filename in files["defenses"][d_name]["histograms"].items():
            renders[filename] = functools.partial(
                _plots.render_score_histogram_png, result.attacks[a].scores,
                result.attacks[a].is_member, title=f"{d_name}: {a}", xlabel=HISTOGRAMS[a])
        for a, s in result.attacks.items():
            attack_curves.setdefault(a, {})[d_name] = (s.scores, s.is_member)
    for a, curves in attack_curves.items():
        renders[f"roc_{a}.png"] = functools.partial(_plots.render_roc_png, curves, title=f"Attack: {a}")
    for filename in files["files"]:
        atomic.write_bytes(os.path.join(run_dir, filename), renders[filename]())


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_outputs(run_dir: str, evaluation: Evaluation, *, bootstrap_resamples: int, seed: int, plots: bool) -> dict:
    if plots and not _plots.matplotlib_available():
        warnings.warn(
            "matplotlib is not installed: ROC plots and histograms are skipped "
            "(pip install 'hampjax[plots]')", UserWarning, stacklevel=3)
        plots = False
    report = build_report(evaluation, bootstrap_resamples=bootstrap_resamples, seed=seed, plots=plots)
    atomic.write_bytes(os.path.join(run_dir, "report.json"), _json_bytes(report))
    atomic.write_bytes(os.path.join(run_dir, "report.md"), markdown_document(report).encode("utf-8"))
    if plots:
        _write_plots(run_dir, evaluation)
    # Last: the manifest names the exact sources the report files were computed from.
    manifest = {
        "format": MANIFEST_FORMAT,
        "sha256": {f: _sha256_file(os.path.join(run_dir, f)) for f in _SOURCES + _OUTPUTS},
    }
    atomic.write_bytes(os.path.join(run_dir, "manifest.json"), _json_bytes(manifest))
    return report


def write_report(
    run_dir: str | os.PathLike,
    evaluation: Evaluation,
    *,
    bootstrap_resamples: int = 200,
    seed: int,
    plots: bool = True,
) -> dict[str, Any]:
    """Write a run directory (see the module docstring) and return the report dict.

    Every file is written atomically (temp file in ``run_dir``, then rename), the sources
    (``scores.npz``, then ``evaluation.json`` holding its SHA-256) first and
    ``manifest.json`` (the SHA-256 of the sources and of ``report.json`` / ``report.md``)
    last, so a write interrupted at any point is detected by :func:`load_evaluation` and
    :func:`verify_run_dir`. ``run_dir`` is created if needed; files of an earlier report
    there are replaced. When matplotlib is missing the plots are skipped with a
    ``UserWarning``.

    Args:
      run_dir: the run directory.
      evaluation: the :class:`Evaluation`.
      bootstrap_resamples: bootstrap resamples per (defense, attack), ``>= 0`` (0 skips
        the intervals). Cost: one pass over ``N`` sorted scores per resample.
      seed: integer seed ``>= 0`` of the bootstrap. Required (saved in the report).
      plots: write the ROC PNGs and the histograms (:func:`plot_files`, listed in the
        report's ``"plots"``).

    Returns:
      The report dict, equal to ``json.load(open(run_dir / "report.json"))``.

    Raises:
      ValueError: on an invalid argument (see :func:`build_report`).

    Example:
      >>> import tempfile
      >>> ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...                 num_models=1, num_queries=1, seeds={}, config={}, timings={})
      >>> with tempfile.TemporaryDirectory() as d:
      ...     r = write_report(d, ev, bootstrap_resamples=0, seed=0, plots=False)
      ...     sorted(os.listdir(d))
      ['evaluation.json', 'manifest.json', 'report.json', 'report.md', 'scores.npz']
    """
    run_dir = _check_run_dir(run_dir)
    if not isinstance(evaluation, Evaluation):
        raise ValueError(f"evaluation must be an Evaluation, got {type(evaluation).__name__}")
    bootstrap_resamples = validation.check_positive_int("bootstrap_resamples", bootstrap_resamples, minimum=0)
    seed = validation.check_positive_int("seed", seed, minimum=0)
    os.makedirs(run_dir, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for d_name, result in evaluation.defenses.items():
        for a_name, attack in result.attacks.items():
            arrays[f"scores/{d_name}/{a_name}"] = attack.scores
            arrays[f"is_member/{d_name}/{a_name}"] = attack.is_member
    if evaluation.keep is not None:
        arrays["keep"] = evaluation.keep
    scores_bytes = _npz_bytes(arrays)
    meta = {
        "format": EVALUATION_FORMAT,
        "scores_sha256": hashlib.sha256(scores_bytes).hexdigest(),
        "defenses": [
            {"name": d, "train_acc": r.train_acc, "test_acc": r.test_acc, "attacks": list(r.attacks),
             "config": r.config, "stats": dict(r.stats), "timings": dict(r.timings),
             "models_trained": r.models_trained, "models_loaded": r.models_loaded,
             "multi_target": r.multi_target}
            for d, r in evaluation.defenses.items()
        ],
        "num_models": evaluation.num_models,
        "num_queries": evaluation.num_queries,
        "seeds": dict(evaluation.seeds),
        "config": evaluation.config,
        "timings": dict(evaluation.timings),
        "versions": dict(evaluation.versions),
        "has_keep": evaluation.keep is not None,
        "report_settings": {"bootstrap_resamples": bootstrap_resamples, "seed": seed},
    }
    atomic.write_bytes(os.path.join(run_dir, "scores.npz"), scores_bytes)
    atomic.write_bytes(os.path.join(run_dir, "evaluation.json"), _json_bytes(meta))
    return _write_outputs(run_dir, evaluation, bootstrap_resamples=bootstrap_resamples, seed=seed, plots=plots)


def _rerun_hint(run_dir: str) -> str:
    return (f"rerun the evaluation that wrote {run_dir!r} (finished training and attack "
            "families are loaded from its run directory, so only the report is recomputed)")


def _load_sources(run_dir: str) -> tuple[Evaluation, dict[str, int]]:
    missing = [f for f in _SOURCES if not os.path.isfile(os.path.join(run_dir, f))]
    if missing:
        raise ValueError(
            f"run_dir must contain {' and '.join(_SOURCES)} written by write_report; "
            f"{run_dir!r} lacks {', '.join(missing)}"
        )
    recover = _rerun_hint(run_dir)
    meta_path, scores_path = (os.path.join(run_dir, f) for f in _SOURCES[::-1])
    meta = atomic.read_json(meta_path, recover=recover)
    if not isinstance(meta, dict) or meta.get("format") not in _EVALUATION_FORMATS:
        raise ValueError(f"{meta_path} must have format {EVALUATION_FORMAT!r}; {recover}")
    recorded = meta.get("scores_sha256")
    if recorded is not None and recorded != _sha256_file(scores_path):
        raise ValueError(
            f"{scores_path} is not the one {meta_path} was written with (its SHA-256 differs: "
            f"an interrupted write_report or a file copied from another run); {recover}")
    arrays = atomic.load_npz(scores_path, recover=recover)

    def array(key: str) -> np.ndarray:
        if key not in arrays:
            raise ValueError(f"{scores_path} lacks {key!r} listed in evaluation.json; {recover}")
        return arrays[key]

    defenses = {}
    for d in meta["defenses"]:
        attacks = {
            a: AttackScores(array(f"scores/{d['name']}/{a}"), array(f"is_member/{d['name']}/{a}"))
            for a in d["attacks"]
        }
        defenses[d["name"]] = DefenseResult(
            d["train_acc"], d["test_acc"], attacks, config=d.get("config", {}),
            stats=d.get("stats", {}), timings=d.get("timings", {}),
            models_trained=d.get("models_trained"), models_loaded=d.get("models_loaded"),
            multi_target=d.get("multi_target", {}))
    evaluation = Evaluation(
        defenses=defenses,
        num_models=meta["num_models"],
        num_queries=meta["num_queries"],
        seeds=meta["seeds"],
        config=meta["config"],
        timings=meta["timings"],
        keep=array("keep") if meta["has_keep"] else None,
        versions=meta["versions"],
    )
    return evaluation, meta["report_settings"]


def verify_run_dir(run_dir: str | os.PathLike) -> None:
    """Check that a run directory's report files were computed from its saved scores.

    ``manifest.json`` (written last by :func:`write_report` and :func:`rebuild`) records the
    SHA-256 of ``scores.npz``, ``evaluation.json``, ``report.json`` and ``report.md``. A
    kill between two writes leaves newer sources next to an older report: the hashes then
    differ and this function says which file and what to do.

    Args:
      run_dir: a run directory written by :func:`write_report`.

    Raises:
      ValueError: if ``manifest.json`` is missing or unreadable, or a file is missing or
        differs from its recorded hash (the message names it and says to run
        ``python -m hampjax.report.rebuild RUN_DIR``).

    Example:
      >>> import tempfile
      >>> ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...                 num_models=1, num_queries=1, seeds={}, config={}, timings={})
      >>> with tempfile.TemporaryDirectory() as d:
      ...     _ = write_report(d, ev, bootstrap_resamples=0, seed=0, plots=False)
      ...     verify_run_dir(d)  # no error: consistent
    """
    run_dir = _check_run_dir(run_dir)
    fix = f"run `python -m hampjax.report.rebuild {run_dir}` to recompute the report from the saved scores"
    path = os.path.join(run_dir, "manifest.json")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing: the report in {run_dir!r} was not completely "
                         f"written (or predates manifests); {fix}")
    manifest = atomic.read_json(path, recover=fix)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path} must have format {MANIFEST_FORMAT!r}; {fix}")
    for name in _SOURCES + _OUTPUTS:
        file_path = os.path.join(run_dir, name)
        if not os.path.isfile(file_path):
            raise ValueError(f"{file_path} is missing (listed in manifest.json); {fix}")
        if manifest["sha256"].get(name) != _sha256_file(file_path):
            raise ValueError(
                f"{file_path} differs from the one manifest.json records: the report files "
                f"were not computed from the current {_SOURCES[0]} (an interrupted write?); {fix}")


def load_report(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``report.json`` dict of a run directory, after :func:`verify_run_dir`.

    Args:
      run_dir: a run directory written by :func:`write_report`.

    Returns:
      The report dict.

    Raises:
      ValueError: as :func:`verify_run_dir` (stale or incomplete report: rebuild it).

    Example:
      >>> import tempfile
      >>> ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...                 num_models=1, num_queries=1, seeds={}, config={}, timings={})
      >>> with tempfile.TemporaryDirectory() as d:
      ...     r = write_report(d, ev, bootstrap_resamples=0, seed=0, plots=False)
      ...     load_report(d) == r
      True
    """
    run_dir = _check_run_dir(run_dir)
    verify_run_dir(run_dir)
    return atomic.read_json(os.path.join(run_dir, "report.json"),
                           recover=f"run `python -m hampjax.report.rebuild {run_dir}`")


def load_evaluation(run_dir: str | os.PathLike) -> Evaluation:
    """Read the :class:`Evaluation` saved by :func:`write_report` (no pickles are loaded).

    The saved versions and timings are kept, not re-collected.

    Args:
      run_dir: a run directory with ``evaluation.json`` and ``scores.npz``.

    Returns:
      The :class:`Evaluation`.

    Raises:
      ValueError: if ``run_dir`` lacks either file, either is corrupt or truncated, or
        ``scores.npz`` is not the one ``evaluation.json`` was written with (an interrupted
        write); the message names the file and says how to recover.

    Example:
      >>> import tempfile
      >>> ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...                 num_models=1, num_queries=1, seeds={}, config={}, timings={})
      >>> with tempfile.TemporaryDirectory() as d:
      ...     _ = write_report(d, ev, bootstrap_resamples=0, seed=0, plots=False)
      ...     load_evaluation(d).defenses["none"].attacks["loss"].scores.tolist()
      [0.9, 0.1]
    """
    return _load_sources(_check_run_dir(run_dir))[0]


def rebuild(run_dir: str | os.PathLike, *, plots: bool = True) -> dict[str, Any]:
    """Rewrite ``report.json``, ``report.md`` and the plots from the saved scores.

    Needs only ``evaluation.json`` and ``scores.npz`` (no model, no retraining) and uses the
    saved bootstrap settings, versions and timings, so ``report.json`` comes out identical;
    then rewrites ``manifest.json``. This is the fix for a stale report that
    :func:`verify_run_dir` reports. Shell: ``python -m hampjax.report.rebuild RUN_DIR``.

    Args:
      run_dir: a run directory written by :func:`write_report`.
      plots: rewrite the ROC PNGs and histograms (skipped with a warning if matplotlib is
        missing); ``report.json`` lists them, so it is reproduced with the same setting.

    Returns:
      The report dict.

    Raises:
      ValueError: as :func:`load_evaluation`.

    Example:
      >>> import tempfile
      >>> ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...                 num_models=1, num_queries=1, seeds={}, config={}, timings={})
      >>> with tempfile.TemporaryDirectory() as d:
      ...     r = write_report(d, ev, bootstrap_resamples=5, seed=0, plots=False)
      ...     rebuild(d, plots=False) == r
      True
    """
    run_dir = _check_run_dir(run_dir)
    evaluation, settings = _load_sources(run_dir)
    return _write_outputs(
        run_dir,
        evaluation,
        bootstrap_resamples=settings["bootstrap_resamples"],
        seed=settings["seed"],
        plots=bool(plots),
    )
