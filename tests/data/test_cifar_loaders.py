"""CIFAR binary-format parsing on records written with NumPy; TFDS path with mock data.

The loaders check the published tarball size and digest and the record count of every file:
the fixtures are smaller, so most tests load them through sources without those values
(``_fixture_sources``); the integrity tests at the end use the real sources.
"""

import dataclasses
import hashlib
import json
import io
import sys
import tarfile

import numpy as np
import pytest

from hampjax.data import cifar
from hampjax.data.cifar import load_cifar10, load_cifar100, load_tfds_cifar, parse_cifar_records


@pytest.fixture()
def real_sources():
    """Requested by the tests that load through the real sources (published values checked)."""


@pytest.fixture(autouse=True)
def _fixture_sources(request, monkeypatch):
    if "real_sources" in request.fixturenames:
        return
    for name in ("_CIFAR10", "_CIFAR100"):
        source = getattr(cifar, name)
        monkeypatch.setattr(cifar, name, dataclasses.replace(
            source, archive_size=None, archive_sha256=None, records=None))


def _records(rng, n, label_bytes, num_labels):
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, num_labels, size=(n, label_bytes), dtype=np.uint8)
    chw = images.transpose(0, 3, 1, 2).reshape(n, -1)
    return images, labels, np.concatenate([labels, chw], axis=1).tobytes()


def _reference_parse(data: bytes, label_bytes: int):
    """Slow, obviously-correct reference: one record and one pixel at a time."""
    record = label_bytes + 3072
    out_images, out_labels = [], []
    for start in range(0, len(data), record):
        rec = data[start:start + record]
        img = np.zeros((32, 32, 3), np.uint8)
        for c in range(3):
            for r in range(32):
                for col in range(32):
                    img[r, col, c] = rec[label_bytes + c * 1024 + r * 32 + col]
        out_images.append(img)
        out_labels.append(list(rec[:label_bytes]))
    return np.stack(out_images), np.array(out_labels, np.uint8)


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture()
def cifar10_files():
    rng = np.random.default_rng(0)
    files, images, labels = {}, [], []
    for name, n in [("data_batch_1.bin", 3), ("data_batch_2.bin", 2), ("data_batch_3.bin", 1),
                    ("data_batch_4.bin", 2), ("data_batch_5.bin", 1), ("test_batch.bin", 2)]:
        img, lab, raw = _records(rng, n, 1, 10)
        files[name] = raw
        images.append(img)
        labels.append(lab[:, 0])
    return files, images, labels


@pytest.mark.parametrize("label_bytes", [1, 2])
def test_parse_matches_reference(label_bytes):
    rng = np.random.default_rng(label_bytes)
    _, _, raw = _records(rng, 2, label_bytes, 100)
    images, labels = parse_cifar_records(raw, label_bytes=label_bytes)
    ref_images, ref_labels = _reference_parse(raw, label_bytes)
    np.testing.assert_array_equal(images, ref_images)
    np.testing.assert_array_equal(labels, ref_labels)
    assert images.dtype == np.uint8 and images.flags.c_contiguous


def test_parse_errors():
    with pytest.raises(ValueError, match="label_bytes must be one of"):
        parse_cifar_records(bytes(3073), label_bytes=3)
    with pytest.raises(ValueError, match="not a positive multiple of the 3073-byte"):
        parse_cifar_records(bytes(3073 * 2 - 5), label_bytes=1, where="data_batch_1.bin")
    with pytest.raises(ValueError, match="not a positive multiple"):
        parse_cifar_records(b"", label_bytes=1)


def test_cifar10_from_archive_in_file_order(tmp_path, cifar10_files):
    files, images, labels = cifar10_files
    _tar(tmp_path / "cifar-10-binary.tar.gz", {f"cifar-10-batches-bin/{k}": v for k, v in files.items()})
    train = load_cifar10(tmp_path, split="train")
    np.testing.assert_array_equal(train.x, np.concatenate(images[:5]))
    np.testing.assert_array_equal(train.y, np.concatenate(labels[:5]))
    assert train.x.shape == (9, 32, 32, 3) and train.y.dtype == np.int32 and train.num_classes == 10
    test = load_cifar10(tmp_path, split="test")
    np.testing.assert_array_equal(test.x, images[5])
    both = load_cifar10(tmp_path, split="all")
    np.testing.assert_array_equal(both.x, np.concatenate(images))
    assert both.normalized().shape == (11, 32, 32, 3) and both.flat().shape == (11, 3072)


def test_cifar10_from_extracted_folder(tmp_path, cifar10_files, monkeypatch):
    files, images, labels = cifar10_files
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: pytest.fail("archive opened"))
    ds = load_cifar10(tmp_path, split="test")
    np.testing.assert_array_equal(ds.y, labels[5])


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(5)
    img_tr, lab_tr, raw_tr = _records(rng, 3, 2, 20)
    img_te, lab_te, raw_te = _records(rng, 2, 2, 20)
    archive = tmp_path / "c100.tgz"
    _tar(archive, {"cifar-100-binary/train.bin": raw_tr, "cifar-100-binary/test.bin": raw_te})
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    fine = load_cifar100(tmp_path, split="all", archive=archive, md5=md5)
    np.testing.assert_array_equal(fine.x, np.concatenate([img_tr, img_te]))
    np.testing.assert_array_equal(fine.y, np.concatenate([lab_tr[:, 1], lab_te[:, 1]]))
    assert fine.num_classes == 100
    coarse = load_cifar100(tmp_path, split="train", label="coarse", archive=archive)
    np.testing.assert_array_equal(coarse.y, lab_tr[:, 0])
    assert coarse.num_classes == 20


def test_md5_mismatch(tmp_path, cifar10_files):
    files, _, _ = cifar10_files
    _tar(tmp_path / "cifar-10-binary.tar.gz", {f"cifar-10-batches-bin/{k}": v for k, v in files.items()})
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_cifar10(tmp_path, split="train", md5="0" * 32)


def test_truncated_archive_and_records(tmp_path, cifar10_files):
    files, _, _ = cifar10_files
    path = tmp_path / "cifar-10-binary.tar.gz"
    _tar(path, {f"cifar-10-batches-bin/{k}": v for k, v in files.items()})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_cifar10(tmp_path, split="test")
    bad = dict(files, **{"test_batch.bin": files["test_batch.bin"][:-7]})
    _tar(path, {f"cifar-10-batches-bin/{k}": v for k, v in bad.items()})
    with pytest.raises(ValueError, match="test_batch.bin: .* not a positive multiple"):
        load_cifar10(tmp_path, split="test")
    _tar(path, {"cifar-10-batches-bin/data_batch_1.bin": files["data_batch_1.bin"]})
    with pytest.raises(ValueError, match="no member 'cifar-10-batches-bin/test_batch.bin'"):
        load_cifar10(tmp_path, split="test")


def test_missing_files_message_and_download(tmp_path, cifar10_files, monkeypatch):
    with pytest.raises(FileNotFoundError) as info:
        load_cifar10(tmp_path, split="train", url="http://mirror/c10.tgz")
    msg = str(info.value)
    assert "cifar-10-binary.tar.gz" in msg and "http://mirror/c10.tgz" in msg and str(tmp_path) in msg
    files, _, _ = cifar10_files
    calls = []

    def fake_fetch(url, dest, **kwargs):
        calls.append((url, kwargs["mirrors"]))
        _tar(dest, {f"cifar-10-batches-bin/{k}": v for k, v in files.items()})
        return dest

    monkeypatch.setattr(cifar, "fetch", fake_fetch)
    ds = load_cifar10(tmp_path, split="test", download=True, url="http://mirror/c10.tgz")
    assert len(ds) == 2
    assert calls == [("http://mirror/c10.tgz", ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",))]
    with pytest.raises(FileNotFoundError, match="archive="):
        load_cifar10(tmp_path, split="test", archive=tmp_path / "nope.tgz")


def test_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        load_cifar10(tmp_path, split="val")
    with pytest.raises(ValueError, match="label must be one of"):
        load_cifar100(tmp_path, split="train", label="medium")
    with pytest.raises(ValueError, match="download must be a Python bool"):
        load_cifar10(tmp_path, split="train", download="yes")
    with pytest.raises(ValueError, match="url must be a non-empty string"):
        load_cifar10(tmp_path, split="train", url="")
    with pytest.raises(ValueError, match="name must be one of"):
        load_tfds_cifar("mnist", "train")


def test_tfds_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[tfds\]"'):
        load_tfds_cifar("cifar10", "train")


def test_id_sort_key_is_numeric():
    ids = [b"train_10", b"train_9", b"train_00100", b"test_1"]
    assert sorted(ids, key=cifar._id_sort_key) == [b"test_1", b"train_9", b"train_10", b"train_00100"]


def test_tfds_mock_data_sorted_by_id():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        ds = load_tfds_cifar("cifar10", "train")
        source = tfds.data_source("cifar10", split="train")
        first = [source[i] for i in range(len(source))]
        again = [source[i] for i in range(len(source))]
    assert ds.x.shape == (6, 32, 32, 3) and ds.x.dtype == np.uint8 and ds.y.dtype == np.int32
    assert ds.y.min() >= 0 and ds.y.max() < 10
    deterministic = all(np.array_equal(a["image"], b["image"]) for a, b in zip(first, again))
    if deterministic:  # Mock examples are reproducible: check the order is the id order.
        ordered = sorted(first, key=lambda e: cifar._id_sort_key(e["id"]))
        np.testing.assert_array_equal(ds.y, [int(e["label"]) for e in ordered])
        np.testing.assert_array_equal(ds.x, np.stack([e["image"] for e in ordered]))


# --------------------------------------------------------------------------------------------
# Integrity: published sizes / digests, record counts, labels, pinned file digests.
# --------------------------------------------------------------------------------------------


def test_published_tarball_values_are_checked(tmp_path, cifar10_files, real_sources):
    files, _, _ = cifar10_files
    path = tmp_path / "cifar-10-binary.tar.gz"
    _tar(path, {f"cifar-10-batches-bin/{k}": v for k, v in files.items()})
    with pytest.raises(ValueError) as info:
        load_cifar10(tmp_path, split="test")
    msg = str(info.value)
    assert str(path) in msg and "expected 170052171" in msg and f"has {path.stat().st_size} bytes" in msg
    assert cifar._CIFAR10.archive_sha256 == ("c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59"
                                             "bca1dd")


def test_record_counts_are_checked_in_a_folder(tmp_path, cifar10_files, real_sources):
    files, _, _ = cifar10_files
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(ValueError, match=r"test_batch.bin has 6146 bytes, expected 30730000 \(10000 "
                                         r"records"):
        load_cifar10(tmp_path, split="test")


def test_bad_labels_name_the_file(tmp_path, cifar10_files):
    files, _, _ = cifar10_files
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    raw = bytearray(files["test_batch.bin"])
    raw[3073] = 10  # The second record's label.
    (folder / "test_batch.bin").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"test_batch.bin holds label 10 at record 1, expected labels in "
                                         r"\[0, 10\)"):
        load_cifar10(tmp_path, split="test")


def test_files_edited_after_the_first_load_are_refused(tmp_path, cifar10_files):
    files, _, _ = cifar10_files
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    first = load_cifar10(tmp_path, split="test")
    pins = json.loads((tmp_path / "cifar10.manifest.json").read_text())["sha256"]
    assert pins == {"test_batch.bin": hashlib.sha256(files["test_batch.bin"]).hexdigest()}
    np.testing.assert_array_equal(load_cifar10(tmp_path, split="test").x, first.x)
    raw = bytearray(files["test_batch.bin"])
    raw[100] ^= 1  # One pixel.
    (folder / "test_batch.bin").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch for .*test_batch.bin: .*pinned in"):
        load_cifar10(tmp_path, split="test")


def test_wrong_sha256_and_data_dir_file(tmp_path, cifar10_files):
    files, _, _ = cifar10_files
    _tar(tmp_path / "cifar-10-binary.tar.gz", {f"cifar-10-batches-bin/{k}": v for k, v in files.items()})
    with pytest.raises(ValueError, match="checksum mismatch .* sha256 is"):
        load_cifar10(tmp_path, split="test", sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256 must be a 64-character hex string"):
        load_cifar10(tmp_path, split="test", sha256="xyz")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="data_dir=.* is a file"):
        load_cifar10(tmp_path / "f", split="test")
