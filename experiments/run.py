r"""Run one reproduction experiment from its config (a thin entry point).

    python experiments/run.py --config=experiments/configs/hamp_main.py:quick --workdir=runs/quick
    python experiments/run.py --config=experiments/configs/hamp_main.py:purchase100 \
        --config.data_dir=$HOME/hampjax_data --config.num_models=64 --workdir=runs/purchase

Each config's docstring gives its launch command, expected runtime and the paper numbers it
targets; ``experiments/results.py WORKDIR`` prints the tables. Re-running the same command
resumes. Multi-host (TPU pods): set ``HAMPJAX_DISTRIBUTED=1`` (see tpu_scripts/README.md).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from hampjax.repro import run_experiment
from hampjax.training import maybe_initialize

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file[:argument]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory (created; resumed if present)")
_PROGRESS = flags.DEFINE_bool("progress", True, "show training progress bars")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:  # Keep orbax's per-checkpoint INFO lines out.
        logging.set_verbosity(logging.WARNING)
    maybe_initialize()
    run_experiment(_CONFIG.value, _WORKDIR.value, progress=_PROGRESS.value)


if __name__ == "__main__":
    app.run(main)
