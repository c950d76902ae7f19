"""Rebuild a run's report.json, report.md and ROC plots from its saved scores.

Usage::

    python -m hampjax.report.rebuild RUN_DIR [--no-plots]

Reads ``RUN_DIR/evaluation.json`` and ``RUN_DIR/scores.npz`` (written by
:func:`hampjax.report.report.write_report`), needs no model and no accelerator, rewrites
the report files and prints the summary table. The work is done by
:func:`hampjax.report.report.rebuild`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from hampjax.report.report import rebuild
from hampjax.report.tables import format_table

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), rebuild, print the table; return 0."""
    parser = argparse.ArgumentParser(
        prog="python -m hampjax.report.rebuild",
        description="Rebuild report.json, report.md and ROC plots from a run's saved scores.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by write_report")
    parser.add_argument("--no-plots", action="store_true", help="do not rewrite the ROC plots")
    args = parser.parse_args(argv)
    report = rebuild(args.run_dir, plots=not args.no_plots)
    print(format_table(report), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
