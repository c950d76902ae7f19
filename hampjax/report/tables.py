"""Markdown tables of a report dict (``report.json``): the summary table and ``report.md``.

Pure string formatting of the dict built by :func:`hampjax.report.report.build_report`;
used by :func:`~hampjax.report.report.write_report`, :func:`~hampjax.report.report.rebuild`
and by scripts that print results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hampjax import validation
from hampjax.metrics.roc import below_resolution_key, tnr_at_fnr_key, tpr_at_fpr_key

__all__ = ["REPORT_FORMAT", "format_table", "markdown_document"]

REPORT_FORMAT = "hampjax.report/1"
"""Value of ``report["format"]`` for the schema documented in :mod:`hampjax.report.report`."""
_DEFAULT_TABLE_METRICS = ("auc", tpr_at_fpr_key(1e-3), tnr_at_fnr_key(1e-3))


# --------------------------------------------------------------------------------------------
# Markdown tables.
# --------------------------------------------------------------------------------------------


def _metric_header(key: str) -> str:
    return {"auc": "AUC", "balanced_accuracy": "bal. acc", "attacker_advantage": "advantage"}.get(
        key, key.upper()
    )


def _fmt_metric(key: str, value: float) -> str:
    if key in ("auc", "balanced_accuracy", "attacker_advantage"):
        return f"{value:.4f}"
    return f"{100.0 * value:.2f}%"


_BELOW_RESOLUTION_NOTE = (
    "\\* target rate below the resolution 1/N of the data (N = number of non-members for "
    "TPR@FPR, of members for TNR@FNR): the reading equals the one at rate 0+ and is not "
    "specific to the requested rate.\n"
)


def _check_report(report: Any) -> None:
    if not isinstance(report, Mapping) or report.get("format") != REPORT_FORMAT:
        raise ValueError(f"report must be a dict built by build_report (format {REPORT_FORMAT!r})")


def format_table(
    report: Mapping[str, Any],
    *,
    defenses: Sequence[str] | None = None,
    metrics: Sequence[str] = _DEFAULT_TABLE_METRICS,
) -> str:
    """Markdown table: one row per defense with train/test accuracy, per-attack metrics, maxima.

    Columns: defense, train acc, test acc, then ``<attack> <METRIC>`` for every attack (in
    order of first appearance) and metric, then ``max <METRIC>`` over attacks. Rates print
    as percentages with two decimals, AUC-like values with four; a reading whose target
    rate is below ``1 / N`` is marked ``*`` and explained under the table; an attack a
    defense lacks prints ``-``.

    Args:
      report: a dict from :func:`hampjax.report.report.build_report` / ``report.json``.
      defenses: defense rows to show, in this order; ``None`` shows all in report order.
      metrics: metric keys (see ``report["settings"]["metrics"]``); default AUC,
        ``"tpr@0.1%fpr"`` and ``"tnr@0.1%fnr"``.

    Returns:
      The table (and footnote, if any) as a string ending in a newline.

    Raises:
      ValueError: if ``report`` is not a report, a defense name is unknown, or a metric
        key is unknown or ``metrics`` is empty.

    Example:
      >>> from hampjax.report.report import DefenseResult, Evaluation, build_report
      >>> ev = Evaluation({"none": DefenseResult(1.0, 0.7, {"loss": ([0.9, 0.1], [1, 0])})},
      ...                 num_models=1, num_queries=1, seeds={}, config={}, timings={})
      >>> print(format_table(build_report(ev, bootstrap_resamples=0, seed=0), metrics=["auc"]))
      | defense | train acc | test acc | loss AUC | max AUC |
      |---|---|---|---|---|
      | none | 100.00% | 70.00% | 1.0000 | 1.0000 (loss) |
      <BLANKLINE>
    """
    _check_report(report)
    all_defenses = list(report["defenses"])
    if defenses is None:
        defenses = all_defenses
    if isinstance(defenses, str):
        raise ValueError(f"defenses must be a sequence of defense names, got the string {defenses!r}")
    for d in defenses:
        validation.check_choice("defenses", d, all_defenses)
    known = report["settings"]["metrics"]
    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty sequence of metric keys from {known}, got {metrics!r}")
    for m in metrics:
        validation.check_choice("metrics", m, known)
    attacks: list[str] = []
    for d in defenses:
        attacks += [a for a in report["defenses"][d]["attacks"] if a not in attacks]
    header = ["defense", "train acc", "test acc"]
    header += [f"{a} {_metric_header(m)}" for a in attacks for m in metrics]
    header += [f"max {_metric_header(m)}" for m in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    flagged = False
    for d in defenses:
        entry = report["defenses"][d]
        row = [d, f"{100.0 * entry['train_acc']:.2f}%", f"{100.0 * entry['test_acc']:.2f}%"]
        for a in attacks:
            summary = entry["attacks"].get(a)
            for m in metrics:
                if summary is None:
                    row.append("-")
                    continue
                cell = _fmt_metric(m, summary[m])
                if summary.get(below_resolution_key(m), False):
                    cell += "*"
                    flagged = True
                row.append(cell)
        for m in metrics:
            best = entry[f"max_{m}/attack"]
            cell = _fmt_metric(m, entry[f"max_{m}"])
            if entry["attacks"][best].get(below_resolution_key(m), False):
                cell += "*"
            row.append(f"{cell} ({best})")
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    if flagged:
        text += "\n" + _BELOW_RESOLUTION_NOTE
    return text


def markdown_document(report: Mapping[str, Any]) -> str:
    """The ``report.md`` text: run metadata, :func:`format_table`, per-attack intervals.

    Args:
      report: a dict from :func:`hampjax.report.report.build_report`.

    Returns:
      Markdown text.

    Raises:
      ValueError: if ``report`` is not a report dict.
    """
    _check_report(report)
    run = report["run"]
    boot = report["settings"]["bootstrap"]
    seeds = ", ".join(f"{k}={v}" for k, v in run["seeds"].items()) or "none"
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in run["timings"].items()) or "none"
    parts = [
        "# Membership-inference report\n",
        f"- models: {run['num_models']}, queries per example: {run['num_queries']}",
        f"- seeds: {seeds}",
        f"- config hash: `{run['config_hash']}`",
        f"- versions: {versions}",
        f"- timings: {timings}",
        f"- reading: {report['settings']['reading']}\n",
        "## Summary\n",
        format_table(report),
    ]
    ci = f"{100 * boot['confidence']:g}%"
    detail_metrics = [m for m in report["settings"]["metrics"] if m != "attacker_advantage"]
    parts.append(
        f"## Per attack ({ci} bootstrap intervals, {boot['resamples']} stratified resamples, "
        f"seed {boot['seed']})\n"
    )
    header = ["defense", "attack", "members", "non-members"] + [_metric_header(m) for m in detail_metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d, entry in report["defenses"].items():
        for a, s in entry["attacks"].items():
            row = [d, a, str(s["num_members"]), str(s["num_nonmembers"])]
            for m in detail_metrics:
                cell = _fmt_metric(m, s[m]) + ("*" if s.get(below_resolution_key(m), False) else "")
                if m in s["intervals"]:
                    iv = s["intervals"][m]
                    cell += f" [{_fmt_metric(m, iv['low'])}, {_fmt_metric(m, iv['high'])}]"
                row.append(cell)
            lines.append("| " + " | ".join(row) + " |")
    parts.append("\n".join(lines) + "\n")
    if any("*" in line for line in lines[2:]):
        parts.append(_BELOW_RESOLUTION_NOTE)
    parts += _multi_target_section(report)
    plots = [f"- {d}: " + ", ".join(f"`{f}`" for f in entry["plots"]["histograms"].values())
             for d, entry in report["defenses"].items() if entry.get("plots", {}).get("histograms")]
    if plots:
        parts.append("## Score and distance histograms, members vs non-members\n")
        parts.append("\n".join(plots) + "\n")
    return "\n".join(parts)


def _multi_target_section(report: Mapping[str, Any]) -> list[str]:
    """Mean ± std over targets of every defense with a ``multi_target`` summary."""
    multi = {d: e["multi_target"] for d, e in report["defenses"].items() if e.get("multi_target")}
    if not multi:
        return []
    parts = ["## Mean ± standard deviation over targets (each model in turn the target)\n"]
    for d, summary in multi.items():
        metrics = summary["metrics"]
        spread = lambda m, v: f"{_fmt_metric(m, v['mean'])} ± {_fmt_metric(m, v['std'])}"  # noqa: E731
        lines = [f"{d}: targets {summary['targets']}; train acc "
                 f"{spread('tpr', summary['train_acc'])}, test acc {spread('tpr', summary['test_acc'])}\n",
                 "| attack | " + " | ".join(_metric_header(m) for m in metrics) + " |",
                 "|" + "---|" * (len(metrics) + 1)]
        for a, values in summary["attacks"].items():
            lines.append(f"| {a} | " + " | ".join(spread(m, values[m]) for m in metrics) + " |")
        parts.append("\n".join(lines) + "\n")
    return parts
