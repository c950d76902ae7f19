"""Paper-style tables from experiment run directories, next to the papers' numbers.

    python experiments/results.py runs/hamp_main [runs/hamp_ablation ...] [--fmt md|csv]
                                  [--out results.md] [--plots]

Prints Markdown (cells "ours / paper", footnotes) or a tidy CSV to stdout, and with ``--out``
also writes it to that file atomically. ``--plots`` also writes the figures of the runs that
have them (Weighted Smoothing's accuracy-vs-attack trade-off, HAMP Fig. 6 and Table V as
curves; :func:`hampjax.repro.results.figures`) into each run directory. Unfinished cells are
listed as missing. The library
call is :func:`hampjax.repro.results.render_many`; see its module for the tables per
experiment kind. Runs in about a second (no accelerator, no models).

Mistakes (no run directory given, a directory that is not a run, a corrupt ``experiment.json``
or ``report.json``, an unknown flag, an ``--out`` path that cannot be written) are one line on
stderr naming the flag or the file, exit status 2.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from hampjax import atomic
from hampjax.cli import check_output_file, fail, user_errors
from hampjax.repro import results

_FMT = flags.DEFINE_enum("fmt", "md", list(results.FORMATS), "Output format.")
_OUT = flags.DEFINE_string("out", None, "Also write the output to this file (atomically).")
_PLOTS = flags.DEFINE_bool("plots", False, "Also write each run's figures into its directory.")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, its errors (unknown flag, bad --fmt) one line, exit status 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"{e} (see --helpshort)")


def main(argv: list[str]) -> None:
    workdirs = argv[1:]
    if not workdirs:
        fail("give at least one run directory (positional arguments)")
    with user_errors():
        if _OUT.value is not None:
            check_output_file("--out", _OUT.value)
        text = results.render_many(workdirs, fmt=_FMT.value)
        _write(workdirs, text)


def _write(workdirs: list[str], text: str) -> None:
    if _OUT.value:
        atomic.write_bytes(_OUT.value, text.encode("utf-8"))
    sys.stdout.write(text)
    if _PLOTS.value:
        for workdir in workdirs:
            for name, png in results.figures(results.load_run(workdir)).items():
                path = os.path.join(workdir, name)
                atomic.write_bytes(path, png)
                print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
