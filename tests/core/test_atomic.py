"""hampjax.atomic: whole-file replacement, no temp files left behind, JSON helpers."""

import json
import os

import numpy as np
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


def test_writes_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic.write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640
    atomic.write_bytes(tmp_path / "b.bin", b"x")
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o666 & ~old


def test_corrupt_json_names_the_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"a": [1, 2')
    with pytest.raises(ValueError, match=r"run\.json is corrupt or truncated .* delete"):
        atomic.read_json(path)
    with pytest.raises(ValueError, match="use a new workdir"):
        atomic.read_json(path, recover="use a new workdir")


def test_load_npz_and_npy_round_trip_and_name_corrupt_files(tmp_path):
    path = tmp_path / "r.npz"
    atomic.write_with(path, lambda f: np.savez(f, a=np.arange(3), b=np.eye(2)))
    loaded = atomic.load_npz(path)
    assert sorted(loaded) == ["a", "b"] and loaded["a"].tolist() == [0, 1, 2]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"r\.npz is corrupt or truncated.*retrain"):
        atomic.load_npz(path, recover="delete it to retrain")
    with pytest.raises(FileNotFoundError):
        atomic.load_npz(tmp_path / "missing.npz")
    npy = tmp_path / "k.npy"
    np.save(npy, np.ones((2, 3), bool))
    assert atomic.load_npy(npy).shape == (2, 3)
    npy.write_bytes(npy.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"k\.npy is corrupt or truncated"):
        atomic.load_npy(npy)
    np.save(npy, np.asarray([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="holds pickled objects") as err:
        atomic.load_npy(npy)
    assert "allow_pickle" not in str(err.value)


def test_clean_stale_temps_removes_only_old_temp_files(tmp_path):
    sub = tmp_path / "models_00000-00001"
    sub.mkdir()
    old_temp = sub / ".tmp-a1b2_c3-result.npz.tmp"
    new_temp = tmp_path / ".tmp-zz9-run.json.tmp"
    other = tmp_path / ".tmp-notes"
    for path in (old_temp, new_temp, other):
        path.write_bytes(b"x")
    os.utime(old_temp, (1, 1))
    os.utime(other, (1, 1))
    assert atomic.clean_stale_temps(tmp_path) == [str(old_temp)]
    assert new_temp.exists() and other.exists()  # in flight in this process / not ours
    assert atomic.clean_stale_temps(tmp_path / "missing") == []


def test_temp_file_of_an_interrupted_write_is_recognized(tmp_path):
    names = []

    def writer(f):
        names.extend(os.listdir(tmp_path))  # the temp file, while the write is in flight
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic.write_with(tmp_path / "result.npz", writer)
    assert len(names) == 1 and atomic._TEMP_PATTERN.match(names[0])
    assert names[0].endswith("-result.npz.tmp") and os.listdir(tmp_path) == []
