"""Purchase100 / Texas100 / Location30 loaders on tiny archives written in the exact raw formats.

The loaders check the published row counts (and Location30's archive size): the fixtures are
smaller, so most tests load them through sources without those counts (``_fixture_sources``);
the integrity tests at the end use the real sources.
"""

import dataclasses
import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

from hampjax.data import tabular
from hampjax.data.tabular import (
    LOCATION30,
    PURCHASE100,
    TEXAS100,
    TEXAS_NOTICE,
    load_location30,
    load_purchase100,
    load_tabular,
    load_texas100,
)


@pytest.fixture()
def real_sources():
    """Requested by the tests that load through the real sources (published counts checked)."""


@pytest.fixture(autouse=True)
def _fixture_sources(request, monkeypatch):
    if "real_sources" in request.fixturenames:
        return
    for name in ("PURCHASE100", "TEXAS100", "LOCATION30"):
        source = getattr(tabular, name)
        monkeypatch.setattr(tabular, name, dataclasses.replace(source, num_rows=None, expected_size=None))


def _cache(data_dir, name):
    """The cache file the manifest names."""
    manifest = json.loads((data_dir / f"{name}.manifest.json").read_text())
    return data_dir / manifest["cache"]


def _tgz(path, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _rows(rng, n, d):
    return rng.integers(0, 2, size=(n, d), dtype=np.uint8)


def _csv(labels, x, *, quote=False) -> bytes:
    lines = []
    for label, row in zip(labels, x):
        head = f'"{label}"' if quote else str(label)
        lines.append(",".join([head, *map(str, row.tolist())]))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture()
def purchase(tmp_path):
    rng = np.random.default_rng(0)
    x = _rows(rng, 7, 600)
    labels = np.array([1, 100, 5, 42, 1, 2, 99])
    _tgz(tmp_path / "dataset_purchase.tgz", {"dataset_purchase": _csv(labels, x)})
    return tmp_path, x, labels


def test_purchase_parses_and_zero_indexes(purchase):
    data_dir, x, labels = purchase
    ds = load_purchase100(data_dir)
    assert ds.x.dtype == np.uint8 and ds.x.shape == (7, 600)
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, labels - 1)
    assert ds.y.dtype == np.int32 and ds.num_classes == 100 and ds.name == "purchase100"
    assert ds.binary_features and ds.image_shape is None
    np.testing.assert_array_equal(ds.flat(), x.astype(np.float32))


def test_cache_written_and_reused_without_archive(purchase, monkeypatch):
    data_dir, x, labels = purchase
    load_purchase100(data_dir)
    cache = _cache(data_dir, "purchase100")
    archive_sha = hashlib.sha256((data_dir / "dataset_purchase.tgz").read_bytes()).hexdigest()
    assert cache.name == f"purchase100-{archive_sha[:16]}.npz"
    with np.load(cache, allow_pickle=False) as data:
        assert data["packed"].shape == (7, 75)  # 600 bits packed into 75 bytes.
    (data_dir / "dataset_purchase.tgz").unlink()

    def _fail(*args, **kwargs):
        raise AssertionError("archive reopened")

    monkeypatch.setattr(tabular, "_parse_archive", _fail)
    monkeypatch.setattr(tarfile, "open", _fail)
    ds = load_purchase100(data_dir)
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, labels - 1)
    assert not list(data_dir.glob("*.tmp"))


def _rewrite_cache(data_dir, name, **arrays):
    """Overwrite the cache with ``arrays`` and re-record its digest (a consistent but bad cache)."""
    cache = _cache(data_dir, name)
    np.savez(cache, **arrays)
    path = data_dir / f"{name}.manifest.json"
    manifest = json.loads(path.read_text())
    manifest["cache_sha256"] = hashlib.sha256(cache.read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest))
    return cache


def test_corrupt_or_stale_cache_raises(purchase):
    data_dir, _, _ = purchase
    load_purchase100(data_dir)
    (data_dir / "dataset_purchase.tgz").unlink()
    cache = _cache(data_dir, "purchase100")
    cache.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="checksum mismatch for cache file .*purchase100-"):
        load_purchase100(data_dir)
    _rewrite_cache(data_dir, "purchase100", packed=np.zeros((1, 2), np.uint8),
                   labels=np.zeros(1, np.int32), num_features=np.int64(16), version=np.int64(2))
    with pytest.raises(ValueError, match="does not match purchase100"):
        load_purchase100(data_dir)
    (data_dir / "purchase100.manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="purchase100.manifest.json is corrupt"):
        load_purchase100(data_dir)


def test_archive_argument(tmp_path):
    rng = np.random.default_rng(1)
    x = _rows(rng, 3, 600)
    _tgz(tmp_path / "elsewhere.tgz", {"dataset_purchase": _csv([3, 2, 1], x)})
    ds = load_purchase100(tmp_path / "cache", archive=tmp_path / "elsewhere.tgz")
    np.testing.assert_array_equal(ds.y, [2, 1, 0])
    assert _cache(tmp_path / "cache", "purchase100").exists()
    with pytest.raises(FileNotFoundError, match="archive="):
        load_purchase100(tmp_path / "other", archive=tmp_path / "nope.tgz")


def test_location_quoted_labels(tmp_path):
    rng = np.random.default_rng(2)
    x = _rows(rng, 5, 446)
    labels = np.array([1, 30, 7, 7, 12])
    _tgz(tmp_path / "dataset_location.tgz", {"bangkok": _csv(labels, x, quote=True)})
    ds = load_location30(tmp_path)
    assert ds.x.shape == (5, 446) and ds.num_classes == 30
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, labels - 1)


def test_texas_keeps_all_6169_features(tmp_path):
    rng = np.random.default_rng(3)
    x = _rows(rng, 4, 6169)
    x[:, 0] = [1, 0, 1, 1]  # The first column must survive (a known loader drops it).
    labels = np.array([100, 1, 50, 3])
    feats = ("\n".join(",".join(map(str, r.tolist())) for r in x) + "\n").encode()
    _tgz(tmp_path / "dataset_texas.tgz",
         {"texas/100/feats": feats, "texas/100/labels": ("\n".join(map(str, labels)) + "\n").encode()})
    ds = load_texas100(tmp_path)
    assert ds.x.shape == (4, 6169)
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, labels - 1)
    ds2 = load_texas100(tmp_path)  # From the cache.
    np.testing.assert_array_equal(ds2.x, x)


def test_texas_label_count_mismatch(tmp_path):
    x = np.zeros((3, 6169), np.uint8)
    feats = ("\n".join(",".join(map(str, r.tolist())) for r in x) + "\n").encode()
    _tgz(tmp_path / "dataset_texas.tgz", {"texas/100/feats": feats, "texas/100/labels": b"1\n2\n"})
    with pytest.raises(ValueError, match="2 labels for 3 feature rows"):
        load_texas100(tmp_path)


def test_texas_download_needs_explicit_acceptance(tmp_path, capsys):
    with pytest.raises(ValueError, match="accept_texas_terms must be True") as info:
        load_texas100(tmp_path, download=True)
    assert "Texas Department of State Health Services" in str(info.value)
    with pytest.raises(ValueError, match="accept_texas_terms must be a Python bool"):
        load_texas100(tmp_path, accept_texas_terms="yes")


def test_texas_download_prints_notice(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_fetch(url, dest, **kwargs):
        calls.append((url, kwargs["mirrors"]))
        x = np.ones((2, 6169), np.uint8)
        feats = ("\n".join(",".join(map(str, r.tolist())) for r in x) + "\n").encode()
        _tgz(dest, {"texas/100/feats": feats, "texas/100/labels": b"1\n2\n"})
        return dest

    monkeypatch.setattr(tabular, "fetch", fake_fetch)
    ds = load_texas100(tmp_path, download=True, accept_texas_terms=True, url="http://mirror/t.tgz")
    assert ds.x.shape == (2, 6169)
    assert TEXAS_NOTICE in capsys.readouterr().out
    assert calls == [("http://mirror/t.tgz", TEXAS100.urls)]


def test_missing_archive_says_what_and_where(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_purchase100(tmp_path)
    msg = str(info.value)
    assert "dataset_purchase.tgz" in msg and str(tmp_path / "dataset_purchase.tgz") in msg
    assert PURCHASE100.urls[0] in msg and PURCHASE100.urls[1] in msg


def test_download_uses_fetch_with_mirrors(tmp_path, monkeypatch, real_sources):
    calls = []

    def fake_fetch(url, dest, **kwargs):
        calls.append((url, kwargs))
        _tgz(dest, {"bangkok": _csv([1], np.zeros((1, 446), np.uint8), quote=True)})
        return dest

    monkeypatch.setattr(tabular, "fetch", fake_fetch)
    with pytest.raises(ValueError, match="expected 287293"):  # The (fake) download is checked too.
        load_location30(tmp_path, download=True)
    assert calls[0][0] == LOCATION30.urls[0]
    assert calls[0][1]["expected_size"] == 287_293


def test_checksum_mismatch(purchase):
    data_dir, _, _ = purchase
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_purchase100(data_dir, sha256="0" * 64)
    good = hashlib.sha256((data_dir / "dataset_purchase.tgz").read_bytes()).hexdigest()
    assert load_purchase100(data_dir, sha256=good).x.shape == (7, 600)


def test_truncated_archive(purchase):
    data_dir, _, _ = purchase
    path = data_dir / "dataset_purchase.tgz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt") as info:
        load_purchase100(data_dir)
    assert str(path) in str(info.value)
    assert not list(data_dir.glob("purchase100*"))


def test_not_an_archive(tmp_path):
    (tmp_path / "dataset_purchase.tgz").write_bytes(b"hello world" * 10)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_purchase100(tmp_path)


def test_missing_member(tmp_path):
    _tgz(tmp_path / "dataset_purchase.tgz", {"wrong_name": b"1,0\n"})
    with pytest.raises(ValueError, match="no member 'dataset_purchase'"):
        load_purchase100(tmp_path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"1," + b"0," * 598 + b"0\n", "expected 601 columns per row, found 600"),
        (b"1," + b"0," * 599 + b"0\n" + b"1," + b"0," * 598 + b"0\n", "cannot parse rows"),
        (b"1," + b"0," * 599 + b"2\n", "features must be 0 or 1, found 2"),
        (b"0," + b"0," * 599 + b"0\n", r"labels must be in 1..100, found 0"),
        (b"101," + b"0," * 599 + b"0\n", r"labels must be in 1..100, found 101"),
        (b"x," + b"0," * 599 + b"0\n", "cannot parse rows"),
        (b"\n\n", "no rows"),
    ],
)
def test_bad_rows(tmp_path, content, match):
    _tgz(tmp_path / "dataset_purchase.tgz", {"dataset_purchase": content})
    with pytest.raises(ValueError, match=match):
        load_purchase100(tmp_path)


def test_many_rows_cross_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(tabular, "_ROWS_PER_CHUNK", 3)
    rng = np.random.default_rng(4)
    x = _rows(rng, 10, 600)
    labels = rng.integers(1, 101, 10)
    _tgz(tmp_path / "dataset_purchase.tgz", {"dataset_purchase": _csv(labels, x)})
    ds = load_purchase100(tmp_path)
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, labels - 1)


def test_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="download must be a Python bool"):
        load_purchase100(tmp_path, download=1)
    with pytest.raises(ValueError, match="url must be a non-empty string"):
        load_purchase100(tmp_path, url="")
    with pytest.raises(ValueError, match="sha256 must be"):
        load_tabular(PURCHASE100, tmp_path, archive=__file__, sha256="xyz")


# --------------------------------------------------------------------------------------------
# Integrity: sizes, row counts and digests on every load path, the cache included.
# --------------------------------------------------------------------------------------------


def test_hand_placed_truncated_location_is_refused(tmp_path, real_sources):
    rng = np.random.default_rng(5)
    path = tmp_path / "dataset_location.tgz"
    _tgz(path, {"bangkok": _csv([1, 2, 3, 4, 5], _rows(rng, 5, 446), quote=True)})
    with pytest.raises(ValueError) as info:
        load_location30(tmp_path)
    msg = str(info.value)
    assert str(path) in msg and "expected 287293" in msg and f"has {path.stat().st_size} bytes" in msg
    assert not list(tmp_path.glob("location30*"))


def test_row_count_is_checked_where_no_size_is_published(tmp_path, real_sources):
    rng = np.random.default_rng(6)
    path = tmp_path / "dataset_purchase.tgz"
    _tgz(path, {"dataset_purchase": _csv([1, 2, 3], _rows(rng, 3, 600))})
    with pytest.raises(ValueError, match=r"dataset_purchase.tgz holds 3 rows, expected 197324"):
        load_purchase100(tmp_path)


def test_wrong_sha256_fails_even_from_the_cache(purchase):
    data_dir, x, _ = purchase
    good = hashlib.sha256((data_dir / "dataset_purchase.tgz").read_bytes()).hexdigest()
    load_purchase100(data_dir)
    (data_dir / "dataset_purchase.tgz").unlink()  # Only the cache is left.
    with pytest.raises(ValueError) as info:
        load_purchase100(data_dir, sha256="0" * 64)
    msg = str(info.value)
    assert "checksum mismatch" in msg and good in msg and "0" * 64 in msg
    np.testing.assert_array_equal(load_purchase100(data_dir, sha256=good).x, x)
    np.testing.assert_array_equal(load_purchase100(data_dir, sha256=good.upper()).x, x)


def test_changed_archive_never_returns_the_stale_cache(purchase):
    data_dir, _, _ = purchase
    load_purchase100(data_dir)
    rng = np.random.default_rng(7)
    x2 = _rows(rng, 4, 600)
    _tgz(data_dir / "dataset_purchase.tgz", {"dataset_purchase": _csv([9, 8, 7, 6], x2)})
    with pytest.raises(ValueError, match="pinned in .*purchase100.manifest.json"):
        load_purchase100(data_dir)  # The pin of the first load refuses the new archive...
    new = hashlib.sha256((data_dir / "dataset_purchase.tgz").read_bytes()).hexdigest()
    ds = load_purchase100(data_dir, sha256=new)  # ... unless the user vouches for it.
    np.testing.assert_array_equal(ds.x, x2)
    np.testing.assert_array_equal(ds.y, [8, 7, 6, 5])
    assert _cache(data_dir, "purchase100").name == f"purchase100-{new[:16]}.npz"
    (data_dir / "purchase100.manifest.json").unlink()  # Or deletes the pin.
    np.testing.assert_array_equal(load_purchase100(data_dir).x, x2)


def test_cache_with_bad_labels_names_the_file(purchase):
    data_dir, x, _ = purchase
    load_purchase100(data_dir)
    (data_dir / "dataset_purchase.tgz").unlink()
    sha = json.loads((data_dir / "purchase100.manifest.json").read_text())["archive_sha256"]
    cache = _rewrite_cache(data_dir, "purchase100", packed=np.packbits(x, axis=1),
                           labels=np.full(7, 100, np.int32), num_features=np.int64(600),
                           version=np.int64(2), archive_sha256=np.array(sha))
    with pytest.raises(ValueError, match=rf"cache file {cache} holds label 100 at row 0, expected "
                                         r"labels in \[0, 100\)"):
        load_purchase100(data_dir)


def test_cache_from_another_archive_is_refused(purchase):
    data_dir, x, labels = purchase
    load_purchase100(data_dir)
    (data_dir / "dataset_purchase.tgz").unlink()
    cache = _rewrite_cache(data_dir, "purchase100", packed=np.packbits(x, axis=1),
                           labels=(labels - 1).astype(np.int32), num_features=np.int64(600),
                           version=np.int64(2), archive_sha256=np.array("ab" * 32))
    with pytest.raises(ValueError, match=rf"cache file {cache} was built from an archive with sha256 "
                                         f"{'ab' * 32}"):
        load_purchase100(data_dir)


def test_malformed_manifest_names_the_file(purchase):
    data_dir, _, _ = purchase
    load_purchase100(data_dir)
    path = data_dir / "purchase100.manifest.json"
    path.write_text(json.dumps({"dataset": "purchase100", "cache": "../x.npz"}))
    with pytest.raises(ValueError, match=rf"manifest {path} is not a purchase100 cache manifest"):
        load_purchase100(data_dir)


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="data_dir=.* is a file"):
        load_purchase100(tmp_path / "f")


def test_cache_of_an_earlier_version_is_not_trusted(tmp_path):
    (tmp_path / "purchase100.npz").write_bytes(b"old")
    with pytest.raises(FileNotFoundError, match="earlier hampjax that records no archive digest"):
        load_purchase100(tmp_path)
