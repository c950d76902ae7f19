"""fetch(): resume, checksums, truncation, mirror fallback and the offline message, on localhost."""

import hashlib
import http.server
import socket
import threading

import pytest

from hampjax.data.download import DownloadError, fetch, file_digest, verify_file

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes.
SHA = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /file (Range aware), a truncated copy at /truncated, 404 elsewhere."""

    log: list = []
    ignore_range = False

    def log_message(self, *args):  # Keep test output clean.
        pass

    def do_GET(self):
        type(self).log.append((self.path, self.headers.get("Range")))
        if self.path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/other":
            body = b"not the file"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path != "/file":
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        if rng and not type(self).ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = PAYLOAD[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            body = PAYLOAD
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server():
    _Handler.log = []
    _Handler.ignore_range = False
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_downloads_and_verifies(server, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    out = fetch(f"{server}/file", dest, sha256=SHA, md5=MD5, expected_size=len(PAYLOAD))
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "data.bin.part").exists()
    assert file_digest(dest, "sha256") == SHA and file_digest(dest, "md5") == MD5


def test_existing_verified_file_uses_no_network(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD)
    fetch(f"{server}/file", dest, sha256=SHA)
    assert _Handler.log == []
    # Even an unreachable URL is fine when the file is in place (manual download).
    fetch(f"http://127.0.0.1:{_closed_port()}/file", dest, sha256=SHA)


def test_existing_file_with_wrong_checksum_raises(tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(PAYLOAD[:-1] + b"x")
    with pytest.raises(ValueError, match="checksum mismatch"):
        fetch("http://127.0.0.1:1/file", dest, sha256=SHA)


def test_resume_from_partial_file(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:3000])
    fetch(f"{server}/file", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.log == [("/file", "bytes=3000-")]


def test_resume_when_server_ignores_range_restarts(server, tmp_path):
    _Handler.ignore_range = True
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(b"garbage" * 10)
    fetch(f"{server}/file", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_gets_416_and_is_accepted(server, tmp_path):
    dest = tmp_path / "data.bin"
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)
    fetch(f"{server}/file", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_download(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(ValueError, match="checksum mismatch"):
        fetch(f"{server}/file", dest, sha256="0" * 64)
    assert not dest.exists() and not (tmp_path / "data.bin.part").exists()
    with pytest.raises(ValueError, match="expected 5"):
        fetch(f"{server}/file", dest, expected_size=5)


def test_truncated_download_raises_then_resumes(server, tmp_path):
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="truncated: got 1000 of 10240 bytes"):
        fetch(f"{server}/truncated", dest, sha256=SHA)
    part = tmp_path / "data.bin.part"
    assert part.read_bytes() == PAYLOAD[:1000] and not dest.exists()
    fetch(f"{server}/file", dest, sha256=SHA)
    assert dest.read_bytes() == PAYLOAD
    assert _Handler.log[-1] == ("/file", "bytes=1000-")


def test_mirror_fallback(server, tmp_path):
    dest = tmp_path / "data.bin"
    fetch(f"{server}/missing", dest, sha256=SHA, mirrors=[f"{server}/file"])
    assert dest.read_bytes() == PAYLOAD
    assert [p for p, _ in _Handler.log] == ["/missing", "/file"]


def test_mirror_with_wrong_file_falls_through(server, tmp_path):
    dest = tmp_path / "data.bin"
    fetch(f"{server}/other", dest, sha256=SHA, mirrors=[f"{server}/file"])
    assert dest.read_bytes() == PAYLOAD


def test_offline_message_names_urls_and_destination(tmp_path):
    dest = tmp_path / "data.bin"
    url = f"http://127.0.0.1:{_closed_port()}/dataset.tgz"
    mirror = f"http://127.0.0.1:{_closed_port()}/mirror.tgz"
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, mirrors=[mirror], timeout=5)
    msg = str(info.value)
    assert url in msg and mirror in msg and str(dest) in msg and "offline" in msg
    assert not dest.exists()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(url=""), "url must be"),
        (dict(mirrors="http://x"), "mirrors must be"),
        (dict(mirrors=[""]), "mirrors must be"),
        (dict(timeout=0), "timeout must be"),
        (dict(sha256="abc"), "sha256 must be a 64-character"),
        (dict(sha256="g" * 64), "sha256 must be a 64-character"),
        (dict(md5="0" * 31), "md5 must be a 32-character"),
    ],
)
def test_fetch_validation(tmp_path, kwargs, match):
    args = dict(url="http://127.0.0.1:1/x", dest=tmp_path / "x")
    args.update(kwargs)
    url, dest = args.pop("url"), args.pop("dest")
    with pytest.raises(ValueError, match=match):
        fetch(url, dest, **args)


def test_verify_file_and_digest_validation(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    verify_file(path, sha256=SHA.upper(), md5=MD5, expected_size=len(PAYLOAD))
    with pytest.raises(ValueError, match="md5 is"):
        verify_file(path, md5="0" * 32)
    with pytest.raises(ValueError, match="expected_size must be"):
        verify_file(path, expected_size=-1)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        file_digest(path, "sha1")
