"""One run per directory at a time: an OS file lock plus a note of who holds it.

:class:`RunLock` takes an exclusive, non-blocking ``flock`` on ``<directory>/.lock`` (through
``filelock``) and writes ``<directory>/.lock.json`` with the holder's pid, host and start time.
A second process asking for the same directory gets a :class:`RunLockError` naming the holder.
The OS releases the lock when its process dies, so a run killed with ``kill -9`` does not block
the next one; the next one takes the lock over with a warning naming the dead pid.

Locks on different directories nest (an evaluation locks its run directory, and training then
locks ``<run_dir>/train/<defense>``); one process does not take the same directory twice.

Example::

    with RunLock(workdir, what="training"):
        ...  # nothing else trains in workdir meanwhile
"""

from __future__ import annotations

import datetime
import os
import socket
import warnings

import filelock

from hampjax import atomic

__all__ = ["RunLock", "RunLockError"]

_LOCK, _INFO = ".lock", ".lock.json"


class RunLockError(RuntimeError):
    """Another process holds the directory's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Context manager holding the exclusive lock of a run directory.

    Args:
      directory: the run directory (created if missing).
      what: what the lock is for, in messages (e.g. ``"training"``, ``"evaluation"``).

    Raises (on entering):
      RunLockError: when another live process holds the lock; the message names its pid,
        host and start time.
    """

    def __init__(self, directory: str | os.PathLike, *, what: str = "run"):
        self.directory = os.path.abspath(os.fspath(directory))
        self.what = what
        self._lock: filelock.BaseFileLock | None = None

    @property
    def info_path(self) -> str:
        return os.path.join(self.directory, _INFO)

    def holder(self) -> dict | None:
        """The recorded holder (``pid``, ``host``, ``since``, ``what``), or None."""
        try:
            info = atomic.read_json(self.info_path)
        except ValueError:  # a torn note says nothing about the holder
            return None
        return info if isinstance(info, dict) else None

    def __enter__(self) -> "RunLock":
        if self._lock is not None:
            raise RuntimeError(f"RunLock on {self.directory} is already held by this object")
        os.makedirs(self.directory, exist_ok=True)
        lock = filelock.FileLock(os.path.join(self.directory, _LOCK), timeout=0,
                                 thread_local=False, is_singleton=False)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RunLockError(self._held_message()) from None
        self._lock = lock
        host = socket.gethostname()
        previous = self.holder()
        if previous is not None and previous.get("pid") != os.getpid():
            pid, where = previous.get("pid"), previous.get("host")
            if where == host and isinstance(pid, int) and not _pid_alive(pid):
                warnings.warn(f"{self.directory}: taking over stale lock of pid {pid} on {where} "
                              f"(since {previous.get('since')})", RuntimeWarning, stacklevel=2)
            elif where != host:
                warnings.warn(f"{self.directory}: taking over the lock last recorded for pid {pid} "
                              f"on {where}; its OS lock was free", RuntimeWarning, stacklevel=2)
        atomic.write_json(self.info_path, {
            "pid": os.getpid(), "host": host, "what": self.what,
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        })
        return self

    def __exit__(self, *exc) -> None:
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            info = self.holder()
            if info is not None and info.get("pid") == os.getpid():
                os.unlink(self.info_path)
        except OSError:
            pass
        finally:
            lock.release()

    def _held_message(self) -> str:
        info = self.holder()
        if info is None:
            who = "another process (no holder recorded yet)"
        else:
            who = (f"pid {info.get('pid')} on {info.get('host')} "
                   f"({info.get('what', 'run')} since {info.get('since')})")
        return (f"{self.directory} is locked by {who}: only one {self.what} may use a directory "
                f"at a time. Wait for it to finish, stop it, or use another directory.")

    def __repr__(self) -> str:
        return f"RunLock({self.directory!r}, what={self.what!r})"
