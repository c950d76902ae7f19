"""Resumable, checksummed downloads with mirrors and a manual-file fallback.

``fetch`` downloads into ``dest + ".part"`` with HTTP Range requests (an interrupted download
resumes where it stopped), verifies the size and checksums, then renames the part file onto
``dest`` atomically. If ``dest`` already exists and verifies, no network is used: a user on an
offline machine can place the file there by hand. Nothing downloaded is ever unpickled.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from hampjax import validation

__all__ = ["fetch", "DownloadError", "file_digest", "verify_file"]

_CHUNK = 1 << 20


class DownloadError(OSError):
    """A file could not be downloaded from any URL (offline, HTTP error or truncated transfer)."""


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file, read in chunks.

    Args:
      path: file to hash.
      algorithm: ``"sha256"`` or ``"md5"``.

    Returns:
      lowercase hex digest string.

    Example:
      >>> len(file_digest(__file__, "sha256"))
      64
    """
    validation.check_choice("algorithm", algorithm, ("sha256", "md5"))
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hex(name: str, value: str | None, length: int) -> str | None:
    if value is None:
        return None
    ok = isinstance(value, str) and len(value) == length
    if ok:
        try:
            int(value, 16)
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"{name} must be a {length}-character hex string or None, got {value!r}")
    return value.lower()


def verify_file(
    path: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    expected_size: int | None = None,
) -> None:
    """Raise ``ValueError`` unless ``path`` has the expected size and checksums.

    Args:
      path: file to check (must exist).
      sha256: expected SHA-256 hex digest, or ``None`` to skip.
      md5: expected MD5 hex digest, or ``None`` to skip.
      expected_size: expected size in bytes, or ``None`` to skip.

    Raises:
      ValueError: on a size or checksum mismatch (the message names the file and both values),
        or a malformed ``sha256``/``md5``/``expected_size``.
    """
    sha256 = _check_hex("sha256", sha256, 64)
    md5 = _check_hex("md5", md5, 32)
    if expected_size is not None:
        expected_size = validation.check_positive_int("expected_size", expected_size, minimum=0)
    path = Path(path)
    if expected_size is not None and path.stat().st_size != expected_size:
        raise ValueError(
            f"{path} has {path.stat().st_size} bytes, expected {expected_size}: the file is truncated "
            f"or not the expected file; delete it and download it again"
        )
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None:
            actual = file_digest(path, algorithm)
            if actual != expected:
                raise ValueError(
                    f"checksum mismatch for {path}: {algorithm} is {actual}, expected {expected}; "
                    f"the file is corrupt or not the expected file; delete it and download it again"
                )


def _download_once(url: str, part: Path, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming from its current size; raise on truncation."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "hampjax-fetch"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # Nothing left to fetch: the part file is already complete.
            return
        raise
    with response:
        resumed = start and response.status == 206
        mode = "ab" if resumed else "wb"  # A 200 answer to a Range request restarts from byte 0.
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        received = 0
        with open(part, mode) as f:
            try:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    f.write(chunk)
                    received += len(chunk)
            except http.client.IncompleteRead as err:
                f.write(err.partial)
                received += len(err.partial)
        if expected is not None and received < expected:
            raise DownloadError(
                f"download of {url} was truncated: got {received} of {expected} bytes "
                f"(kept in {part}; calling fetch again resumes)"
            )


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    md5: str | None = None,
    mirrors: Sequence[str] = (),
    expected_size: int | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` (or a mirror) to ``dest``, resuming and verifying; offline-friendly.

    If ``dest`` exists it is verified (size/checksums when given) and returned without any
    network access. Otherwise the URLs are tried in order (``url``, then ``mirrors``); each
    download goes to ``dest + ".part"`` (resumed with an HTTP Range request when that file
    exists), is verified, and is renamed onto ``dest`` atomically.

    Args:
      url: primary URL.
      dest: final file path; its parent folder is created.
      sha256: expected SHA-256 hex digest, or ``None``.
      md5: expected MD5 hex digest, or ``None``.
      mirrors: further URLs tried in order when the previous ones fail.
      expected_size: expected size in bytes, or ``None``.
      timeout: socket timeout in seconds, ``> 0``.

    Returns:
      ``Path`` of the verified file.

    Raises:
      ValueError: bad arguments, or a checksum/size mismatch of an existing ``dest`` or of the
        downloaded file (a mismatching download is deleted).
      DownloadError: no URL could be downloaded (offline, HTTP errors, truncated transfers);
        the message says which URLs to download by hand and where to put the file.

    Example:
      >>> fetch("https://example.org/data.tgz", "/data/data.tgz", sha256="ab" * 32)  # doctest: +SKIP
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"url must be a non-empty string, got {url!r}")
    if isinstance(mirrors, str) or not all(isinstance(m, str) and m for m in mirrors):
        raise ValueError(f"mirrors must be a sequence of non-empty URL strings, got {mirrors!r}")
    validation.check_positive("timeout", timeout)
    sha256 = _check_hex("sha256", sha256, 64)
    md5 = _check_hex("md5", md5, 32)
    dest = Path(dest)
    checks = dict(sha256=sha256, md5=md5, expected_size=expected_size)
    if dest.exists():
        verify_file(dest, **checks)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    urls = (url, *mirrors)
    errors: list[str] = []
    mismatch: ValueError | None = None
    for candidate in urls:
        try:
            _download_once(candidate, part, timeout)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            errors.append(f"{candidate}: {err}")
            continue
        try:
            verify_file(part, **checks)
        except ValueError as err:
            part.unlink(missing_ok=True)
            mismatch = err
            errors.append(f"{candidate}: {err}")
            continue
        os.replace(part, dest)
        return dest
    if mismatch is not None:
        raise ValueError(f"downloaded file failed verification: {mismatch}")
    tried = "\n  ".join(errors)
    raise DownloadError(
        f"could not download {dest.name}. Tried:\n  {tried}\n"
        f"If this machine is offline, download one of these URLs by hand:\n  "
        + "\n  ".join(urls)
        + f"\nand place the file at {dest}"
    )
