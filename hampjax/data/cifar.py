"""CIFAR-10 and CIFAR-100 from the binary-version files (no pickle), or from a built TFDS copy.

Binary format (Krizhevsky's "binary version" tarballs):

- CIFAR-10: ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and ``test_batch.bin``; records of
  1 label byte + 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue; each 32x32 row-major).
- CIFAR-100: ``cifar-100-binary/train.bin`` and ``test.bin``; records of 2 label bytes (coarse,
  fine) + 3,072 pixel bytes.

Images are returned as ``uint8 [N, 32, 32, 3]`` (NHWC) in file order, so index ``i`` is the
original CIFAR index ``i`` and membership masks are reproducible and portable.

The python-version tarballs are deliberately not supported: they are pickles, and unpickling a
downloaded file can execute arbitrary code.

The loader reads an already extracted folder (``<data_dir>/cifar-10-batches-bin/``) if present,
else the tarball (``archive=`` or ``<data_dir>/cifar-10-binary.tar.gz``, downloaded there with
``download=True``). The Toronto host is slow: pass a mirror with ``url=`` or place the file by hand.

Integrity (every load path):

- the tarball's size and SHA-256 are checked against the published values (those of the
  TensorFlow Datasets checksum files, ``url_checksums/cifar10.txt`` / ``cifar100.txt``;
  ``sha256=`` overrides the digest, ``md5=`` adds an MD5 check);
- every ``.bin`` file must hold exactly its published number of records (CIFAR-10: 10,000 per
  batch file; CIFAR-100: 50,000 train, 10,000 test), and every label must be in range (the
  message names the file);
- the SHA-256 of each ``.bin`` file read is pinned in ``<data_dir>/<name>.manifest.json`` the
  first time it is read (from the verified tarball or the extracted folder) and checked on every
  later load, so an extracted folder edited after the first load is refused (no digest of the
  extracted files themselves is published: the first read of an extracted folder is trusted).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tarfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from hampjax import atomic, validation
from hampjax.data.dataset import Dataset
from hampjax.data.download import _check_hex, fetch, verify_file

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR_SPLITS",
    "CIFAR_IMAGE_SHAPE",
    "parse_cifar_records",
    "load_cifar10",
    "load_cifar100",
    "load_tfds_cifar",
]

CIFAR_IMAGE_SHAPE = (32, 32, 3)
_PIXELS = 32 * 32 * 3
# Per-channel mean / std of the training images scaled to [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
CIFAR_SPLITS = ("train", "test", "all")

_TORONTO = "https://www.cs.toronto.edu/~kriz/"


@dataclasses.dataclass(frozen=True)
class _CifarSource:
    name: str
    archive_name: str
    folder: str
    files: dict[str, tuple[str, ...]]
    label_bytes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # Published size and SHA-256 of the tarball (TFDS url_checksums), None to skip (fixtures).
    archive_size: int | None
    archive_sha256: str | None
    # Records per .bin file (None: any positive count, e.g. a fixture) and label ranges.
    records: dict[str, int] | None
    num_labels: tuple[int, ...]


_CIFAR10 = _CifarSource(
    name="cifar10",
    archive_name="cifar-10-binary.tar.gz",
    folder="cifar-10-batches-bin",
    files={"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)},
    label_bytes=1,
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    archive_size=170_052_171,
    archive_sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    records={**{f"data_batch_{i}.bin": 10_000 for i in range(1, 6)}, "test_batch.bin": 10_000},
    num_labels=(10,),
)
_CIFAR100 = _CifarSource(
    name="cifar100",
    archive_name="cifar-100-binary.tar.gz",
    folder="cifar-100-binary",
    files={"train": ("train.bin",), "test": ("test.bin",)},
    label_bytes=2,
    mean=CIFAR100_MEAN,
    std=CIFAR100_STD,
    archive_size=168_513_733,
    archive_sha256="58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec",
    records={"train.bin": 50_000, "test.bin": 10_000},
    num_labels=(20, 100),  # coarse, fine
)


def parse_cifar_records(data: bytes, *, label_bytes: int, where: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Parse CIFAR binary records.

    Args:
      data: the bytes of one ``.bin`` file.
      label_bytes: 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine).
      where: file name for error messages.

    Returns:
      ``(images, labels)``: ``uint8 [N, 32, 32, 3]`` and ``uint8 [N, label_bytes]``.

    Raises:
      ValueError: if ``label_bytes`` is not 1 or 2, or the length is not a multiple of the
        record size (truncated file).

    Example:
      >>> images, labels = parse_cifar_records(bytes(3073 * 2), label_bytes=1)
      >>> images.shape, labels.shape
      ((2, 32, 32, 3), (2, 1))
    """
    validation.check_choice("label_bytes", label_bytes, (1, 2))
    record = label_bytes + _PIXELS
    if len(data) == 0 or len(data) % record:
        raise ValueError(
            f"{where}: {len(data)} bytes is not a positive multiple of the {record}-byte record "
            f"size; the file is truncated or not a CIFAR binary file"
        )
    rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    images = rows[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), rows[:, :label_bytes].copy()


def _read_from_folder(folder: Path, names: tuple[str, ...]) -> list[tuple[str, bytes]]:
    return [(str(folder / n), (folder / n).read_bytes()) for n in names]


def _read_from_archive(archive: Path, folder: str, names: tuple[str, ...]) -> list[tuple[str, bytes]]:
    out = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for name in names:
                member = f"{folder}/{name}"
                try:
                    info = tar.getmember(member)
                except KeyError:
                    raise ValueError(f"{archive} has no member {member!r}") from None
                if not info.isfile():
                    raise ValueError(f"{archive}: member {member!r} is not a regular file")
                with tar.extractfile(info) as f:
                    out.append((f"{archive}:{member}", f.read()))
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ValueError(f"{archive} is truncated or corrupt ({type(err).__name__}: {err}); "
                         f"delete it and download it again") from err
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{archive} is truncated or corrupt ({err}); delete it and download it again") from err
    return out


def _check_records(source: _CifarSource, name: str, where: str, data: bytes) -> None:
    """Exact record count (published) and label ranges of one ``.bin`` file."""
    record = source.label_bytes + _PIXELS
    if source.records is not None:
        expected = source.records[name] * record
        if len(data) != expected:
            raise ValueError(
                f"{where} has {len(data)} bytes, expected {expected} ({source.records[name]} records of "
                f"{record} bytes): the file is truncated or not the published {source.name} file"
            )


def _check_labels(source: _CifarSource, where: str, labels: np.ndarray) -> None:
    for column, classes in enumerate(source.num_labels):
        bad = np.flatnonzero(labels[:, column] >= classes)
        if bad.size:
            raise ValueError(
                f"{where} holds label {int(labels[bad[0], column])} at record {int(bad[0])}, "
                f"expected labels in [0, {classes}): the file is corrupt or not a {source.name} file"
            )


def _check_pins(source: _CifarSource, data_dir: Path, blobs: list[tuple[str, str, bytes]]) -> None:
    """Check each file's SHA-256 against the manifest's pin, and pin the new ones."""
    path = data_dir / f"{source.name}.manifest.json"
    recover = f"delete {path} to pin the files read next"
    record = atomic.read_json(path, {"sha256": {}}, recover=recover)
    pins = record.get("sha256") if isinstance(record, dict) else None
    if not isinstance(pins, dict) or not all(isinstance(v, str) for v in pins.values()):
        raise ValueError(f"manifest {path} must hold {{\"sha256\": {{file: hex digest}}}}; {recover}")
    changed = False
    for name, where, data in blobs:
        actual = hashlib.sha256(data).hexdigest()
        if name not in pins:
            pins[name], changed = actual, True
        elif pins[name] != actual:
            raise ValueError(
                f"checksum mismatch for {where}: sha256 is {actual}, expected {pins[name]} (pinned in "
                f"{path} by the first load); the file changed since: restore it, or {recover}"
            )
    if changed and data_dir.is_dir():
        atomic.write_json(path, {"dataset": source.name, "sha256": pins}, sort_keys=True)


def _load_binary(
    source: _CifarSource,
    data_dir,
    split: str,
    download: bool,
    url: str | None,
    archive,
    md5: str | None,
    sha256: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    validation.check_choice("split", split, CIFAR_SPLITS)
    download = validation.check_bool("download", download)
    if url is not None and (not isinstance(url, str) or not url):
        raise ValueError(f"url must be a non-empty string or None, got {url!r}")
    sha256 = _check_hex("sha256", sha256, 64)
    md5 = _check_hex("md5", md5, 32)
    names = source.files["train"] + source.files["test"] if split == "all" else source.files[split]
    data_dir = Path(data_dir).expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise ValueError(f"data_dir={str(data_dir)!r} is a file, not a directory")
    folder = data_dir / source.folder
    if archive is None and all((folder / n).is_file() for n in names):
        blobs = _read_from_folder(folder, names)
    else:
        path = Path(archive).expanduser() if archive is not None else data_dir / source.archive_name
        urls = ((url,) if url else ()) + (_TORONTO + source.archive_name,)
        expected_sha = sha256 or source.archive_sha256
        if not path.exists():
            if archive is not None:
                raise FileNotFoundError(f"archive={path} does not exist")
            if not download:
                raise FileNotFoundError(
                    f"{source.name}: neither {folder}/ nor {path} found. Download "
                    f"{source.archive_name} (the binary version) from one of\n  " + "\n  ".join(urls)
                    + f"\nand place it at {path} (or extract it into {data_dir}), or pass download=True"
                )
            fetch(urls[0], path, mirrors=urls[1:], md5=md5, sha256=expected_sha,
                  expected_size=source.archive_size)
        if path.is_dir():
            raise ValueError(f"archive {path} is a directory, expected the {source.archive_name} file")
        verify_file(path, md5=md5, sha256=expected_sha, expected_size=source.archive_size)
        blobs = _read_from_archive(path, source.folder, names)
    named = [(name, where, data) for name, (where, data) in zip(names, blobs)]
    for name, where, data in named:
        _check_records(source, name, where, data)
    _check_pins(source, data_dir, named)
    parsed = [parse_cifar_records(b, label_bytes=source.label_bytes, where=w) for w, b in blobs]
    for (where, _), (_, labels) in zip(blobs, parsed):
        _check_labels(source, where, labels)
    return np.concatenate([p[0] for p in parsed]), np.concatenate([p[1] for p in parsed])


def load_cifar10(
    data_dir: str | os.PathLike,
    *,
    split: Literal["train", "test", "all"],
    download: bool = False,
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    md5: str | None = None,
    sha256: str | None = None,
) -> Dataset:
    """CIFAR-10 from the binary version, in the original order.

    Args:
      data_dir: folder holding ``cifar-10-batches-bin/`` or ``cifar-10-binary.tar.gz``.
      split: ``"train"`` (50,000), ``"test"`` (10,000) or ``"all"`` (train then test, 60,000).
      download: download the tarball into ``data_dir`` if neither copy is there.
      url: a mirror URL tried before the Toronto host.
      archive: path to the tarball placed elsewhere (used even if ``data_dir`` has a folder).
      md5: expected MD5 of the tarball, or ``None``.
      sha256: expected SHA-256 of the tarball; ``None``: the published one (see the module
        docstring for every check).

    Returns:
      ``Dataset``: ``x uint8 [N, 32, 32, 3]``, ``y int32 [N]``, 10 classes.

    Raises:
      FileNotFoundError: no copy and ``download`` is False (says what to download, where).
      ValueError: bad arguments; a tarball or ``.bin`` file whose size, record count, labels or
        SHA-256 differ from the expected ones (the message names the file, the expected and
        the actual value); a truncated/corrupt archive.
      DownloadError: ``download=True`` and the download failed.

    Example:
      >>> ds = load_cifar10("~/hampjax_data", split="train")  # doctest: +SKIP
      >>> ds.x.shape  # doctest: +SKIP
      (50000, 32, 32, 3)
    """
    images, labels = _load_binary(_CIFAR10, data_dir, split, download, url, archive, md5, sha256)
    return Dataset(images, labels[:, 0].astype(np.int32), 10, "cifar10", CIFAR_IMAGE_SHAPE, False,
                   CIFAR10_MEAN, CIFAR10_STD)


def load_cifar100(
    data_dir: str | os.PathLike,
    *,
    split: Literal["train", "test", "all"],
    label: Literal["fine", "coarse"] = "fine",
    download: bool = False,
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    md5: str | None = None,
    sha256: str | None = None,
) -> Dataset:
    """CIFAR-100 from the binary version, in the original order.

    Args:
      data_dir: folder holding ``cifar-100-binary/`` or ``cifar-100-binary.tar.gz``.
      split: ``"train"``, ``"test"`` or ``"all"`` (train then test).
      label: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).
      download, url, archive, md5, sha256: as in ``load_cifar10``.

    Returns:
      ``Dataset``: ``x uint8 [N, 32, 32, 3]``, ``y int32 [N]``.

    Raises:
      As ``load_cifar10``; also ``ValueError`` for an unknown ``label``.

    Example:
      >>> ds = load_cifar100("~/hampjax_data", split="test")  # doctest: +SKIP
      >>> ds.num_classes  # doctest: +SKIP
      100
    """
    validation.check_choice("label", label, ("fine", "coarse"))
    images, labels = _load_binary(_CIFAR100, data_dir, split, download, url, archive, md5, sha256)
    column, classes = (1, 100) if label == "fine" else (0, 20)
    return Dataset(images, labels[:, column].astype(np.int32), classes, "cifar100", CIFAR_IMAGE_SHAPE,
                   False, CIFAR100_MEAN, CIFAR100_STD)


# --------------------------------------------------------------------------------------------
# TFDS (optional extra).
# --------------------------------------------------------------------------------------------

_TFDS_STATS = {"cifar10": (10, CIFAR10_MEAN, CIFAR10_STD), "cifar100": (100, CIFAR100_MEAN, CIFAR100_STD)}


def _id_sort_key(example_id) -> tuple[str, int, str]:
    text = example_id.decode() if isinstance(example_id, bytes) else str(example_id)
    match = re.fullmatch(r"(.*?)(\d+)", text)
    if match:
        return (match.group(1), int(match.group(2)), text)
    return (text, -1, text)


def load_tfds_cifar(
    name: Literal["cifar10", "cifar100"], split: str, data_dir: str | os.PathLike | None = None
) -> Dataset:
    """CIFAR from an already built TFDS copy, read with ``tfds.data_source`` (no TensorFlow).

    TFDS stores records in a hashed order; examples are sorted by their ``id`` feature
    (``train_00042`` -> 42, numerically) so the order is stable and close to the original.

    Args:
      name: ``"cifar10"`` or ``"cifar100"`` (fine labels).
      split: a TFDS split string, e.g. ``"train"``, ``"test"``.
      data_dir: TFDS data folder, or ``None`` for TFDS's default (``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``).

    Returns:
      ``Dataset``: ``x uint8 [N, 32, 32, 3]``, ``y int32 [N]``.

    Raises:
      ImportError: ``tensorflow_datasets`` is not installed (install the ``tfds`` extra).
      ValueError: unknown ``name``.

    Example:
      >>> ds = load_tfds_cifar("cifar10", "test")  # doctest: +SKIP
    """
    validation.check_choice("name", name, tuple(_TFDS_STATS))
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise ImportError(
            'load_tfds_cifar needs tensorflow_datasets: pip install -e ".[tfds]" '
            "(or use load_cifar10/load_cifar100, which read the binary tarballs with NumPy only)"
        ) from err
    kwargs = {} if data_dir is None else {"data_dir": os.fspath(Path(data_dir).expanduser())}
    source = tfds.data_source(name, split=split, **kwargs)
    examples = [source[i] for i in range(len(source))]
    if not examples:
        raise ValueError(f"TFDS {name} split {split!r} is empty")
    examples.sort(key=lambda ex: _id_sort_key(ex["id"]))
    images = np.stack([np.asarray(ex["image"], dtype=np.uint8) for ex in examples])
    labels = np.asarray([int(ex["label"]) for ex in examples], dtype=np.int32)
    classes, mean, std = _TFDS_STATS[name]
    return Dataset(images, labels, classes, name, CIFAR_IMAGE_SHAPE, False, mean, std)
