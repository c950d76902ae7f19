"""Command-line plumbing shared by the entry points under ``experiments/``: one-line errors.

A user error on the command line (a bad flag value, a workdir that is a file, a corrupt run
directory file, a missing dataset archive) ends the program with exit status 2 and ONE line on
stderr, ``<prog>: error: <message>``, with no traceback. The message names the flag (argparse
and the types below) or the file (the library's ``ValueError`` messages).

This module parses nothing by itself: the scripts own their flags, and the library never reads
them. ``HAMPJAX_TRACEBACK=1`` re-raises the caught error with its traceback (for debugging).

Example:
  >>> parser = ArgumentParser(prog="demo.py")
  >>> _ = parser.add_argument("--seed", type=int_at_least(0), default=0)
  >>> parser.parse_args(["--seed", "3"]).seed
  3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

__all__ = [
    "ArgumentParser",
    "fail",
    "int_at_least",
    "int_in_range",
    "float_in_range",
    "check_workdir",
    "check_output_file",
    "user_errors",
    "USER_ERRORS",
]

MAX_SEED = 2**63 - 1
"""Largest seed every consumer accepts (NumPy's generators and ``jax.random.key``)."""


def one_line(message: object) -> str:
    """``message`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(message).split())


def fail(message: object, *, prog: str | None = None) -> NoReturn:
    """Print ``<prog>: error: <message>`` (one line) to stderr and exit with status 2."""
    prefix = f"{prog}: error: " if prog else "error: "
    print(prefix + one_line(message), file=sys.stderr)
    sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line on stderr and exit status 2.

    argparse prints the usage block before the message; here the message alone is printed
    (``--help`` still shows the usage). Messages name the flag: ``argument --seed: expected an
    integer >= 0, got '-1'``.
    """

    def error(self, message: str) -> NoReturn:  # noqa: D102 (argparse's hook)
        fail(message, prog=self.prog)


def _parse_int(text: str) -> int:
    try:
        return int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= minimum`` (and ``<= maximum`` when given)."""
    if maximum is not None:
        return int_in_range(minimum, maximum)

    def parse(text: str) -> int:
        value = _parse_int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers in ``[low, high]``."""

    def parse(text: str) -> int:
        value = _parse_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {text!r}")
        return value

    parse.__name__ = f"int in [{low}, {high}]"
    return parse


def float_in_range(low: float, high: float, *, low_inclusive: bool = True,
                   high_inclusive: bool = True) -> Callable[[str], float]:
    """An argparse ``type`` accepting finite floats in the given interval."""
    lo, hi = ("[" if low_inclusive else "("), ("]" if high_inclusive else ")")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = (value >= low if low_inclusive else value > low) and (
            value <= high if high_inclusive else value < high)
        if not ok or value != value:
            raise argparse.ArgumentTypeError(f"expected a number in {lo}{low}, {high}{hi}, got {text!r}")
        return value

    parse.__name__ = f"float in {lo}{low}, {high}{hi}"
    return parse


def _file_on_the_way(path: str) -> str | None:
    """The first existing non-directory among ``path``'s parents (a workdir cannot be made there)."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent if parent and not os.path.isdir(parent) else None


def check_workdir(flag: str, path: str) -> str:
    """Raise ``ValueError`` naming ``flag`` unless ``path`` is a directory or can be created.

    Example:
      >>> check_workdir("--workdir", "/tmp")
      '/tmp'
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"{flag} must be a non-empty path, got {path!r}")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag}: {path!r} is a file, not a directory")
    blocker = _file_on_the_way(path)
    if blocker is not None:
        raise ValueError(f"{flag}: cannot create {path!r}: {blocker!r} is a file, not a directory")
    return path


def check_output_file(flag: str, path: str) -> str:
    """Raise ``ValueError`` naming ``flag`` unless a file can be written at ``path``."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"{flag} must be a non-empty path, got {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{flag}: {path!r} is a directory, expected a file path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{flag}: the directory {parent!r} of {path!r} does not exist")
    return path


USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)
"""What :func:`user_errors` turns into one line: the library's argument/file errors."""


@contextlib.contextmanager
def user_errors(prog: str | None = None) -> Iterator[None]:
    """Turn the library's ``ValueError`` / ``FileNotFoundError`` into :func:`fail` (exit 2).

    ``HAMPJAX_TRACEBACK=1`` in the environment re-raises them instead (with the traceback).
    """
    try:
        yield
    except USER_ERRORS as e:
        if os.environ.get("HAMPJAX_TRACEBACK"):
            raise
        fail(e, prog=prog)
