r"""Run one reproduction experiment from its config (a thin entry point).

    python experiments/run.py --config=experiments/configs/hamp_main.py:quick --workdir=runs/quick
    python experiments/run.py --config=experiments/configs/hamp_main.py:purchase100 \
        --config.data_dir=$HOME/hampjax_data --config.num_models=64 \
        --config.cells.purchase100.defenses.hamp.optimizer.learning_rate=0.1 \
        --workdir=runs/purchase

Each config's docstring gives its launch command, expected runtime and the paper numbers it
targets; ``experiments/results.py WORKDIR`` prints the tables. Re-running the same command
resumes. Multi-host (TPU pods): set ``HAMPJAX_DISTRIBUTED=1`` (see tpu_scripts/README.md).

Mistakes in the command line are one line on stderr and exit status 2, before anything runs:
an unknown ``--config.`` field (with the valid fields), a missing or broken config file, a
workdir that is a file or holds a different run, an invalid config value, an unknown flag, a
value of the wrong type. A corrupt file of the run directory found while running (a truncated
``experiment.json``, ``report.json``, ``keep.npy`` ...) is one line naming the file, exit status
2 (``HAMPJAX_TRACEBACK=1`` shows the traceback).
"""

from __future__ import annotations

import importlib.util
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from hampjax.cli import check_workdir, fail, user_errors
from hampjax.repro import check_config, rundir, run_experiment
from hampjax.training import maybe_initialize

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file[:argument]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (created; resumed if present)")
_PROGRESS = flags.DEFINE_bool("progress", True, "show training progress bars")
flags.mark_flags_as_required(["config", "workdir"])


class UsageError(ValueError):
    """A command-line mistake, reported as one line."""


def _flag_values(argv: list[str], name: str) -> list[tuple[str, str | None]]:
    """``(flag name, value)`` of every ``--name...`` argument (``--x=v`` or ``--x v``)."""
    out = []
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        for prefix in (f"--{name}", f"-{name}"):
            if arg.startswith(prefix) and arg[len(prefix):len(prefix) + 1] in ("", "=", "."):
                key, sep, value = arg.lstrip("-").partition("=")
                if not sep:
                    value = argv[i + 1] if i + 1 < len(argv) and "." not in key else None
                out.append((key, value))
                break
    return out


def _load_config(value: str):
    path, _, arg = value.partition(":")
    if os.path.isdir(path):
        raise UsageError(f"--config: {path!r} is a directory, not a config file")
    if not os.path.isfile(path):
        raise UsageError(f"--config: config file {path!r} does not exist")
    if not path.endswith(".py"):
        raise UsageError(f"--config: {path!r} is not a Python config file (.py)")
    spec = importlib.util.spec_from_file_location("experiment_config", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 (any error of the user's file is a usage error)
        raise UsageError(f"--config: cannot load {path!r}: {type(e).__name__}: {e}") from None
    if not hasattr(module, "get_config"):
        raise UsageError(f"--config: {path!r} defines no get_config()")
    try:
        return module.get_config(arg or None) if arg else module.get_config()
    except ValueError as e:
        raise UsageError(f"--config={value}: {e}") from None


def check_overrides(argv: list[str]) -> None:
    """Check the ``--config`` file and every ``--config.X`` field before absl parses them.

    Raises:
      UsageError: a missing config file, or an override naming an unknown field (listing the
        valid fields where the path stopped).
    """
    configs = [v for k, v in _flag_values(argv, "config") if k == "config"]
    if not configs or configs[-1] is None:
        return  # absl reports the missing flag.
    config = _load_config(configs[-1])
    for key, _ in _flag_values(argv, "config"):
        if key == "config":
            continue
        node, walked = config, "config"
        for part in key.split(".")[1:]:
            part = part.split("[", 1)[0]
            if not hasattr(node, "keys") or part not in node:
                valid = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else "(none)"
                where = "" if walked == "config" else f" (under {walked})"
                raise UsageError(f"--{key}: unknown field; valid fields{where}: {valid}")
            node, walked = node[part], f"{walked}.{part}"


def _fail(message: str) -> None:
    fail(message)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, its errors (unknown flag, bad value, missing --workdir) one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        _fail(f"{e} (see --helpshort)")


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments {argv[1:]}: every flag takes the --name=value form")
    if not flags.FLAGS["verbosity"].present:  # Keep orbax's per-checkpoint INFO lines out.
        logging.set_verbosity(logging.WARNING)
    config, workdir = _CONFIG.value, _WORKDIR.value
    try:
        check_workdir("--workdir", workdir)
        check_config(config)
        if os.path.exists(rundir.experiment_path(workdir)):  # A resumed run: the same config?
            rundir.open_experiment(workdir, kind=config.experiment, name=config.name,
                                   config=rundir.config_dict(config))
    except ValueError as e:
        _fail(str(e))
    maybe_initialize()
    with user_errors():  # A corrupt run-directory file found while running: one line naming it.
        run_experiment(config, workdir, progress=_PROGRESS.value)


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:])
    except UsageError as e:
        _fail(str(e))
    app.run(main, flags_parser=parse_flags)
