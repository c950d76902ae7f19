"""Binary tabular benchmarks: Purchase100, Texas100 and Location30.

Each loader reads, in order:

1. the archive: the ``archive=`` path, else ``<data_dir>/<archive file name>`` (placed there by
   the user, or downloaded there with ``download=True``), when it exists;
2. else the compact cache ``<data_dir>/<name>-<sha256[:16]>.npz`` (bit-packed 0/1 features,
   0-indexed labels) named in the manifest ``<data_dir>/<name>.manifest.json``.

Integrity (every load path, the cache included):

- the archive's size is checked where it is published (Location30: 287,293 bytes) and its
  row count always (Purchase100 197,324; Texas100 67,330; Location30 5,010);
- the archive's SHA-256 is checked against ``sha256=`` when given, else against the digest
  published in ``TabularSource.sha256`` (none is published for these three archives: see
  below), else against the digest pinned in the manifest by the first successful load;
- the cache is keyed on the archive's SHA-256 (file name and contents), and its own SHA-256 is
  recorded in the manifest and checked on every read: a changed archive never returns a stale
  cache, an edited cache is refused, and ``sha256=<wrong>`` fails even when only the cache
  exists. Every message names the file, the expected and the actual value.

No SHA-256 of the three archives has been published by their hosts (the NUS page and the
privacytrustlab/datasets repository list none), so hampjax cannot ship one: the first load
pins the digest of the archive it parsed (trust on first use), and every later load checks
it. Pass ``sha256=`` to check an archive against a digest you trust.

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
from hampjax.data.download import _check_hex, fetch, file_digest, verify_file

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
_CACHE_VERSION = 2  # 2: keyed on the archive's SHA-256, with a manifest.
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
      expected_size: archive size in bytes, when published (checked on every load).
      notice: text printed before downloading, when not empty.
      sha256: the archive's published SHA-256, when there is one (checked on every load).
      num_rows: number of examples the archive holds, when known (checked on every load,
        the cache's included); ``None`` accepts any count (e.g. a test fixture's source).
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
    sha256: str | None = None
    num_rows: int | None = None


PURCHASE100 = TabularSource(
    name="purchase100",
    archive_name="dataset_purchase.tgz",
    urls=(_NUS + "dataset_purchase.tgz", _GITHUB + "dataset_purchase.tgz"),
    num_features=600,
    num_classes=100,
    features_member="dataset_purchase",
    num_rows=197_324,
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
    num_rows=67_330,
)
LOCATION30 = TabularSource(
    name="location30",
    archive_name="dataset_location.tgz",
    urls=(_GITHUB + "dataset_location.tgz",),
    num_features=446,
    num_classes=30,
    features_member="bangkok",
    expected_size=287_293,
    num_rows=5_010,
)


# --------------------------------------------------------------------------------------------
# Cache.
# --------------------------------------------------------------------------------------------


def _manifest_path(source: TabularSource, data_dir: Path) -> Path:
    return data_dir / f"{source.name}.manifest.json"


def _cache_path(source: TabularSource, data_dir: Path, archive_sha256: str) -> Path:
    return data_dir / f"{source.name}-{archive_sha256[:16]}.npz"


_MANIFEST_FIELDS = ("archive_sha256", "archive_size", "cache", "cache_sha256")


def _read_manifest(path: Path, source: TabularSource) -> dict | None:
    """The manifest's record, ``None`` when absent; a ``ValueError`` naming it when malformed."""
    record = atomic.read_json(path, recover=f"delete {path} (and the {source.name}-*.npz cache) "
                                            f"to have them rebuilt from the archive")
    if record is None:
        return None
    ok = (isinstance(record, dict) and record.get("dataset") == source.name
          and record.get("version") == _CACHE_VERSION
          and all(isinstance(record.get(k), str) for k in ("archive_sha256", "cache", "cache_sha256"))
          and isinstance(record.get("archive_size"), int))
    if ok:
        try:
            _check_hex("archive_sha256", record["archive_sha256"], 64)
            _check_hex("cache_sha256", record["cache_sha256"], 64)
        except ValueError:
            ok = False
    if not ok or Path(record["cache"]).name != record["cache"]:
        raise ValueError(
            f"manifest {path} is not a {source.name} cache manifest of version {_CACHE_VERSION} "
            f"(fields {list(_MANIFEST_FIELDS)}); delete it (and the {source.name}-*.npz cache) to "
            f"have them rebuilt from the archive"
        )
    return record


def _write_cache(path: Path, x: np.ndarray, y: np.ndarray, archive_sha256: str) -> None:
    """Write bit-packed features and labels to ``path`` atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_with(path, lambda f: np.savez(
        f,
        packed=np.packbits(x, axis=1),
        labels=y.astype(np.int32),
        num_features=np.int64(x.shape[1]),
        version=np.int64(_CACHE_VERSION),
        archive_sha256=np.array(archive_sha256),
    ))


def _read_cache(path: Path, source: TabularSource, archive_sha256: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a cache file and check it against ``source`` and the archive digest it must come from."""
    delete = f"delete it (and {source.name}.manifest.json) to have it rebuilt from the archive"
    try:
        with np.load(path, allow_pickle=False) as data:
            packed, labels = data["packed"], data["labels"]
            num_features, version = int(data["num_features"]), int(data["version"])
            built_from = str(data["archive_sha256"]) if "archive_sha256" in data.files else None
    except (OSError, KeyError, ValueError, zlib.error, EOFError) as err:
        raise ValueError(f"cache file {path} is unreadable ({err}); {delete}") from err
    if version != _CACHE_VERSION or num_features != source.num_features or packed.ndim != 2:
        raise ValueError(
            f"cache file {path} does not match {source.name} (version {version}, {num_features} "
            f"features; expected version {_CACHE_VERSION}, {source.num_features}); {delete}"
        )
    if built_from != archive_sha256:
        raise ValueError(
            f"cache file {path} was built from an archive with sha256 {built_from}, expected "
            f"{archive_sha256}; {delete}"
        )
    if packed.dtype != np.uint8 or packed.shape[1] != -(-num_features // 8):
        raise ValueError(f"cache file {path} holds packed features of dtype {packed.dtype} and shape "
                         f"{packed.shape}, expected uint8 [N, {-(-num_features // 8)}]; {delete}")
    x = np.unpackbits(packed, axis=1, count=num_features)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"cache file {path} has {labels.shape} labels for {x.shape[0]} rows; {delete}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"cache file {path} holds labels of dtype {labels.dtype}, expected int32; {delete}")
    bad = np.flatnonzero((labels < 0) | (labels >= source.num_classes))
    if bad.size:
        raise ValueError(
            f"cache file {path} holds label {int(labels[bad[0]])} at row {int(bad[0])}, expected "
            f"labels in [0, {source.num_classes}); {delete}"
        )
    _check_rows(source, x.shape[0], f"cache file {path}")
    return x, labels.astype(np.int32)


def _check_rows(source: TabularSource, rows: int, where: str) -> None:
    if source.num_rows is not None and rows != source.num_rows:
        raise ValueError(
            f"{where} holds {rows} rows, expected {source.num_rows} ({source.name}): the file is "
            f"truncated or not the published {source.archive_name}; delete it and download it again"
        )


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


def _read_verified_cache(cache: Path, manifest: dict, source: TabularSource) -> tuple[np.ndarray, np.ndarray]:
    if not cache.is_file():
        raise ValueError(f"cache file {cache} named in {source.name}.manifest.json is missing; delete "
                         f"the manifest to have the cache rebuilt from the archive")
    actual = file_digest(cache, "sha256")
    if actual != manifest["cache_sha256"]:
        raise ValueError(
            f"checksum mismatch for cache file {cache}: sha256 is {actual}, expected "
            f"{manifest['cache_sha256']} (recorded in {source.name}.manifest.json when it was "
            f"written); delete both to have them rebuilt from the archive"
        )
    return _read_cache(cache, source, manifest["archive_sha256"])


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
      data_dir: folder for the archive, the ``<name>-<sha256[:16]>.npz`` cache and its
        ``<name>.manifest.json`` (see the module docstring for the integrity checks).
      download: download the archive into ``data_dir`` if it is missing.
      url: a URL (e.g. a mirror) tried before the default URLs.
      archive: path to an archive placed elsewhere; used instead of ``data_dir``'s copy.
      sha256: expected SHA-256 of the archive, checked before parsing, and against the cache's
        recorded archive digest when only the cache exists; ``None``: the published digest if
        any, else the one pinned by the first load.

    Returns:
      ``Dataset`` with ``x: uint8 [N, num_features]`` of 0/1 and ``y: int32 [N]`` 0-indexed.

    Raises:
      FileNotFoundError: the archive is missing and ``download`` is False (the message says what
        to download and where to put it).
      ValueError: bad arguments; an archive or cache whose size, row count or SHA-256 differs
        from the expected one (the message names the file, the expected and the actual value);
        a truncated/corrupt archive, wrong column counts, non-binary features or labels
        outside ``1..num_classes``; a malformed manifest or cache.
      DownloadError: ``download=True`` but no URL could be fetched.
    """
    download = validation.check_bool("download", download)
    if url is not None and (not isinstance(url, str) or not url):
        raise ValueError(f"url must be a non-empty string or None, got {url!r}")
    sha256 = _check_hex("sha256", sha256, 64)
    data_dir = Path(data_dir).expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise ValueError(f"data_dir={str(data_dir)!r} is a file, not a directory")
    manifest_path = _manifest_path(source, data_dir)
    manifest = _read_manifest(manifest_path, source)
    path = Path(archive).expanduser() if archive is not None else data_dir / source.archive_name
    # The digest the archive must have, and where that expectation comes from.
    if sha256 is not None:
        expected, origin = sha256, "sha256="
    elif source.sha256 is not None:
        expected, origin = source.sha256, f"the published digest of {source.archive_name}"
    elif manifest is not None:
        expected, origin = manifest["archive_sha256"], (
            f"the digest pinned in {manifest_path} by the first load (delete that file to accept "
            f"a different archive)")
    else:
        expected, origin = None, None
    if path.exists() or archive is not None or manifest is None:
        if not path.exists():
            urls = ((url,) if url else ()) + source.urls
            if archive is not None:
                raise FileNotFoundError(f"archive={path} does not exist")
            if not download:
                old = data_dir / f"{source.name}.npz"
                hint = (f"\n({old} is a cache of an earlier hampjax that records no archive digest: "
                        f"it is not used)" if old.exists() else "")
                raise FileNotFoundError(
                    f"{source.name}: {path} not found. Download {source.archive_name} from one of\n  "
                    + "\n  ".join(urls)
                    + f"\nand place it at {path}, or pass download=True" + hint
                )
            if source.notice:
                print(source.notice)
            fetch(urls[0], path, mirrors=urls[1:], sha256=expected, expected_size=source.expected_size)
        if path.is_dir():
            raise ValueError(f"archive {path} is a directory, expected the {source.archive_name} file")
        verify_file(path, expected_size=source.expected_size)
        actual = file_digest(path, "sha256")
        if expected is not None and actual != expected:
            raise ValueError(
                f"checksum mismatch for {path}: sha256 is {actual}, expected {expected} ({origin}); "
                f"the file is corrupt or not the expected archive"
            )
        cache = _cache_path(source, data_dir, actual)
        if (manifest is not None and manifest["archive_sha256"] == actual
                and manifest["cache"] == cache.name and cache.exists()):
            x, y = _read_verified_cache(cache, manifest, source)
        else:
            x, y = _parse_archive(path, source)
            _check_rows(source, x.shape[0], str(path))
            _write_cache(cache, x, y, actual)
            atomic.write_json(manifest_path, {
                "dataset": source.name, "version": _CACHE_VERSION, "archive": path.name,
                "archive_sha256": actual, "archive_size": path.stat().st_size,
                "cache": cache.name, "cache_sha256": file_digest(cache, "sha256"),
            }, sort_keys=True)
    else:  # No archive: the cache the manifest names, built from the expected archive.
        if expected != manifest["archive_sha256"]:
            raise ValueError(
                f"checksum mismatch for {source.name}: the cache {data_dir / manifest['cache']} was "
                f"built from an archive with sha256 {manifest['archive_sha256']} (recorded in "
                f"{manifest_path}), expected {expected} ({origin}); place the expected archive at "
                f"{path}"
            )
        x, y = _read_verified_cache(data_dir / manifest["cache"], manifest, source)
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
