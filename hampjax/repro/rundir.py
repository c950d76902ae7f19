"""Experiment run directories: ``experiment.json`` bookkeeping (write side) and reading a run.

The layout (written by the experiment kinds of :mod:`hampjax.repro.kinds`)::

    <workdir>/experiment.json   {"experiment": kind, "name": str, "config": {...},
                                 "cells": [cell names], "data": {cell: split record},
                                 "data_hashes": {cell: str},
                                 "cell_info": {cell: {"dataset", "train_size",
                                               "sweep": {defense: {"field", "value"}}}}}
    <workdir>/<cell>/report.json   the hampjax.report summary (README, "report.json")
    <workdir>/<cell>/stats.json    {defense: {"entropy_members", "entropy_nonmembers"}} (nats)
    <workdir>/overhead.json        kind "hamp_overhead" only: {dataset: {"forward_ms",
                                   "modify_output_ms", "hamp_ms", "batch", "device"}}
    <workdir>/<cell>/report.json   kind "truth_serum": one attack, LiRA on the poisoned
                                   targets pooled over the models (hampjax.repro.truth_serum)
    <workdir>/<cell>/summary.json  kind "trust" only: {variant: {"train_acc", "test_acc",
                                   "ece", "oe", "mmps", "fpr": {set: {attack: fpr}}, ...}}

``config`` is the whole experiment config as run (the recipe specs included), so a run
records what it ran. ``cell_info`` keeps, as data, what the tables and figures need beyond the
reports: the cell's dataset and training size and, per swept defense, the swept spec field
and its value (never parsed back from a name).

Writing is done by process 0 only (:func:`is_main_process`); every process trains its share.
This module imports nothing of the experiment kinds: the runner, the Trust experiment and the
results reader all build on it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
from collections.abc import Mapping
from typing import Any

import jax

from hampjax import atomic
from hampjax.training import diff_paths

__all__ = [
    "EXPERIMENT_FILE",
    "RunResults",
    "is_main_process",
    "experiment_path",
    "config_dict",
    "open_experiment",
    "record_cell_data",
    "record_cell_info",
    "finish_experiment",
    "cell_done",
    "read_experiment",
    "read_run",
]

EXPERIMENT_FILE = "experiment.json"


def is_main_process() -> bool:
    """Whether this process writes the run directory's files (process 0)."""
    return jax.process_index() == 0


def experiment_path(workdir: str) -> str:
    """``<workdir>/experiment.json``."""
    return os.path.join(workdir, EXPERIMENT_FILE)


def config_dict(config: Any) -> dict:
    """An ml_collections config (or mapping) as plain JSON data (tuples become lists)."""
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return json.loads(json.dumps(raw, default=str))


def _read_record(path: str) -> dict:
    record = atomic.read_json(path, recover="move it away or use a new --workdir")
    if not isinstance(record, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(record).__name__}")
    return record


def open_experiment(workdir: str, *, kind: str, name: str, config: Mapping) -> dict:
    """Create ``experiment.json`` for a new run, or check that a resumed one ran ``config``.

    Args:
      workdir: the run directory (created if needed).
      kind: the experiment kind.
      name: the experiment's name.
      config: the whole config as plain data (:func:`config_dict`).

    Returns:
      The record (as on disk).

    Raises:
      ValueError: ``workdir`` is a file, or it holds a run of a different config (the message
        names the differing dotted fields, e.g. ``cells.digits.defenses.hamp.epochs``).
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"workdir {workdir!r} is a file, not a directory; pass a directory "
                         "(created if missing)")
    os.makedirs(workdir, exist_ok=True)
    path = experiment_path(workdir)
    if os.path.exists(path):
        record = _read_record(path)
        recorded = record.get("config")
        if recorded != config:
            changed = diff_paths(recorded if isinstance(recorded, Mapping) else {}, config)
            shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more"
                                              if len(changed) > 8 else "")
            raise ValueError(f"workdir {workdir} holds a run of a different config (fields "
                             f"differ: {shown}); use a new --workdir or the recorded config")
        return record
    record = {"experiment": kind, "name": name, "config": dict(config), "cells": [],
              "data": {}, "data_hashes": {}, "cell_info": {}}
    if is_main_process():
        atomic.write_json(path, record, sort_keys=True)
    return record


def _update(workdir: str, update) -> None:
    if not is_main_process():
        return
    path = experiment_path(workdir)
    record = _read_record(path)
    update(record)
    atomic.write_json(path, record, sort_keys=True)


def record_cell_data(workdir: str, cell: str, split_record: dict) -> None:
    """Save a cell's split record (with its ``data_hash``) in ``experiment.json``; refuse a
    cell that was run on different data.

    Raises:
      ValueError: the cell's recorded data hash differs.
    """
    def update(record):
        data = record.setdefault("data", {})
        old = data.get(cell, {}).get("data_hash")
        if old is not None and old != split_record["data_hash"]:
            raise ValueError(f"cell {cell!r} of {workdir} was run on different data (data "
                             f"hash {old} != {split_record['data_hash']}); use a new workdir")
        data[cell] = split_record
        record.setdefault("data_hashes", {})[cell] = split_record["data_hash"]

    _update(workdir, update)


def record_cell_info(workdir: str, cell: str, info: Mapping[str, Any]) -> None:
    """Save a cell's descriptive data (dataset, training size, sweep records) in
    ``experiment.json`` under ``cell_info``."""
    def update(record):
        record.setdefault("cell_info", {})[cell] = json.loads(json.dumps(dict(info)))

    _update(workdir, update)


def finish_experiment(workdir: str, cells: list[str]) -> dict:
    """Record the experiment's cells (in order); returns the final record."""
    _update(workdir, lambda record: record.__setitem__("cells", list(cells)))
    path = experiment_path(workdir)
    return _read_record(path) if os.path.exists(path) else {"cells": list(cells)}


def cell_done(cell_dir: str) -> bool:
    """Whether an evaluation cell finished (its ``report.json`` and ``stats.json`` exist)."""
    return all(os.path.exists(os.path.join(cell_dir, f)) for f in ("report.json", "stats.json"))


# --------------------------------------------------------------------------------------------
# Reading.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunResults:
    """One experiment run directory, as read by :func:`read_run`.

    Attributes:
      workdir: the directory.
      kind: the experiment kind (a key of :data:`hampjax.repro.kinds.EXPERIMENT_KINDS`).
      name: the experiment's name.
      config: the experiment config (a JSON mapping).
      cells: every cell the experiment declares, in its order.
      reports: ``{cell: report.json}`` for the finished cells.
      stats: ``{cell: stats.json}`` where written.
      missing: declared cells without results yet (no report, summary or overhead entry).
      data_hashes: ``{cell: data hash}``.
      overhead: ``overhead.json`` (kind ``"hamp_overhead"``), else ``None``.
      trust: ``{cell: summary.json}`` (kind ``"trust"``): per variant accuracy, calibration
        and the FPR of every attack on every non-member set.
      cell_info: ``{cell: {"dataset", "train_size", "sweep": {defense: {"field", "value"}}}}``
        (empty for runs written before it was recorded).
    """

    workdir: str
    kind: str
    name: str
    config: Mapping[str, Any]
    cells: tuple[str, ...]
    reports: Mapping[str, Mapping[str, Any]]
    stats: Mapping[str, Mapping[str, Any]]
    missing: tuple[str, ...]
    data_hashes: Mapping[str, str]
    overhead: Mapping[str, Any] | None
    trust: Mapping[str, Mapping[str, Any]]
    cell_info: Mapping[str, Mapping[str, Any]] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))

    def dataset(self, cell: str) -> str:
        """The cell's dataset (recorded; the cell's name for runs that did not record it)."""
        return str(self.cell_info.get(cell, {}).get("dataset", cell))

    def defense_spec(self, cell: str, defense: str) -> Mapping[str, Any] | None:
        """The recorded recipe spec (a plain dict) of a cell's defense, ``None`` if absent."""
        cells = self.config.get("cells") or {}
        spec = (cells.get(cell) or {}).get("defenses", {}).get(defense)
        return spec if isinstance(spec, Mapping) else None

    def sweep(self, cell: str, defense: str) -> tuple[str, float] | None:
        """``(swept spec field, value)`` of a swept defense, ``None`` for the others."""
        s = self.cell_info.get(cell, {}).get("sweep", {}).get(defense)
        return None if s is None else (str(s["field"]), s["value"])


def _read_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} must be valid JSON, {path} is not: {e}") from e


def _check_cell_name(cell: Any) -> str:
    """A cell names a subdirectory of the workdir: a plain, non-empty name."""
    if (not isinstance(cell, str) or not cell or cell in (".", "..") or "/" in cell
            or os.sep in cell):
        raise ValueError(f"experiment.json 'cells' must hold plain directory names, got {cell!r}")
    return cell


def read_experiment(workdir: str | os.PathLike) -> dict:
    """The ``experiment.json`` object of a run directory (checked to be a JSON object)."""
    workdir = os.fspath(workdir)
    if not os.path.isdir(workdir):
        raise ValueError(f"workdir must be an existing run directory, got {workdir!r}")
    exp_path = experiment_path(workdir)
    if not os.path.isfile(exp_path):
        raise ValueError(f"workdir must contain experiment.json (written by the runner); "
                         f"{workdir!r} has none")
    exp = _read_json(exp_path, "experiment.json")
    if not isinstance(exp, dict):
        raise ValueError(f"experiment.json must hold a JSON object, got {type(exp).__name__}")
    return exp


def _read_trust_summary(path: str) -> dict:
    summary = _read_json(path, "summary.json")
    if not isinstance(summary, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("fpr"), dict) for v in summary.values()):
        raise ValueError(f"summary.json must hold {{variant: {{train_acc, test_acc, ece, oe, "
                         f"fpr: {{...}}}}}}; {path} does not")
    return summary


def read_run(workdir: str | os.PathLike) -> RunResults:
    """Read a run directory (layout in the module docstring); the kind is not checked here
    (:func:`hampjax.repro.results.load_run` checks it against the registry).

    A cell is finished when its ``report.json`` (evaluation kinds), its ``summary.json``
    (Trust) or its ``overhead.json`` entry exists; the others are listed in ``missing``.

    Raises:
      ValueError: ``workdir`` is not a directory, has no ``experiment.json``, or a JSON file
        is malformed (cells not a list of names, report without ``"defenses"``, ...).
    """
    workdir = os.fspath(workdir)
    exp = read_experiment(workdir)
    kind = exp.get("experiment")
    cells = exp.get("cells")
    if not isinstance(cells, list):
        raise ValueError(f"experiment.json 'cells' must be a list of cell names, got {cells!r}")
    cells = tuple(_check_cell_name(c) for c in cells)
    reports, stats, trust, missing = {}, {}, {}, []
    overhead = None
    path = os.path.join(workdir, "overhead.json")
    if os.path.isfile(path):
        overhead = _read_json(path, "overhead.json")
        if not isinstance(overhead, dict) or not all(
                isinstance(v, dict) for v in overhead.values()):
            raise ValueError("overhead.json must hold a JSON object {dataset: {...}}")
    for cell in cells:
        cell_dir = os.path.join(workdir, cell)
        summary_path = os.path.join(cell_dir, "summary.json")
        report_path = os.path.join(cell_dir, "report.json")
        if os.path.isfile(summary_path):
            trust[cell] = _read_trust_summary(summary_path)
        elif os.path.isfile(report_path):
            report = _read_json(report_path, "report.json")
            if not isinstance(report, dict) or not isinstance(report.get("defenses"), dict):
                raise ValueError(f"report.json must hold a 'defenses' object; {report_path} "
                                 f"does not")
            reports[cell] = report
            stats_path = os.path.join(cell_dir, "stats.json")
            if os.path.isfile(stats_path):
                cell_stats = _read_json(stats_path, "stats.json")
                if not isinstance(cell_stats, dict) or not all(
                        isinstance(v, dict) for v in cell_stats.values()):
                    raise ValueError(f"stats.json must hold a JSON object {{defense: "
                                     f"{{entropy_members, entropy_nonmembers}}}}; {stats_path} "
                                     f"does not")
                stats[cell] = cell_stats
        elif overhead is None or cell not in overhead:
            missing.append(cell)
    info = exp.get("cell_info") or {}
    return RunResults(
        workdir=workdir, kind=str(kind), name=str(exp.get("name", os.path.basename(workdir))),
        config=types.MappingProxyType(dict(exp.get("config") or {})), cells=cells,
        reports=types.MappingProxyType(reports), stats=types.MappingProxyType(stats),
        missing=tuple(missing),
        data_hashes=types.MappingProxyType(dict(exp.get("data_hashes") or {})),
        overhead=overhead, trust=types.MappingProxyType(trust),
        cell_info=types.MappingProxyType(dict(info)))
