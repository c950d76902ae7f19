"""The one registry of experiment kinds: ``config.experiment`` -> how to check it, run it,
tabulate it and plot it.

Everything that dispatches on a kind reads :data:`EXPERIMENT_KINDS`: the runner
(:func:`hampjax.repro.run_experiment`), the results command (:func:`hampjax.repro.results.tables`
and :func:`~hampjax.repro.results.figures`) and the tests. Adding a kind is one entry here.

Example:
  >>> sorted(EXPERIMENT_KINDS)[:3]
  ['hamp_ablation', 'hamp_archs', 'hamp_dp_grid']
  >>> EXPERIMENT_KINDS["hamp_params"].figures.__name__
  'params_figure'
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any

from hampjax.repro import cells, figures, overhead, privacy, summary, tables, trust, truth_serum
from hampjax.repro.rundir import RunResults

__all__ = ["ExperimentKind", "EXPERIMENT_KINDS"]


@dataclasses.dataclass(frozen=True)
class ExperimentKind:
    """One experiment kind.

    Attributes:
      name: the kind (``config.experiment``).
      check: ``config -> None``, raises ValueError on a bad config before anything runs.
      run: ``(config, workdir, progress) -> cell names``; resumes finished cells.
      tables: ``RunResults -> list[Table]`` (:mod:`hampjax.repro.tables`).
      figures: ``RunResults -> {file name: PNG bytes}`` (:mod:`hampjax.repro.figures`), or
        ``None`` for kinds without figures.
      description: one line, for listings.
    """

    name: str
    check: Callable[[Any], None]
    run: Callable[[Any, str, bool], list[str]]
    tables: Callable[[RunResults], list]
    figures: Callable[[RunResults], dict[str, bytes]] | None = None
    description: str = ""


def _kinds(*kinds: ExperimentKind) -> Mapping[str, ExperimentKind]:
    return types.MappingProxyType({k.name: k for k in kinds})


_EVAL = dict(check=cells.check_cells, run=cells.run_cells)


def _hamp_main_tables(run: RunResults) -> list:
    return tables.hamp_main_tables(run) + [summary.fig1_table(run)]

EXPERIMENT_KINDS: Mapping[str, ExperimentKind] = _kinds(
    ExperimentKind("hamp_main", tables=privacy.with_privacy(_hamp_main_tables),
                   figures=summary.fig1_figure, description="HAMP Tables I, IV, VIII, Fig. 1",
                   **_EVAL),
    ExperimentKind("hamp_entropy", tables=tables.hamp_entropy_tables,
                   description="HAMP Table IV (prediction entropy)", **_EVAL),
    ExperimentKind("hamp_ablation", tables=tables.ablation_tables,
                   description="HAMP Table II (components)", **_EVAL),
    ExperimentKind("hamp_params", tables=tables.params_tables, figures=figures.params_figure,
                   description="HAMP Table V (gamma, alpha)", **_EVAL),
    ExperimentKind("hamp_sizes", tables=tables.sizes_tables, figures=figures.sizes_figure,
                   description="HAMP Fig. 6 (training sizes)", **_EVAL),
    ExperimentKind("hamp_archs", tables=tables.archs_tables,
                   description="HAMP Fig. 10 (architectures, CIFAR-10)", **_EVAL),
    ExperimentKind("hamp_overhead", check=overhead.check_overhead, run=overhead.run_overhead,
                   tables=tables.overhead_tables, description="HAMP Table VII (inference time)"),
    ExperimentKind("relaxloss", tables=tables.relaxloss_tables,
                   description="RelaxLoss poster table", **_EVAL),
    ExperimentKind("relaxloss_baselines",
                   tables=privacy.with_privacy(tables.relaxloss_baselines_tables),
                   description="RelaxLoss's regularization baselines, early stopping", **_EVAL),
    ExperimentKind("ws_sigma", tables=tables.ws_tables, figures=figures.ws_figures,
                   description="Weighted Smoothing sigma sweep", **_EVAL),
    ExperimentKind("hamp_dp_grid", tables=privacy.dp_grid_tables, figures=privacy.dp_grid_figure,
                   description="HAMP Fig. 5 (DP-SGD clip x noise grid)", **_EVAL),
    ExperimentKind("ws_dp_tradeoff", tables=privacy.tradeoff_tables,
                   figures=privacy.tradeoff_figure,
                   description="Weighted Smoothing vs DP-SGD trade-off", **_EVAL),
    ExperimentKind("trust", check=trust.check_trust, run=trust.run_trust,
                   tables=tables.trust_tables, description="To Trust or Not To Trust, CIFAR-10"),
    ExperimentKind("truth_serum", check=truth_serum.check_truth_serum,
                   run=truth_serum.run_truth_serum, tables=tables.truth_serum_tables,
                   description="HAMP V-C (Truth-Serum data poisoning)"),
)
"""Every experiment kind by name."""
