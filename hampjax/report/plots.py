"""Log-log ROC plots and score histograms, rendered to PNG bytes.

matplotlib is an optional dependency (``pip install hampjax[plots]``). It is imported lazily,
only when a plot is rendered, and only through its object-oriented API (``Figure`` plus the
Agg canvas): no ``pyplot``, no global backend switch, nothing shown on screen. Call
:func:`matplotlib_available` to check before rendering.

The renderers return PNG bytes instead of writing files, so callers decide where and how
(atomically) the bytes are written; :func:`hampjax.report.report.write_report` writes them
as ``roc_<defense>.png`` and ``roc_<attack>.png``, and the member / non-member histograms of
selected attacks as ``hist_<defense>_<attack>.png``.

ROC axes follow the LiRA convention: both logarithmic from ``1e-5`` to ``1``, with the
chance diagonal ``TPR = FPR``. ROC points with ``FPR = 0`` or ``TPR = 0`` cannot be drawn on
a log axis; they are placed at ``1e-6``, just outside the visible range, so each curve enters
from the lower-left edge instead of starting at its first positive point.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from hampjax import validation
from hampjax.metrics.roc import auc, roc_curve, summarize

__all__ = [
    "AXIS_MIN",
    "import_matplotlib",
    "matplotlib_available",
    "render_roc_png",
    "render_score_histogram_png",
]

AXIS_MIN = 1e-5
"""Lower limit of both log axes of a ROC plot (the upper limit is 1)."""

_OFF_AXIS = 1e-6  # where zero rates are drawn: below AXIS_MIN, so off the visible plot


def import_matplotlib() -> tuple[Any, Any]:
    """Return ``(Figure, FigureCanvasAgg)`` (the Agg backend, no pyplot state).

    Raises:
      ImportError: if matplotlib is missing (``pip install 'hampjax[plots]'``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg


# TODO(lead): remove once hampjax/repro/figures.py calls import_matplotlib().
_import_matplotlib = import_matplotlib


def matplotlib_available() -> bool:
    """True if matplotlib can be imported (plots can be rendered).

    Returns:
      Whether ``matplotlib`` (Agg backend) is importable.

    Example:
      >>> isinstance(matplotlib_available(), bool)
      True
    """
    try:
        import_matplotlib()
    except ImportError:
        return False
    return True


def _check_curves(curves: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(
            f"curves must be a non-empty mapping name -> (scores [N], is_member [N]), got {curves!r}"
        )
    out = {}
    for name, pair in curves.items():
        if not isinstance(name, str):
            raise ValueError(f"curves keys must be strings (curve labels), got {name!r}")
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"curves[{name!r}] must be a pair (scores [N], is_member [N])")
        out[name] = (np.asarray(pair[0]), np.asarray(pair[1]))
    return out


def _png_bytes(fig: Any, canvas_cls: Any) -> bytes:
    canvas_cls(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()


def render_roc_png(curves: Mapping[str, tuple[Any, Any]], *, title: str) -> bytes:
    """Render log-log ROC curves (both axes ``1e-5`` to ``1``, with the diagonal) to PNG.

    Each curve is the exact ROC of :func:`hampjax.metrics.roc_curve`; its legend entry shows
    the AUC and the strict TPR at 0.1% FPR.

    Args:
      curves: mapping ``label -> (scores [N], is_member [N])``, drawn in mapping order;
        scores finite (higher = member), ``is_member`` 0/1 or bool with both classes.
      title: the plot title.

    Returns:
      The PNG file contents as ``bytes``.

    Raises:
      ValueError: if ``curves`` is empty or not a mapping of pairs, or any scores/labels
        are invalid (see :func:`hampjax.metrics.roc_curve`).
      ImportError: if matplotlib is not installed.

    Example:
      >>> png = render_roc_png({"attack": ([0.9, 0.2, 0.7, 0.1], [1, 0, 1, 0])}, title="t")
      >>> png[:4] == b"\\x89PNG"
      True
    """
    checked = _check_curves(curves)
    rocs = {}
    for name, (scores, labels) in checked.items():
        summary = summarize(scores, labels, fprs=(1e-3,), fnrs=())
        rocs[name] = (roc_curve(scores, labels), summary)  # validates before matplotlib loads
    figure_cls, canvas_cls = import_matplotlib()
    fig = figure_cls(figsize=(5.0, 5.0))
    ax = fig.add_subplot(1, 1, 1)
    for name, (roc, summary) in rocs.items():
        label = f"{name} (AUC {summary['auc']:.3f}, TPR@0.1%FPR {100 * summary['tpr@0.1%fpr']:.2f}%)"
        ax.plot(np.maximum(roc.fpr, _OFF_AXIS), np.maximum(roc.tpr, _OFF_AXIS), label=label)
    ax.plot([AXIS_MIN, 1.0], [AXIS_MIN, 1.0], linestyle="--", color="gray", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(AXIS_MIN, 1.0)
    ax.set_ylim(AXIS_MIN, 1.0)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return _png_bytes(fig, canvas_cls)


def render_score_histogram_png(scores: Any, is_member: Any, *, title: str, bins: int = 50,
                               xlabel: str = "Attack score (higher = member)") -> bytes:
    """Render overlaid histograms of member and non-member scores to PNG.

    Args:
      scores: ``[N]`` finite attack scores.
      is_member: ``[N]`` 0/1 or bool membership labels with both classes present.
      title: the plot title.
      bins: number of histogram bins (shared by both classes), ``>= 1``.
      xlabel: the x-axis label (what the scores are, e.g. a perturbation distance).

    Returns:
      The PNG file contents as ``bytes``.

    Raises:
      ValueError: on invalid scores/labels (see :func:`hampjax.metrics.roc_curve`) or
        ``bins < 1``.
      ImportError: if matplotlib is not installed.

    Example:
      >>> png = render_score_histogram_png([0.9, 0.2, 0.7, 0.1], [1, 0, 1, 0], title="t")
      >>> png[:4] == b"\\x89PNG"
      True
    """
    bins = validation.check_positive_int("bins", bins)
    auc(scores, labels=is_member)  # validates scores and labels
    s = np.asarray(scores, dtype=np.float64)
    member = np.asarray(is_member) == 1
    edges = np.histogram_bin_edges(s, bins=bins)
    figure_cls, canvas_cls = import_matplotlib()
    fig = figure_cls(figsize=(5.0, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(s[~member], bins=edges, alpha=0.5, density=True, label=f"non-members ({int((~member).sum())})")
    ax.hist(s[member], bins=edges, alpha=0.5, density=True, label=f"members ({int(member.sum())})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Density")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _png_bytes(fig, canvas_cls)
