"""Paper-style tables from experiment run directories, side by side with the papers' numbers.

A run directory (written by :func:`hampjax.repro.run_experiment`; layout in
:mod:`hampjax.repro.rundir`) is read by :func:`load_run` into a :class:`RunResults` (cells
whose results are not written yet are listed as missing); :func:`tables` turns it into
:class:`Table` objects with its experiment kind's builder (:mod:`hampjax.repro.tables`),
:func:`figures` into PNGs (:mod:`hampjax.repro.figures`), both looked up in the one registry
:data:`hampjax.repro.kinds.EXPERIMENT_KINDS`, and :func:`render` / :func:`render_many` print
the tables as Markdown or CSV.

Numbers are printed like the papers: accuracies, rates and AUCs in percent with 2 decimals,
entropies in nats with 3, latencies in ms with 4 (ours can be far below the paper's 0.3 ms).
A Markdown cell reads ``"ours / paper"``,
``"—"`` where there is no value (no paper number for that dataset, e.g. digits), and ``*``
marks our rates flagged ``below_resolution`` (target rate below 1/N). The CSV is tidy: one row
per (table, cell, defense, attack, column) with the raw numbers in display units.

Experiment kinds and their tables:

* ``hamp_main``: accuracy (Table I), max TPR/TNR/AUC over attacks (Fig. 3 / Table VIII maxima),
  per-attack TPR/TNR (Table VIII), prediction entropy (Table IV, where ``stats.json`` exists).
* ``hamp_entropy``: accuracy and entropy.  ``hamp_ablation``: Table II.  ``hamp_params``:
  Table V.  ``hamp_sizes``: Fig. 6 (ours only, plus the averages quoted in the text).
  ``hamp_overhead``: Table VII.  ``relaxloss``: the RelaxLoss poster.  ``ws_sigma``: ours only.
  ``trust``: accuracy and calibration per variant, the max-score FPR per non-member set
  next to the Trust paper's, and the other attacks' FPRs.

Example:
  >>> run = load_run("runs/hamp_main")                       # doctest: +SKIP
  >>> print(render(run, fmt="md"))                           # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any

from hampjax import validation
from hampjax.repro.kinds import EXPERIMENT_KINDS
from hampjax.repro.rundir import RunResults, read_experiment, read_run
from hampjax.repro.tables import DASH, Entry, Table

__all__ = [
    "EXPERIMENT_KINDS",
    "FORMATS",
    "CSV_COLUMNS",
    "RunResults",
    "Entry",
    "Table",
    "load_run",
    "tables",
    "figures",
    "render",
    "render_many",
]

FORMATS = ("md", "csv")
CSV_COLUMNS = ("experiment", "kind", "table", "cell", "defense", "attack", "column", "ours",
               "paper", "below_resolution", "ours_attack", "paper_attack", "unit")
"""Columns of the tidy CSV written by :func:`render` with ``fmt="csv"``."""


def load_run(workdir: str | os.PathLike) -> RunResults:
    """Read an experiment run directory (layout in :mod:`hampjax.repro.rundir`).

    Args:
      workdir: the run directory holding ``experiment.json``.

    Returns:
      A :class:`RunResults`; cells whose results do not exist yet are listed in ``missing``
      (an unfinished run is not an error).

    Raises:
      ValueError: if ``workdir`` is not a directory, has no ``experiment.json``, or a JSON file
        is malformed (unknown experiment kind, cells not a list of names, report without
        ``"defenses"``).

    Example:
      >>> load_run("runs/hamp_main").missing                     # doctest: +SKIP
      ('cifar100',)
    """
    exp = read_experiment(workdir)
    validation.check_choice("experiment.json 'experiment'", exp.get("experiment"),
                            tuple(EXPERIMENT_KINDS))
    return read_run(workdir)


def _check_run(run: Any) -> None:
    if not isinstance(run, RunResults):
        raise ValueError(f"run must be a RunResults (from load_run), got {type(run).__name__}")


def tables(run: RunResults) -> list[Table]:
    """The paper-style tables of one run, for its experiment kind (module docstring).

    Args:
      run: from :func:`load_run`.

    Returns:
      A list of :class:`Table`.

    Raises:
      ValueError: if ``run`` is not a :class:`RunResults`.
    """
    _check_run(run)
    return EXPERIMENT_KINDS[run.kind].tables(run)


def figures(run: RunResults) -> dict[str, bytes]:
    """The run's figures as ``{file name: PNG bytes}`` (empty for kinds without figures).

    Args:
      run: from :func:`load_run`.

    Returns:
      ``{file name: PNG bytes}``.

    Raises:
      ValueError: if ``run`` is not a ``RunResults``.
      ImportError: if a figure is due and matplotlib is not installed.
    """
    _check_run(run)
    builder = EXPERIMENT_KINDS[run.kind].figures
    return builder(run) if builder is not None else {}


# --------------------------------------------------------------------------------------------
# Rendering.
# --------------------------------------------------------------------------------------------


def _num(value: float | None, decimals: int) -> str:
    return DASH if value is None else f"{value:.{decimals}f}"


def _cell_text(e: Entry, table: Table) -> str:
    ours = _num(e.ours, table.decimals) + ("*" if e.flagged and e.ours is not None else "")
    if e.ours is not None and e.ours_attack:
        ours += f" ({e.ours_attack})"
    if not table.has_paper:
        return ours
    theirs = _num(e.paper, table.decimals)
    if e.paper is not None and e.paper_attack:
        theirs += f" ({e.paper_attack})"
    return f"{ours} / {theirs}"


def _md_table(table: Table) -> list[str]:
    header = list(table.keys) + list(table.columns)
    lines = [f"## {table.title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for keys, entries in table.rows:
        cells = list(keys) + [_cell_text(e, table) for e in entries]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if not table.rows:
        lines.append("| " + " | ".join([DASH] * len(header)) + " |")
    if table.notes:
        lines.append("")
        lines.extend(f"- {n}" for n in table.notes)
    return lines + [""]


def _md(run: RunResults, run_tables: list[Table]) -> str:
    lines = [f"# {run.name} ({run.kind})", "", f"- workdir: `{run.workdir}`",
             f"- cells: {', '.join(run.cells) if run.cells else DASH}"]
    if run.data_hashes:
        lines.append("- data hashes: " + ", ".join(
            f"{c}={str(h)[:12]}" for c, h in run.data_hashes.items()))
    if run.missing:
        lines.append(f"- missing (run not finished): {', '.join(run.missing)}")
    lines.append("")
    for t in run_tables:
        lines += _md_table(t)
    return "\n".join(lines).rstrip("\n") + "\n"


def _csv_num(value: float | None) -> str:
    return "" if value is None else format(float(value), ".10g")


def _csv_rows(run: RunResults, run_tables: list[Table]) -> list[list[str]]:
    rows = []
    for t in run_tables:
        for keys, entries in t.rows:
            named = dict(zip(t.keys, keys))
            for column, e in zip(t.columns, entries):
                rows.append([run.name, run.kind, t.name, named.get("cell", ""),
                             named.get("defense", ""), named.get("attack", ""), column,
                             _csv_num(e.ours), _csv_num(e.paper) if t.has_paper else "",
                             str(bool(e.flagged)).lower(), e.ours_attack or "",
                             (e.paper_attack or "") if t.has_paper else "", t.unit])
    blank = [""] * (len(CSV_COLUMNS) - 4)
    rows += [[run.name, run.kind, "missing", cell] + blank for cell in run.missing]
    return rows


def _to_csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return buf.getvalue()


def render(run: RunResults, *, fmt: str = "md") -> str:
    """Render one run's tables as Markdown or CSV.

    Args:
      run: from :func:`load_run`.
      fmt: ``"md"`` (headed tables, cells ``"ours / paper"``, footnotes) or ``"csv"`` (tidy
        rows with the columns :data:`CSV_COLUMNS`, numbers in display units).

    Returns:
      The text, ending with a newline.

    Raises:
      ValueError: if ``run`` is not a :class:`RunResults` or ``fmt`` is unknown.

    Example:
      >>> text = render(load_run("runs/hamp_main"), fmt="csv")    # doctest: +SKIP
    """
    _check_run(run)
    validation.check_choice("fmt", fmt, FORMATS)
    run_tables = tables(run)
    if fmt == "md":
        return _md(run, run_tables)
    return _to_csv(_csv_rows(run, run_tables))


def render_many(workdirs: Sequence[str | os.PathLike], *, fmt: str = "md") -> str:
    """Load and render several run directories into one document (one CSV header).

    Args:
      workdirs: run directories (non-empty sequence).
      fmt: as in :func:`render`.

    Returns:
      The text: Markdown sections one after another, or one CSV.

    Raises:
      ValueError: if ``workdirs`` is empty or a string, ``fmt`` is unknown, or as
        :func:`load_run`.
    """
    validation.check_choice("fmt", fmt, FORMATS)
    if isinstance(workdirs, (str, bytes, os.PathLike)) or not isinstance(workdirs, Sequence):
        raise ValueError(f"workdirs must be a sequence of run directories, got {workdirs!r}")
    if not workdirs:
        raise ValueError("workdirs must name at least 1 run directory, got none")
    runs = [load_run(w) for w in workdirs]
    if fmt == "md":
        return "\n".join(render(r, fmt="md") for r in runs)
    rows = []
    for r in runs:
        rows += _csv_rows(r, tables(r))
    return _to_csv(rows)
