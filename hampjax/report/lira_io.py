"""Import and export of the LiRA reference layout, to move scores between tools.

The layout (one directory per model, as written by the reference LiRA code of Carlini et
al.)::

    PATH/
      experiment-0_M/
        keep.npy             bool [N]: True where example j was in model 0's training set
        scores/<name>.npy    float [N, Q]: per-example, per-query scores (LiRA: logit-scaled
                             confidence of the true class, log p_y - log(1 - p_y))
        logits/<name>.npy    float [N, Q, C]: raw logits (optional; older reference versions
                             store only these, some with an extra axis: [N, 1, Q, C])
      experiment-1_M/
      ...

``<name>`` is free (the reference uses the zero-padded epoch, e.g. ``0000000100``).

What :func:`import_lira_layout` reads, precisely: every immediate subdirectory of ``PATH``
that contains a ``keep.npy`` is one model; other entries are ignored. Models are ordered
by the first integer in the directory name (``experiment-2_16`` before ``experiment-10_16``),
then by name; directories without an integer come last, by name. From each model it reads
``keep.npy`` (1-D bool, or 0/1 integers) and ``scores/<name>.npy`` (``[N, Q]``, or ``[N]``
read as ``Q = 1``). :func:`import_lira_logits` reads ``logits/<name>.npy`` instead
(``[N, Q, C]``, or ``[N, 1, Q, C]`` with the size-1 axis dropped). With ``name=None`` each
model's folder must hold exactly one ``.npy`` file; otherwise pass ``name``. Every array is
read with ``np.load(..., allow_pickle=False)``: nothing is ever unpickled.

To turn imported logits into LiRA scores use
:func:`hampjax.scores.logit_scaled_score` with the example labels.
"""

from __future__ import annotations

import io
import os
import re
from typing import Any, NamedTuple

import numpy as np

from hampjax import atomic, validation
from hampjax.report.results import _check_name
from hampjax.training.membership import check_keep

__all__ = [
    "LiraLogits",
    "LiraScores",
    "export_lira_layout",
    "import_lira_layout",
    "import_lira_logits",
]

_FIRST_INT = re.compile(r"(\d+)")


class LiraScores(NamedTuple):
    """Keep matrix and per-model scores of a LiRA layout.

    Attributes:
      keep: bool ``[M, N]``.
      scores: floating ``[M, N, Q]`` (dtype as stored).
    """

    keep: np.ndarray
    scores: np.ndarray


class LiraLogits(NamedTuple):
    """Keep matrix and per-model logits of a LiRA layout.

    Attributes:
      keep: bool ``[M, N]``.
      logits: floating ``[M, N, Q, C]`` (dtype as stored).
    """

    keep: np.ndarray
    logits: np.ndarray


def _check_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a directory path (str or os.PathLike), got {path!r}")
    return os.fspath(path)


def _check_float_array(name: str, x: Any, ndim: int) -> np.ndarray:
    arr = np.asarray(x)
    validation.check_ndim(name, arr, ndim)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must have a floating dtype, got {arr.dtype}")
    validation.check_finite(name, arr)
    return arr


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def export_lira_layout(
    path: str | os.PathLike,
    keep: Any,
    scores: Any,
    *,
    logits: Any = None,
    name: str = "final",
) -> None:
    """Write ``keep``, ``scores`` (and optionally ``logits``) in the LiRA reference layout.

    Model ``m`` of ``M`` goes to ``PATH/experiment-m_M/`` with ``keep.npy`` (bool ``[N]``),
    ``scores/<name>.npy`` (``[N, Q]``) and, if given, ``logits/<name>.npy``
    (``[N, Q, C]``). Each file is written atomically (temp file, then rename); arrays keep
    their dtype.

    Args:
      path: target directory; it must not exist yet or be empty (runs are never mixed).
      keep: bool ``[M, N]`` keep matrix; every model keeps at least one example.
      scores: floating ``[M, N, Q]`` finite per-model scores.
      logits: optional floating ``[M, N, Q, C]`` finite per-model logits.
      name: file stem of the score/logit files (letters, digits, ``_.+-``).

    Raises:
      ValueError: if ``path`` exists and is not an empty directory, ``keep`` is not a valid
        keep matrix, ``scores``/``logits`` have the wrong rank, dtype, leading shape or
        non-finite values, or ``name`` is not a plain file stem.

    Example:
      >>> import tempfile
      >>> keep = np.array([[True, False], [False, True]])
      >>> with tempfile.TemporaryDirectory() as d:
      ...     export_lira_layout(d, keep, np.zeros((2, 2, 1)))
      ...     sorted(os.listdir(d)), sorted(os.listdir(os.path.join(d, "experiment-0_2")))
      (['experiment-0_2', 'experiment-1_2'], ['keep.npy', 'scores'])
    """
    path = _check_path(path)
    keep = check_keep(keep)
    scores = _check_float_array("scores", scores, 3)
    if scores.shape[:2] != keep.shape:
        raise ValueError(
            f"scores must have shape [M, N, Q] with [M, N] = keep.shape={keep.shape}, got {scores.shape}"
        )
    if logits is not None:
        logits = _check_float_array("logits", logits, 4)
        if logits.shape[:3] != scores.shape:
            raise ValueError(
                f"logits must have shape [M, N, Q, C] with [M, N, Q] = scores.shape={scores.shape}, "
                f"got {logits.shape}"
            )
    _check_name("name", name)
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise ValueError(f"path must be a new or empty directory (runs are never mixed), got {path!r}")
    num_models = keep.shape[0]
    for m in range(num_models):
        model_dir = os.path.join(path, f"experiment-{m}_{num_models}")
        os.makedirs(os.path.join(model_dir, "scores"), exist_ok=True)
        atomic.write_bytes(os.path.join(model_dir, "keep.npy"), _npy_bytes(keep[m]))
        atomic.write_bytes(os.path.join(model_dir, "scores", f"{name}.npy"), _npy_bytes(scores[m]))
        if logits is not None:
            os.makedirs(os.path.join(model_dir, "logits"), exist_ok=True)
            atomic.write_bytes(os.path.join(model_dir, "logits", f"{name}.npy"), _npy_bytes(logits[m]))


def _model_dirs(path: str) -> list[str]:
    if not os.path.isdir(path):
        raise ValueError(f"path must be an existing directory in the LiRA layout, got {path!r}")
    names = [e for e in os.listdir(path) if os.path.isfile(os.path.join(path, e, "keep.npy"))]
    if not names:
        raise ValueError(f"path must contain model directories with a keep.npy (LiRA layout); {path!r} has none")

    def order(entry: str) -> tuple[int, int, str]:
        match = _FIRST_INT.search(entry)
        return (0, int(match.group(1)), entry) if match else (1, 0, entry)

    return [os.path.join(path, e) for e in sorted(names, key=order)]


def _load_keep_row(model_dir: str) -> np.ndarray:
    file = os.path.join(model_dir, "keep.npy")
    row = np.load(file, allow_pickle=False)
    if row.ndim != 1:
        raise ValueError(f"keep.npy must be 1-D [N], got shape {row.shape} in {file!r}")
    if row.dtype != np.bool_:
        if not np.issubdtype(row.dtype, np.integer) or not np.all((row == 0) | (row == 1)):
            raise ValueError(f"keep.npy must be bool or 0/1 integers, got dtype {row.dtype} in {file!r}")
        row = row == 1
    return row


def _array_file(model_dir: str, folder: str, name: str | None) -> str:
    directory = os.path.join(model_dir, folder)
    if name is not None:
        file = os.path.join(directory, f"{name}.npy")
        if not os.path.isfile(file):
            raise ValueError(f"name={name!r}: model directory {model_dir!r} has no {folder}/{name}.npy")
        return file
    found = sorted(f for f in os.listdir(directory) if f.endswith(".npy")) if os.path.isdir(directory) else []
    if len(found) != 1:
        raise ValueError(
            f"name must be given when a model's {folder}/ does not hold exactly one .npy file; "
            f"{directory!r} holds {found}"
        )
    return os.path.join(directory, found[0])


def _import(path: Any, folder: str, name: str | None) -> tuple[np.ndarray, np.ndarray]:
    path = _check_path(path)
    if name is not None:
        _check_name("name", name)
    rows, arrays = [], []
    for model_dir in _model_dirs(path):
        row = _load_keep_row(model_dir)
        file = _array_file(model_dir, folder, name)
        arr = np.load(file, allow_pickle=False)
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"{folder} files must have a floating dtype, got {arr.dtype} in {file!r}")
        if folder == "scores" and arr.ndim == 1:
            arr = arr[:, None]
        if folder == "logits" and arr.ndim == 4 and arr.shape[1] == 1:
            arr = arr[:, 0]
        want = 2 if folder == "scores" else 3
        if arr.ndim != want or arr.shape[0] != row.shape[0]:
            expect = "[N, Q] (or [N])" if folder == "scores" else "[N, Q, C] (or [N, 1, Q, C])"
            raise ValueError(
                f"{folder} files must have shape {expect} with N = len(keep.npy) = {row.shape[0]}, "
                f"got {arr.shape} in {file!r}"
            )
        rows.append(row)
        arrays.append(arr)
    for what, items in (("keep.npy", rows), (f"{folder} files", arrays)):
        shapes = sorted({a.shape for a in items})
        if len(shapes) > 1:
            raise ValueError(f"{what} must have one shape across models, found {shapes} under {path!r}")
    return check_keep(np.stack(rows)), np.stack(arrays)


def import_lira_layout(path: str | os.PathLike, *, name: str | None = None) -> LiraScores:
    """Read ``keep [M, N]`` and ``scores [M, N, Q]`` from a LiRA layout (see module doc).

    Args:
      path: the layout's root directory (holding one directory per model).
      name: stem of the score file in every ``scores/`` folder; ``None`` requires exactly
        one ``.npy`` file there.

    Returns:
      :class:`LiraScores` ``(keep bool [M, N], scores [M, N, Q])``, models in the order
      described in the module docstring.

    Raises:
      ValueError: if ``path`` has no model directory, a ``keep.npy`` is not 1-D bool/0-1,
        a score file is missing, ambiguous, not floating or has the wrong shape, shapes
        differ across models, or a model keeps no example.

    Example:
      >>> import tempfile
      >>> keep = np.array([[True, False], [False, True]])
      >>> with tempfile.TemporaryDirectory() as d:
      ...     export_lira_layout(d, keep, np.arange(4.0).reshape(2, 2, 1))
      ...     k, s = import_lira_layout(d)
      >>> k.tolist(), s[:, :, 0].tolist()
      ([[True, False], [False, True]], [[0.0, 1.0], [2.0, 3.0]])
    """
    keep, scores = _import(path, "scores", name)
    return LiraScores(keep=keep, scores=scores)


def import_lira_logits(path: str | os.PathLike, *, name: str | None = None) -> LiraLogits:
    """Read ``keep [M, N]`` and ``logits [M, N, Q, C]`` from a LiRA layout's ``logits/``.

    Args:
      path: the layout's root directory.
      name: stem of the logit file in every ``logits/`` folder; ``None`` requires exactly
        one ``.npy`` file there.

    Returns:
      :class:`LiraLogits` ``(keep bool [M, N], logits [M, N, Q, C])``.

    Raises:
      ValueError: as :func:`import_lira_layout`, for the ``logits/`` files (``[N, Q, C]``
        or ``[N, 1, Q, C]``).

    Example:
      >>> import tempfile
      >>> keep = np.array([[True, False], [False, True]])
      >>> with tempfile.TemporaryDirectory() as d:
      ...     export_lira_layout(d, keep, np.zeros((2, 2, 1)), logits=np.ones((2, 2, 1, 3)))
      ...     import_lira_logits(d).logits.shape
      (2, 2, 1, 3)
    """
    keep, logits = _import(path, "logits", name)
    return LiraLogits(keep=keep, logits=logits)
