"""Run a reproduction experiment from its ml_collections config into a run directory.

:func:`run_experiment` looks ``config.experiment`` up in the one registry of experiment kinds
(:data:`hampjax.repro.kinds.EXPERIMENT_KINDS`), checks the whole config before anything runs,
records it in ``<workdir>/experiment.json`` (layout in :mod:`hampjax.repro.rundir`) and runs
the kind. The evaluation kinds (:mod:`hampjax.repro.cells`) build every defense from the
recipe spec its config holds, so a run trains what its recorded config says.

The workdir is locked while the experiment runs (:class:`hampjax.runlock.RunLock`).
Resuming: finished cells are skipped; unfinished ones resume training from their checkpoints.
A workdir written by a different config is refused, naming the differing dotted fields (e.g.
``cells.digits.defenses.hamp.optimizer.learning_rate``). Only process 0 writes; every process
trains its share of models (multi-host runs).

``python experiments/results.py <workdir>`` turns the directory into the paper's tables.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from hampjax import validation
from hampjax.repro import rundir
from hampjax.repro.kinds import EXPERIMENT_KINDS
from hampjax.runlock import RunLock

__all__ = ["run_experiment", "check_config"]


def check_config(config: Any) -> None:
    """Check an experiment config (kind, seed, model count, the kind's own fields).

    Raises:
      ValueError: naming the bad field.
    """
    validation.check_choice("config.experiment", config.get("experiment"),
                            tuple(EXPERIMENT_KINDS))
    validation.check_positive_int("config.seed", config.seed, minimum=0)
    if config.get("num_models") is not None and (config.num_models < 4 or config.num_models % 2):
        raise ValueError(f"config.num_models must be an even integer >= 4, got {config.num_models}")
    EXPERIMENT_KINDS[config.experiment].check(config)


def run_experiment(config: Any, workdir: str, *, progress: bool = True) -> dict:
    """Run the experiment ``config`` (an ml_collections ConfigDict) into ``workdir``.

    Args:
      config: has ``experiment`` (a key of :data:`~hampjax.repro.kinds.EXPERIMENT_KINDS`),
        ``name``, ``seed`` and the kind's fields (see ``experiments/configs/``).
      workdir: the run directory; created if needed; re-running resumes it.
      progress: show training progress bars.

    Returns:
      The contents of ``experiment.json``.

    Raises:
      ValueError: an unknown experiment kind, bad fields, a workdir that is a file or holds a
        run of a different config.
      hampjax.runlock.RunLockError: another process is running an experiment in ``workdir``.
    """
    check_config(config)
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"workdir {workdir!r} is a file, not a directory")
    # One experiment per workdir at a time; other processes of a multi-host run share
    # process 0's workdir (and its lock) and write nothing.
    lock = RunLock(workdir, what="experiment") if rundir.is_main_process() else (
        contextlib.nullcontext())
    with lock:
        rundir.open_experiment(workdir, kind=config.experiment, name=config.name,
                               config=rundir.config_dict(config))
        start = time.perf_counter()
        cells = EXPERIMENT_KINDS[config.experiment].run(config, workdir, progress)
        record = rundir.finish_experiment(workdir, cells)
    print(f"{config.name}: finished in {time.perf_counter() - start:.0f} s; tables: "
          f"python experiments/results.py {workdir}")
    return record
