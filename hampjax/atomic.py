"""Atomic file writes: a temp file in the target's directory, then ``os.replace``.

A reader (or a resumed run) sees either the previous file or the complete new one, never a
partial write; a failed write removes its temp file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import IO

__all__ = ["write_with", "write_bytes", "write_json", "read_json"]


def write_with(path: str | os.PathLike, writer: Callable[[IO[bytes]], None]) -> None:
    """Call ``writer(f)`` on a binary temp file next to ``path``, then rename it to ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
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


def read_json(path: str | os.PathLike, default: object = None) -> object:
    """The JSON value in ``path``, or ``default`` when the file does not exist."""
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)
