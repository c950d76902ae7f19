"""hampjax.runlock: one holder per directory, a clear error naming it, stale locks taken over."""

import json
import os
import socket
import subprocess
import sys

import pytest

from hampjax.runlock import RunLock, RunLockError

_HOLDER = """
import sys
from hampjax.runlock import RunLock
with RunLock(sys.argv[1], what="training"):
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes stdin
"""


def test_second_process_gets_an_error_naming_the_holder(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockError) as err:
            with RunLock(tmp_path, what="evaluation"):
                pass
        message = str(err.value)
        assert f"pid {holder.pid} on {socket.gethostname()}" in message
        assert "training since 20" in message and "only one evaluation" in message
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert holder.returncode == 0
    with RunLock(tmp_path) as lock:  # free again once the holder is gone
        assert json.loads((tmp_path / ".lock.json").read_text())["pid"] == os.getpid()
        assert lock.holder()["what"] == "run"
    assert not (tmp_path / ".lock.json").exists()


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    (tmp_path / ".lock").write_text("")
    (tmp_path / ".lock.json").write_text(json.dumps(
        {"pid": dead.pid, "host": host, "since": "2026-01-01T00:00:00+00:00", "what": "run"}))
    with pytest.warns(RuntimeWarning, match=f"taking over stale lock of pid {dead.pid} on {host}"):
        with RunLock(tmp_path):
            assert json.loads((tmp_path / ".lock.json").read_text())["pid"] == os.getpid()


def test_nested_locks_on_different_directories(tmp_path):
    with RunLock(tmp_path / "run", what="evaluation"):
        with RunLock(tmp_path / "run" / "train" / "hamp", what="training"):
            assert (tmp_path / "run" / "train" / "hamp" / ".lock.json").exists()
        with pytest.raises(RunLockError, match=f"locked by pid {os.getpid()}"):
            with RunLock(tmp_path / "run"):
                pass
