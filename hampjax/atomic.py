"""Atomic file writes and checked reads of state files.

Writes go to a temp file in the target's directory, then ``os.replace``: a reader (or a resumed
run) sees either the previous file or the complete new one, never a partial write; a failed
write removes its temp file, and :func:`clean_stale_temps` removes the temp files of a process
that was killed mid-write. Written files get the usual ``0o666 & ~umask`` permissions.

Readers (:func:`read_json`, :func:`load_npz`, :func:`load_npy`) turn a corrupt or truncated file
into a ``ValueError`` that names the file and says how to recover, instead of a bare
``JSONDecodeError``, ``BadZipFile`` or ``EOFError``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable
from typing import IO

import numpy as np

__all__ = [
    "write_with",
    "write_bytes",
    "write_json",
    "read_json",
    "load_npz",
    "load_npy",
    "clean_stale_temps",
    "TEMP_PREFIX",
]

# Temp files are named ``.tmp-<random>-<target name>.tmp`` so that leftovers are recognizable.
TEMP_PREFIX = ".tmp-"
_TEMP_SUFFIX = ".tmp"
_TEMP_PATTERN = re.compile(r"^\.tmp-[A-Za-z0-9_]+-.+\.tmp$")

# Temp files older than this process were left by an earlier (killed) process.
_PROCESS_START = time.time()


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (and put it back at once)
    os.umask(mask)
    return mask


def write_with(path: str | os.PathLike, writer: Callable[[IO[bytes]], None]) -> None:
    """Call ``writer(f)`` on a binary temp file next to ``path``, then rename it to ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX,
                               suffix="-" + os.path.basename(path) + _TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as f:
            writer(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_with(path, lambda f: f.write(data))


def write_json(path: str | os.PathLike, value: object, *, sort_keys: bool = False) -> None:
    """Write ``value`` as indented JSON (``indent=2``) to ``path`` atomically."""
    write_bytes(path, json.dumps(value, indent=2, sort_keys=sort_keys).encode())


def _recovery(path: str, recover: str | None) -> str:
    return recover or f"delete {path!r} to have it written again, or use a new directory"


def read_json(path: str | os.PathLike, default: object = None, *,
              recover: str | None = None) -> object:
    """The JSON value in ``path``, or ``default`` when the file does not exist.

    Args:
      path: the file.
      default: returned when ``path`` does not exist.
      recover: what the error message tells the user to do about a corrupt file (default:
        delete it or use a new directory).

    Raises:
      ValueError: naming the file when it is not valid JSON (corrupt or truncated).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return default
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is corrupt or truncated (not valid JSON: {e}); "
                         f"{_recovery(path, recover)}") from None


def load_npz(path: str | os.PathLike, *, recover: str | None = None) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file as a dict (read eagerly; no pickles).

    Raises:
      FileNotFoundError: when ``path`` does not exist.
      ValueError: naming the file when it is corrupt or truncated, or holds pickled objects.
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(f"{path} is corrupt or truncated ({type(e).__name__}: "
                         f"{_first_line(e)}); {_recovery(path, recover)}") from None


def load_npy(path: str | os.PathLike, *, recover: str | None = None) -> np.ndarray:
    """The array of an ``.npy`` file (no pickles).

    Raises:
      FileNotFoundError: when ``path`` does not exist.
      ValueError: naming the file when it is corrupt or truncated, or holds pickled objects.
    """
    path = os.fspath(path)
    try:
        value = np.load(path, allow_pickle=False)
        if not isinstance(value, np.ndarray):
            raise ValueError("not an .npy array")
        return value
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is corrupt or truncated ({type(e).__name__}: "
                         f"{_first_line(e)}); {_recovery(path, recover)}") from None


def _first_line(e: BaseException) -> str:
    # numpy's pickle error suggests allow_pickle=True, which is not the way out here.
    text = str(e).split("\n")[0]
    return "holds pickled objects" if "allow_pickle" in text else text


def clean_stale_temps(directory: str | os.PathLike, *, older_than: float | None = None) -> list[str]:
    """Remove the temp files of interrupted atomic writes under ``directory`` (recursively).

    Args:
      directory: the directory to clean (missing: nothing to do).
      older_than: only temp files last modified before this time (seconds since the epoch)
        are removed; default: the start of this process, so that writes in flight in this
        process are left alone.

    Returns:
      The removed paths.
    """
    cutoff = _PROCESS_START if older_than is None else older_than
    removed = []
    for root, _, files in os.walk(os.fspath(directory)):
        for name in files:
            if not _TEMP_PATTERN.match(name):
                continue
            path = os.path.join(root, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.unlink(path)
                    removed.append(path)
            except FileNotFoundError:  # removed meanwhile
                pass
    return removed
