"""hampjax.atomic: whole-file replacement, no temp files left behind, JSON helpers."""

import json
import os

import pytest

from hampjax import atomic


def test_write_bytes_replaces_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.bin"
    atomic.write_bytes(path, b"one")
    atomic.write_bytes(path, b"two")
    assert path.read_bytes() == b"two" and os.listdir(tmp_path) == ["a.bin"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic.write_bytes(path, b"old")

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic.write_with(path, fail)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.txt"]


def test_json_round_trip_and_key_order(tmp_path):
    path = tmp_path / "r.json"
    value = {"b": 1, "a": [1.5, None, float("nan")]}
    atomic.write_json(path, value)
    assert path.read_text() == json.dumps(value, indent=2)  # insertion order kept
    loaded = atomic.read_json(path)
    assert list(loaded) == ["b", "a"] and loaded["a"][:2] == [1.5, None]
    atomic.write_json(path, value, sort_keys=True)
    assert list(atomic.read_json(path)) == ["a", "b"]
    assert atomic.read_json(tmp_path / "missing.json", {"x": 0}) == {"x": 0}
    assert atomic.read_json(tmp_path / "missing.json") is None
