"""Binary tabular benchmarks: Purchase100, Texas100 and Location30.

Each loader looks, in order, for:

1. a compact cache ``<data_dir>/<name>.npz`` (bit-packed 0/1 features, 0-indexed labels),
   written atomically the first time the archive is parsed;
2. the archive: the ``archive=`` path, else ``<data_dir>/<archive file name>`` (placed there by
   the user, or downloaded there with ``download=True``).

Archives are read with ``tarfile`` as in-memory file objects (members are never extracted to
paths taken from the archive). Labels are converted from 1-indexed to 0-indexed; quoted labels
(Location30) are handled; every feature must be 0 or 1.

Texas100 comes from the Texas Department of State Health Services under a data-use agreement
that forbids redistribution: it is downloaded only when the caller passes
``accept_texas_terms=True``, and never bundled.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hampjax import atomic, validation
from hampjax.data.dataset import Dataset
from hampjax.data.download import fetch, verify_file

__all__ = [
    "TabularSource",
    "PURCHASE100",
    "TEXAS100",
    "LOCATION30",
    "TEXAS_NOTICE",
    "load_purchase100",
    "load_texas100",
    "load_location30",
    "load_tabular",
]

_NUS = "https://www.comp.nus.edu.sg/~reza/files/"
_GITHUB = "https://github.com/privacytrustlab/datasets/raw/master/"
_CACHE_VERSION = 1
_ROWS_PER_CHUNK = 2048

TEXAS_NOTICE = (
    "Texas100 is derived from the Texas Hospital Inpatient Discharge Public Use Data File of the "
    "Texas Department of State Health Services (DSHS). Its data-use agreement forbids "
    "redistribution and re-identification; by downloading it you agree to the DSHS terms "
    "(https://www.dshs.texas.gov/center-health-statistics/texas-health-care-information-collection). "
    "hampjax never bundles this data."
)


@dataclasses.dataclass(frozen=True)
class TabularSource:
    """Where a tabular dataset comes from and what its archive holds.

    Attributes:
      name: dataset name, also the cache file stem.
      archive_name: file name of the archive in ``data_dir``.
      urls: download URLs, tried in order.
      num_features: number of binary feature columns.
      num_classes: number of classes (labels in the files are ``1..num_classes``).
      features_member: archive member with the CSV rows.
      labels_member: archive member with one label per line, or ``None`` when column 0 of
        ``features_member`` is the label.
      expected_size: archive size in bytes, when known.
      notice: text printed before downloading, when not empty.
    """

    name: str
    archive_name: str
    urls: tuple[str, ...]
    num_features: int
    num_classes: int
    features_member: str
    labels_member: str | None = None
    expected_size: int | None = None
    notice: str = ""


PURCHASE100 = TabularSource(
    name="purchase100",
    archive_name="dataset_purchase.tgz",
    urls=(_NUS + "dataset_purchase.tgz", _GITHUB + "dataset_purchase.tgz"),
    num_features=600,
    num_classes=100,
    features_member="dataset_purchase",
)
TEXAS100 = TabularSource(
    name="texas100",
    archive_name="dataset_texas.tgz",
    urls=(_NUS + "dataset_texas.tgz", _GITHUB + "dataset_texas.tgz"),
    num_features=6169,
    num_classes=100,
    features_member="texas/100/feats",
    labels_member="texas/100/labels",
    notice=TEXAS_NOTICE,
)
LOCATION30 = TabularSource(
    name="location30",
    archive_name="dataset_location.tgz",
    urls=(_GITHUB + "dataset_location.tgz",),
    num_features=446,
    num_classes=30,
    features_member="bangkok",
    expected_size=287_293,
)


# --------------------------------------------------------------------------------------------
# Cache.
# --------------------------------------------------------------------------------------------


def _cache_path(source: TabularSource, data_dir: Path) -> Path:
    return data_dir / f"{source.name}.npz"


def _write_cache(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write bit-packed features and labels to ``path`` atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(path, lambda f: np.savez(
        f,
        packed=np.packbits(x, axis=1),
        labels=y.astype(np.int32),
        num_features=np.int64(x.shape[1]),
        version=np.int64(_CACHE_VERSION),
    ))


def _read_cache(path: Path, source: TabularSource) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            packed, labels = data["packed"], data["labels"]
            num_features, version = int(data["num_features"]), int(data["version"])
    except (OSError, KeyError, ValueError, zlib.error, EOFError) as err:
        raise ValueError(f"cache file {path} is unreadable ({err}); delete it to rebuild it") from err
    if version != _CACHE_VERSION or num_features != source.num_features or packed.ndim != 2:
        raise ValueError(
            f"cache file {path} does not match {source.name} (version {version}, {num_features} "
            f"features; expected version {_CACHE_VERSION}, {source.num_features}); delete it to rebuild it"
        )
    x = np.unpackbits(packed, axis=1, count=num_features)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"cache file {path} has {labels.shape} labels for {x.shape[0]} rows; delete it")
    return x, labels


# --------------------------------------------------------------------------------------------
# Archive parsing.
# --------------------------------------------------------------------------------------------


def _chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        if line.strip():
            chunk.append(line)
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _parse_csv(fileobj, *, where: str, num_columns: int) -> Iterator[np.ndarray]:
    """Yield ``int16 [rows, num_columns]`` blocks of an integer CSV (quotes allowed)."""
    text = io.TextIOWrapper(fileobj, encoding="ascii", newline="")
    first = 0
    for chunk in _chunks(iter(text), _ROWS_PER_CHUNK):
        try:
            block = np.loadtxt(chunk, delimiter=",", quotechar='"', dtype=np.int16, ndmin=2)
        except ValueError as err:
            raise ValueError(f"{where}: cannot parse rows {first + 1}..{first + len(chunk)}: {err}") from err
        if block.shape[1] != num_columns:
            raise ValueError(f"{where}: expected {num_columns} columns per row, found {block.shape[1]}")
        first += len(chunk)
        yield block


def _check_binary(block: np.ndarray, where: str) -> np.ndarray:
    bad = (block != 0) & (block != 1)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{where}: features must be 0 or 1, found {int(block[row, col])}")
    return block.astype(np.uint8)


def _labels_to_zero_based(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(labels).astype(np.int64)
    if labels.size == 0:
        raise ValueError(f"{where}: no rows")
    if labels.min() < 1 or labels.max() > num_classes:
        bad = labels[(labels < 1) | (labels > num_classes)][0]
        raise ValueError(f"{where}: labels must be in 1..{num_classes}, found {int(bad)}")
    return (labels - 1).astype(np.int32)


def _member(tar: tarfile.TarFile, name: str, archive: Path):
    try:
        info = tar.getmember(name)
    except KeyError:
        names = [m.name for m in tar.getmembers()][:10]
        raise ValueError(f"{archive} has no member {name!r} (members: {names})") from None
    if not info.isfile():
        raise ValueError(f"{archive}: member {name!r} is not a regular file")
    return tar.extractfile(info)


def _parse_archive(archive: Path, source: TabularSource) -> tuple[np.ndarray, np.ndarray]:
    try:
        with tarfile.open(archive, "r:*") as tar:
            where = f"{archive}:{source.features_member}"
            with _member(tar, source.features_member, archive) as f:
                if source.labels_member is None:
                    # Convert block by block so only uint8 copies are kept (Texas: 0.4 GB, not 0.8).
                    pairs = [(b[:, 0].copy(), _check_binary(b[:, 1:], where))
                             for b in _parse_csv(f, where=where, num_columns=source.num_features + 1)]
                    if not pairs:
                        raise ValueError(f"{where}: no rows")
                    labels = np.concatenate([p[0] for p in pairs])
                    x = np.concatenate([p[1] for p in pairs])
                else:
                    blocks = [_check_binary(b, where)
                              for b in _parse_csv(f, where=where, num_columns=source.num_features)]
                    if not blocks:
                        raise ValueError(f"{where}: no rows")
                    x = np.concatenate(blocks)
                    label_where = f"{archive}:{source.labels_member}"
                    with _member(tar, source.labels_member, archive) as g:
                        label_blocks = list(_parse_csv(g, where=label_where, num_columns=1))
                    labels = np.concatenate([b[:, 0] for b in label_blocks]) if label_blocks else np.zeros(0)
                    if labels.shape[0] != x.shape[0]:
                        raise ValueError(
                            f"{label_where}: {labels.shape[0]} labels for {x.shape[0]} feature rows"
                        )
                    where = label_where
    except (tarfile.TarError, EOFError, zlib.error, UnicodeDecodeError) as err:
        raise ValueError(f"{archive} is truncated or corrupt ({type(err).__name__}: {err}); "
                         f"delete it and download it again") from err
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{archive} is truncated or corrupt ({err}); delete it and download it again") from err
    return x, _labels_to_zero_based(labels, source.num_classes, where)


# --------------------------------------------------------------------------------------------
# Loaders.
# --------------------------------------------------------------------------------------------


def load_tabular(
    source: TabularSource,
    data_dir: str | os.PathLike,
    *,
    download: bool = False,
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    sha256: str | None = None,
) -> Dataset:
    """Load a binary tabular dataset described by ``source`` (cache first, then the archive).

    Args:
      source: which dataset (``PURCHASE100``, ``TEXAS100``, ``LOCATION30``).
      data_dir: folder for the archive and the ``<name>.npz`` cache.
      download: download the archive into ``data_dir`` if it is missing.
      url: a URL (e.g. a mirror) tried before the default URLs.
      archive: path to an archive placed elsewhere; used instead of ``data_dir``'s copy.
      sha256: expected SHA-256 of the archive, checked before parsing; ``None`` skips it.

    Returns:
      ``Dataset`` with ``x: uint8 [N, num_features]`` of 0/1 and ``y: int32 [N]`` 0-indexed.

    Raises:
      FileNotFoundError: the archive is missing and ``download`` is False (the message says what
        to download and where to put it).
      ValueError: bad arguments, checksum mismatch, truncated/corrupt archive, wrong column
        counts, non-binary features or labels outside ``1..num_classes``.
      DownloadError: ``download=True`` but no URL could be fetched.
    """
    download = validation.check_bool("download", download)
    if url is not None and (not isinstance(url, str) or not url):
        raise ValueError(f"url must be a non-empty string or None, got {url!r}")
    data_dir = Path(data_dir).expanduser()
    cache = _cache_path(source, data_dir)
    if cache.exists():
        x, y = _read_cache(cache, source)
    else:
        path = Path(archive).expanduser() if archive is not None else data_dir / source.archive_name
        urls = ((url,) if url else ()) + source.urls
        if not path.exists():
            if archive is not None:
                raise FileNotFoundError(f"archive={path} does not exist")
            if not download:
                raise FileNotFoundError(
                    f"{source.name}: {path} not found. Download {source.archive_name} from one of\n  "
                    + "\n  ".join(urls)
                    + f"\nand place it at {path}, or pass download=True"
                )
            if source.notice:
                print(source.notice)
            fetch(urls[0], path, mirrors=urls[1:], sha256=sha256, expected_size=source.expected_size)
        verify_file(path, sha256=sha256)
        x, y = _parse_archive(path, source)
        _write_cache(cache, x, y)
    return Dataset(
        x=x, y=y, num_classes=source.num_classes, name=source.name, image_shape=None,
        binary_features=True, mean=None, std=None,
    )


def load_purchase100(
    data_dir: str | os.PathLike,
    *,
    download: bool = False,
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    sha256: str | None = None,
) -> Dataset:
    """Purchase100: 197,324 x 600 binary features, 100 classes.

    Archive ``dataset_purchase.tgz`` holds one CSV ``dataset_purchase`` with no header:
    column 0 is the label ``1..100``, then 600 binary features. See ``load_tabular`` for the
    arguments, return value and errors.

    Example:
      >>> ds = load_purchase100("~/hampjax_data", download=True)  # doctest: +SKIP
      >>> ds.x.shape, ds.num_classes  # doctest: +SKIP
      ((197324, 600), 100)
    """
    return load_tabular(PURCHASE100, data_dir, download=download, url=url, archive=archive, sha256=sha256)


def load_texas100(
    data_dir: str | os.PathLike,
    *,
    accept_texas_terms: bool = False,
    download: bool = False,
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    sha256: str | None = None,
) -> Dataset:
    """Texas100: 67,330 x 6,169 binary features (all of them kept), 100 classes.

    Archive ``dataset_texas.tgz`` holds ``texas/100/feats`` (CSV of 6,169 binary features) and
    ``texas/100/labels`` (one label ``1..100`` per line). ``download=True`` needs
    ``accept_texas_terms=True`` (see ``TEXAS_NOTICE``, printed before downloading). Other
    arguments as in ``load_tabular``.

    Raises:
      ValueError: ``download=True`` without ``accept_texas_terms=True`` (plus ``load_tabular``'s
        errors).

    Example:
      >>> ds = load_texas100("~/hampjax_data", download=True, accept_texas_terms=True)  # doctest: +SKIP
      >>> ds.x.shape  # doctest: +SKIP
      (67330, 6169)
    """
    accept_texas_terms = validation.check_bool("accept_texas_terms", accept_texas_terms)
    if validation.check_bool("download", download) and not accept_texas_terms:
        raise ValueError(
            "accept_texas_terms must be True to download Texas100:\n" + TEXAS_NOTICE
        )
    return load_tabular(TEXAS100, data_dir, download=download, url=url, archive=archive, sha256=sha256)


def load_location30(
    data_dir: str | os.PathLike,
    *,
    download: bool = False,
    url: str | None = None,
    archive: str | os.PathLike | None = None,
    sha256: str | None = None,
) -> Dataset:
    """Location30: 5,010 x 446 binary features, 30 classes.

    Archive ``dataset_location.tgz`` (287,293 bytes) holds one CSV ``bangkok`` with no header:
    column 0 is the label in quotes (``"1"``..``"30"``), then 446 binary features. Other
    arguments as in ``load_tabular``.

    Example:
      >>> ds = load_location30("~/hampjax_data", download=True)  # doctest: +SKIP
      >>> ds.x.shape  # doctest: +SKIP
      (5010, 446)
    """
    return load_tabular(LOCATION30, data_dir, download=download, url=url, archive=archive, sha256=sha256)
