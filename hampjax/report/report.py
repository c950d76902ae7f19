"""One run directory per evaluation: JSON summary, per-sample scores, Markdown table, plots.

An :class:`Evaluation` holds, per defense, the target model's train/test accuracy and, per
attack, the per-sample attack scores with the membership labels, plus the run metadata.
:func:`write_report` turns it into a run directory::

    RUN_DIR/
      evaluation.json   metadata needed to rebuild: defense/attack names and order,
                        accuracies, num_models, num_queries, seeds, config, timings,
                        versions, and the report settings (bootstrap resamples, seed)
      scores.npz        per-sample scores and labels (key naming below), and the keep matrix
      report.json       the summary (schema below)
      report.md         Markdown (hampjax.report.tables): run metadata, the main table,
                        per-attack intervals and counts
      roc_<defense>.png log-log ROC of every attack on that defense   (needs matplotlib)
      roc_<attack>.png  log-log ROC of that attack on every defense   (needs matplotlib)

``scores.npz`` keys: ``"scores/<defense>/<attack>"`` (float64 ``[N]``, higher = member),
``"is_member/<defense>/<attack>"`` (bool ``[N]``), and ``"keep"`` (bool ``[M, N]``) when
the evaluation has a keep matrix. Read it with ``np.load(path, allow_pickle=False)``.

``report.json`` schema (all floats are Python floats; key names from
:mod:`hampjax.metrics.roc`)::

    {"format": "hampjax.report/1",
     "defenses": {<defense>: {
         "train_acc": float, "test_acc": float,
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
     }},
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
``python -m hampjax.report.rebuild RUN_DIR``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hampjax import atomic, validation
from hampjax.metrics.roc import (  # private count readers: one sort for all resamples
    _advantage,
    _auc,
    _Counts,
    _tnr_at_fnr,
    _tpr_at_fpr,
    summarize,
    tnr_at_fnr_key,
    tpr_at_fpr_key,
)
from hampjax.report import plots as _plots
from hampjax.report.tables import REPORT_FORMAT, markdown_document
from hampjax.training.membership import check_keep

__all__ = [
    "FPRS",
    "FNRS",
    "AttackScores",
    "DefenseResult",
    "Evaluation",
    "build_report",
    "collect_versions",
    "config_hash",
    "load_evaluation",
    "rebuild",
    "write_report",
]

EVALUATION_FORMAT = "hampjax.evaluation/1"
FPRS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
"""Target FPRs of the TPR readings in every report (0%, 0.001%, 0.01%, 0.1%, 1%)."""
FNRS = (1e-3,)
"""Target FNRs of the TNR readings in every report (0.1%)."""
CONFIDENCE = 0.95
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "numpy", "hampjax")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,-]*$")
_FILES = ("evaluation.json", "scores.npz")


# --------------------------------------------------------------------------------------------
# Small helpers: names, JSON, atomic writes.
# --------------------------------------------------------------------------------------------


def _check_name(what: str, name: Any) -> str:
    """A defense/attack name must be usable in file names and npz keys."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{what} must be a non-empty string of letters, digits and '_.+=,-' not starting "
            f"with a punctuation mark (it is used in file names), got {name!r}"
        )
    return name


def _canonical_json(value: Any, *, name: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be JSON-serializable (finite numbers, str, lists, dicts): {err}") from None


def _as_plain_config(config: Any) -> dict[str, Any]:
    if hasattr(config, "to_dict"):
        config = config.to_dict()  # ml_collections.ConfigDict
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a mapping (dict or ConfigDict), got {type(config).__name__}")
    return json.loads(_canonical_json(dict(config), name="config"))


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``config`` (sorted keys, no whitespace).

    Tuples and lists hash alike (both are JSON arrays), so a config reloaded from JSON has
    the hash of the original.

    Args:
      config: a JSON-serializable mapping (or an ``ml_collections.ConfigDict``).

    Returns:
      The hex digest (64 characters).

    Raises:
      ValueError: if ``config`` is not a mapping or not JSON-serializable.

    Example:
      >>> config_hash({"b": (1, 2), "a": 0}) == config_hash({"a": 0, "b": [1, 2]})
      True
    """
    plain = _as_plain_config(config)
    return hashlib.sha256(_canonical_json(plain, name="config").encode("ascii")).hexdigest()


def collect_versions() -> dict[str, str]:
    """Versions of Python and of jax, jaxlib, flax, optax, numpy and hampjax.

    Read from installed package metadata (nothing is imported); a package that is not
    installed reads ``"not installed"``.

    Returns:
      ``{"python": ..., "jax": ..., ...}``, all strings.

    Example:
      >>> sorted(collect_versions())
      ['flax', 'hampjax', 'jax', 'jaxlib', 'numpy', 'optax', 'python']
    """
    out = {"python": platform.python_version()}
    for package in _VERSIONED:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# In-memory evaluation.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class AttackScores:
    """Per-sample scores of one attack on one defended target model.

    Attributes:
      scores: float64 ``[N]`` finite attack scores, higher = more likely member.
      is_member: bool ``[N]``, True for members; both classes present.

    Raises:
      ValueError: on non-1-D or non-finite scores, non-binary labels, a missing class, or
        different lengths.

    Example:
      >>> a = AttackScores([0.9, 0.1], [1, 0])
      >>> a.scores.dtype, a.is_member.tolist()
      (dtype('float64'), [True, False])
    """

    scores: np.ndarray
    is_member: np.ndarray

    def __post_init__(self):
        scores = np.asarray(self.scores)
        labels = np.asarray(self.is_member)
        validation.check_ndim("scores", scores, 1)
        validation.check_binary_labels(labels, name="is_member")
        validation.check_same_shape(("scores", "is_member"), scores, labels)
        validation.check_finite("scores", scores)
        object.__setattr__(self, "scores", scores.astype(np.float64))
        object.__setattr__(self, "is_member", labels == 1)


@dataclasses.dataclass(frozen=True, eq=False)
class DefenseResult:
    """One defended target model: its accuracies and every attack's per-sample scores.

    Attributes:
      train_acc: accuracy on the target's training set, in ``[0, 1]``.
      test_acc: accuracy on held-out data, in ``[0, 1]``.
      attacks: mapping ``attack name -> AttackScores`` (a ``(scores, is_member)`` pair is
        converted), at least one; names use letters, digits and ``_.+=,-`` (``gamma=0.8``).
        Order is kept.

    Raises:
      ValueError: on accuracies outside ``[0, 1]``, no attacks, an invalid attack name or
        invalid scores.

    Example:
      >>> d = DefenseResult(0.99, 0.8, {"loss": ([0.9, 0.1], [1, 0])})
      >>> list(d.attacks)
      ['loss']
    """

    train_acc: float
    test_acc: float
    attacks: Mapping[str, AttackScores]

    def __post_init__(self):
        for name in ("train_acc", "test_acc"):
            value = getattr(self, name)
            validation.check_scalar(name, value, allowed="[0, 1]")
            validation.check_in_range(name, value, 0.0, 1.0, high_inclusive=True)
            object.__setattr__(self, name, float(value))
        if not isinstance(self.attacks, Mapping) or not self.attacks:
            raise ValueError(
                f"attacks must be a non-empty mapping attack name -> AttackScores, got {self.attacks!r}"
            )
        attacks = {}
        for name, value in self.attacks.items():
            _check_name("attack name", name)
            if isinstance(value, AttackScores):
                attacks[name] = value
            elif isinstance(value, (tuple, list)) and len(value) == 2:
                attacks[name] = AttackScores(*value)
            else:
                raise ValueError(
                    f"attacks[{name!r}] must be AttackScores or a pair (scores [N], is_member [N]), "
                    f"got {type(value).__name__}"
                )
        object.__setattr__(self, "attacks", attacks)


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation:
    """Everything a report needs: per-defense results plus run metadata.

    Attributes:
      defenses: mapping ``defense name -> DefenseResult``, at least one, order kept. A
        defense name may not equal an attack name (their plot files would collide).
      num_models: number of models trained for the evaluation (targets and shadows), ``>= 1``.
      num_queries: queries (augmentations) per example, ``>= 1``.
      seeds: mapping ``what -> integer seed >= 0`` (e.g. ``{"keep": 0, "train": 1}``).
      config: JSON-serializable mapping (or ConfigDict); stored in its JSON form.
      timings: mapping ``phase -> seconds`` (finite, ``>= 0``).
      keep: optional bool keep matrix ``[M, N]`` saved in ``scores.npz``.
      versions: package versions; ``None`` collects them now (:func:`collect_versions`).

    Raises:
      ValueError: on any invalid field (named in the message).

    Example:
      >>> ev = Evaluation(
      ...     defenses={"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...     num_models=1, num_queries=1, seeds={"train": 0}, config={"lr": 0.1},
      ...     timings={"train": 1.5})
      >>> sorted(ev.versions)[:2]
      ['flax', 'hampjax']
    """

    defenses: Mapping[str, DefenseResult]
    num_models: int
    num_queries: int
    seeds: Mapping[str, int]
    config: Mapping[str, Any]
    timings: Mapping[str, float]
    keep: np.ndarray | None = None
    versions: Mapping[str, str] | None = None

    def __post_init__(self):
        if not isinstance(self.defenses, Mapping) or not self.defenses:
            raise ValueError(
                f"defenses must be a non-empty mapping defense name -> DefenseResult, got {self.defenses!r}"
            )
        for name, result in self.defenses.items():
            _check_name("defense name", name)
            if not isinstance(result, DefenseResult):
                raise ValueError(f"defenses[{name!r}] must be a DefenseResult, got {type(result).__name__}")
        attack_names = {a for r in self.defenses.values() for a in r.attacks}
        clash = sorted(attack_names & set(self.defenses))
        if clash:
            raise ValueError(
                f"defense names must differ from attack names (plot files roc_<name>.png), "
                f"both use {clash}"
            )
        object.__setattr__(self, "defenses", dict(self.defenses))
        object.__setattr__(self, "num_models", validation.check_positive_int("num_models", self.num_models))
        object.__setattr__(self, "num_queries", validation.check_positive_int("num_queries", self.num_queries))
        if not isinstance(self.seeds, Mapping):
            raise ValueError(f"seeds must be a mapping name -> integer seed >= 0, got {self.seeds!r}")
        object.__setattr__(
            self,
            "seeds",
            {str(k): validation.check_positive_int(f"seeds[{k!r}]", v, minimum=0) for k, v in self.seeds.items()},
        )
        object.__setattr__(self, "config", _as_plain_config(self.config))
        if not isinstance(self.timings, Mapping):
            raise ValueError(f"timings must be a mapping phase -> seconds, got {self.timings!r}")
        timings = {}
        for k, v in self.timings.items():
            validation.check_scalar(f"timings[{k!r}]", v, allowed="[0, inf)")
            validation.check_nonnegative(f"timings[{k!r}]", v)
            timings[str(k)] = float(v)
        object.__setattr__(self, "timings", timings)
        if self.keep is not None:
            object.__setattr__(self, "keep", check_keep(self.keep))
        if self.versions is None:
            object.__setattr__(self, "versions", collect_versions())
        elif not isinstance(self.versions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.versions.items()
        ):
            raise ValueError(f"versions must be a mapping package -> version string, got {self.versions!r}")
        else:
            object.__setattr__(self, "versions", dict(self.versions))


# --------------------------------------------------------------------------------------------
# The report dict.
# --------------------------------------------------------------------------------------------


def _metric_keys() -> list[str]:
    return (
        ["auc", "balanced_accuracy", "attacker_advantage"]
        + [tpr_at_fpr_key(t) for t in FPRS]
        + [tnr_at_fnr_key(t) for t in FNRS]
    )


def _bootstrap(
    attack: AttackScores, keys: Sequence[str], *, num_resamples: int, seed: int
) -> dict[str, dict[str, float]]:
    """Stratified percentile bootstrap of every metric at once.

    Draws exactly as ``hampjax.metrics.bootstrap_interval(..., stratified=True)`` does with
    the same seed, so each interval equals the one that function gives for that metric.
    Instead of re-sorting every resample, the scores are sorted once and a resample is
    the vector of draw counts per example: its ROC in integer counts is a weighted
    cumulative sum along that one order. Examples not drawn only add repeated ROC points,
    which change no reading, so the values equal ``summarize`` on the resample exactly.
    """
    if num_resamples == 0:
        return {}
    s, member = attack.scores, attack.is_member
    estimate = summarize(s, member, fprs=FPRS, fnrs=FNRS)
    order = np.argsort(s, kind="stable")[::-1]
    s_sorted, member_sorted = s[order], member[order]
    ends = np.append(np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), s.size - 1)
    member_idx, nonmember_idx = np.flatnonzero(member), np.flatnonzero(~member)
    num_pos, num_neg = member_idx.size, nonmember_idx.size
    zero = np.zeros(1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    values = np.empty((num_resamples, len(keys)), dtype=np.float64)
    for r in range(num_resamples):
        idx = np.concatenate(
            [
                rng.choice(member_idx, size=num_pos, replace=True),
                rng.choice(nonmember_idx, size=num_neg, replace=True),
            ]
        )
        weights = np.bincount(idx, minlength=s.size)[order]
        tps = np.cumsum(np.where(member_sorted, weights, 0), dtype=np.int64)[ends]
        fps = np.cumsum(weights, dtype=np.int64)[ends] - tps
        counts = _Counts(
            fps=np.concatenate([zero, fps]),
            tps=np.concatenate([zero, tps]),
            thresholds=np.empty(0),  # unused by the readings
            num_pos=num_pos,
            num_neg=num_neg,
        )
        advantage = _advantage(counts)
        resampled = {
            "auc": _auc(counts),
            "balanced_accuracy": 0.5 * (1.0 + advantage),
            "attacker_advantage": advantage,
        }
        for t in FPRS:  # strict reading for t > 0, as summarize(strict=True)
            resampled[tpr_at_fpr_key(t)] = _tpr_at_fpr(counts, t, t > 0.0)
        for t in FNRS:
            resampled[tnr_at_fnr_key(t)] = _tnr_at_fnr(counts, t, t > 0.0)
        values[r] = [resampled[k] for k in keys]
    alpha = 1.0 - CONFIDENCE
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return {
        k: {"estimate": float(estimate[k]), "low": float(low[i]), "high": float(high[i])}
        for i, k in enumerate(keys)
    }


def build_report(evaluation: Evaluation, *, bootstrap_resamples: int, seed: int) -> dict[str, Any]:
    """The ``report.json`` dict of an evaluation (pure: no files; schema in the module doc).

    Args:
      evaluation: the :class:`Evaluation`.
      bootstrap_resamples: bootstrap resamples per (defense, attack), ``>= 0``; 0 skips
        the intervals (``"intervals"`` is then ``{}``).
      seed: integer seed ``>= 0`` of the bootstrap (saved in the report). Required.

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
    defenses: dict[str, Any] = {}
    for d_name, result in evaluation.defenses.items():
        attacks = {}
        for a_name, attack in result.attacks.items():
            summary = summarize(attack.scores, attack.is_member, fprs=FPRS, fnrs=FNRS)
            summary["intervals"] = _bootstrap(attack, keys, num_resamples=bootstrap_resamples, seed=seed)
            attacks[a_name] = summary
        entry: dict[str, Any] = {"train_acc": result.train_acc, "test_acc": result.test_acc, "attacks": attacks}
        for k in keys:
            best = max(attacks, key=lambda a, k=k: attacks[a][k])  # first maximiser in order
            entry[f"max_{k}"] = attacks[best][k]
            entry[f"max_{k}/attack"] = best
        defenses[d_name] = entry
    return {
        "format": REPORT_FORMAT,
        "defenses": defenses,
        "run": {
            "num_models": evaluation.num_models,
            "num_queries": evaluation.num_queries,
            "seeds": dict(evaluation.seeds),
            "config": evaluation.config,
            "config_hash": config_hash(evaluation.config),
            "versions": dict(evaluation.versions),
            "timings": dict(evaluation.timings),
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


def _write_plots(run_dir: str, evaluation: Evaluation) -> list[str]:
    if not _plots.matplotlib_available():
        warnings.warn(
            "matplotlib is not installed: ROC plots are skipped (pip install 'hampjax[plots]')",
            UserWarning,
            stacklevel=4,
        )
        return []
    written = []
    jobs: list[tuple[str, dict[str, tuple[np.ndarray, np.ndarray]], str]] = []
    attack_curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for d_name, result in evaluation.defenses.items():
        curves = {a: (s.scores, s.is_member) for a, s in result.attacks.items()}
        jobs.append((f"roc_{d_name}.png", curves, f"Defense: {d_name}"))
        for a, s in result.attacks.items():
            attack_curves.setdefault(a, {})[d_name] = (s.scores, s.is_member)
    for a, curves in attack_curves.items():
        jobs.append((f"roc_{a}.png", curves, f"Attack: {a}"))
    for filename, curves, title in jobs:
        atomic.write_bytes(os.path.join(run_dir, filename), _plots.render_roc_png(curves, title=title))
        written.append(filename)
    return written


def _write_outputs(run_dir: str, evaluation: Evaluation, *, bootstrap_resamples: int, seed: int, plots: bool) -> dict:
    report = build_report(evaluation, bootstrap_resamples=bootstrap_resamples, seed=seed)
    atomic.write_bytes(os.path.join(run_dir, "report.json"), _json_bytes(report))
    atomic.write_bytes(os.path.join(run_dir, "report.md"), markdown_document(report).encode("utf-8"))
    if plots:
        _write_plots(run_dir, evaluation)
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
    (``scores.npz``, ``evaluation.json``) first. ``run_dir`` is created if needed; files
    of an earlier report there are replaced. When matplotlib is missing the plots are
    skipped with a ``UserWarning``.

    Args:
      run_dir: the run directory.
      evaluation: the :class:`Evaluation`.
      bootstrap_resamples: bootstrap resamples per (defense, attack), ``>= 0`` (0 skips
        the intervals). Cost: one sort of ``N`` scores per resample.
      seed: integer seed ``>= 0`` of the bootstrap. Required (saved in the report).
      plots: write the ROC PNGs.

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
      ['evaluation.json', 'report.json', 'report.md', 'scores.npz']
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
    meta = {
        "format": EVALUATION_FORMAT,
        "defenses": [
            {"name": d, "train_acc": r.train_acc, "test_acc": r.test_acc, "attacks": list(r.attacks)}
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
    atomic.write_bytes(os.path.join(run_dir, "scores.npz"), _npz_bytes(arrays))
    atomic.write_bytes(os.path.join(run_dir, "evaluation.json"), _json_bytes(meta))
    return _write_outputs(run_dir, evaluation, bootstrap_resamples=bootstrap_resamples, seed=seed, plots=plots)


def _load_sources(run_dir: str) -> tuple[Evaluation, dict[str, int]]:
    missing = [f for f in _FILES if not os.path.isfile(os.path.join(run_dir, f))]
    if missing:
        raise ValueError(
            f"run_dir must contain {' and '.join(_FILES)} written by write_report; "
            f"{run_dir!r} lacks {', '.join(missing)}"
        )
    with open(os.path.join(run_dir, "evaluation.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if not isinstance(meta, dict) or meta.get("format") != EVALUATION_FORMAT:
        raise ValueError(f"run_dir evaluation.json must have format {EVALUATION_FORMAT!r}")
    with np.load(os.path.join(run_dir, "scores.npz"), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}

    def array(key: str) -> np.ndarray:
        if key not in arrays:
            raise ValueError(f"run_dir scores.npz lacks {key!r} listed in evaluation.json")
        return arrays[key]

    defenses = {}
    for d in meta["defenses"]:
        attacks = {
            a: AttackScores(array(f"scores/{d['name']}/{a}"), array(f"is_member/{d['name']}/{a}"))
            for a in d["attacks"]
        }
        defenses[d["name"]] = DefenseResult(d["train_acc"], d["test_acc"], attacks)
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


def load_evaluation(run_dir: str | os.PathLike) -> Evaluation:
    """Read the :class:`Evaluation` saved by :func:`write_report` (no pickles are loaded).

    The saved versions and timings are kept, not re-collected.

    Args:
      run_dir: a run directory with ``evaluation.json`` and ``scores.npz``.

    Returns:
      The :class:`Evaluation`.

    Raises:
      ValueError: if ``run_dir`` lacks either file or they do not match.

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
    saved bootstrap settings, versions and timings, so ``report.json`` comes out identical.
    Shell: ``python -m hampjax.report.rebuild RUN_DIR``.

    Args:
      run_dir: a run directory written by :func:`write_report`.
      plots: rewrite the ROC PNGs (skipped with a warning if matplotlib is missing).

    Returns:
      The report dict.

    Raises:
      ValueError: if ``run_dir`` lacks ``evaluation.json`` or ``scores.npz``, or they do
        not match.

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
