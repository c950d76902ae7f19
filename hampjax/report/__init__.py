"""Run reports: JSON summary, per-sample scores, Markdown table, log-log ROC plots, LiRA I/O.

* :mod:`~hampjax.report.results` - the result types :class:`Evaluation`,
  :class:`DefenseResult`, :class:`AttackScores`.
* :mod:`~hampjax.report.report` - :class:`Evaluation` -> run directory
  (:func:`write_report`), :func:`rebuild` from saved scores, :func:`verify_run_dir` /
  :func:`load_report` (manifest check), :func:`format_table`.
* :mod:`~hampjax.report.tables` - Markdown: :func:`format_table`, ``report.md`` text.
* :mod:`~hampjax.report.plots` - log-log ROC and score histograms as PNG (optional matplotlib).
* :mod:`~hampjax.report.lira_io` - import/export of the LiRA reference layout
  (``experiment-*/keep.npy``, ``scores/*.npy``, ``logits/*.npy``).

Shell: ``python -m hampjax.report.rebuild RUN_DIR``.
"""

from hampjax.report.lira_io import (
    LiraLogits,
    LiraScores,
    export_lira_layout,
    import_lira_layout,
    import_lira_logits,
)
from hampjax.report.plots import (
    import_matplotlib,
    matplotlib_available,
    render_roc_png,
    render_score_histogram_png,
)
from hampjax.report.report import (
    FNRS,
    FPRS,
    HISTOGRAMS,
    AttackScores,
    DefenseResult,
    Evaluation,
    build_report,
    collect_versions,
    config_hash,
    load_evaluation,
    load_report,
    plot_files,
    rebuild,
    verify_run_dir,
    write_report,
)
from hampjax.report.tables import format_table, markdown_document
from hampjax.report.trust import (
    REFERENCE_GROUP,
    TRUST_FORMAT,
    build_trust_report,
    gaussian_kde,
    markdown_trust,
    render_score_kde_png,
    scott_bandwidth,
    write_trust_report,
)

__all__ = [
    "TRUST_FORMAT",
    "REFERENCE_GROUP",
    "scott_bandwidth",
    "gaussian_kde",
    "render_score_kde_png",
    "build_trust_report",
    "markdown_trust",
    "write_trust_report",
    "FNRS",
    "FPRS",
    "HISTOGRAMS",
    "AttackScores",
    "DefenseResult",
    "Evaluation",
    "LiraLogits",
    "LiraScores",
    "build_report",
    "collect_versions",
    "config_hash",
    "export_lira_layout",
    "format_table",
    "import_lira_layout",
    "import_lira_logits",
    "import_matplotlib",
    "load_evaluation",
    "load_report",
    "markdown_document",
    "matplotlib_available",
    "plot_files",
    "rebuild",
    "render_roc_png",
    "render_score_histogram_png",
    "verify_run_dir",
    "write_report",
]
