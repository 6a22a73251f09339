"""Tests for whisperforge.data.download against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from whisperforge.core.errors import WhisperforgeError
from whisperforge.data.download import download_archive, md5sum, resolve_archive, verify_archive

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
HALF = len(PAYLOAD) // 2
WRONG_MD5 = "0" * 32
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class ServerState:
    """What the test server does and what it saw."""

    body: bytes = PAYLOAD  # the file served at any path
    missing: bool = False  # answer every request with 404
    drop_once: bool = False  # next full-body response: send half, then close the socket
    ignore_range: bool = False  # always answer 200 with the whole file
    ranges: list[str | None] = field(default_factory=list)  # Range header of each request


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request log lines."""

    def do_GET(self) -> None:
        """Serve ``state.body`` with Range support, dropping the connection once if asked."""
        state = self.server.state
        header = self.headers.get("Range")
        state.ranges.append(header)
        if state.missing:
            self._send(404, b"not here", {})
            return
        body = state.body
        match = _RANGE.match(header) if header and not state.ignore_range else None
        if match is None:
            self._send(200, body, {})
            return
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else len(body) - 1
        if start >= len(body):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        end = min(end, len(body) - 1)
        content_range = {"Content-Range": f"bytes {start}-{end}/{len(body)}"}
        self._send(206, body[start : end + 1], content_range)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "none" if self.server.state.ignore_range else "bytes")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.server.state.drop_once:
            self.server.state.drop_once = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


@dataclass
class Served:
    """A running test server: its URL and its state."""

    url: str
    state: ServerState


@contextmanager
def _serving() -> Iterator[Served]:
    """A ThreadingHTTPServer on 127.0.0.1 serving PAYLOAD at /data.tgz."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = ServerState()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}/data.tgz", server.state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def served() -> Iterator[Served]:
    """A test server (the first mirror)."""
    with _serving() as mirror:
        yield mirror


@pytest.fixture
def served2() -> Iterator[Served]:
    """A second, independent test server (the second mirror)."""
    with _serving() as mirror:
        yield mirror


def _dead_url() -> str:
    """A URL on a 127.0.0.1 port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.tgz"


def _download(urls: list[str], dest: Path, md5: str | None = PAYLOAD_MD5, **kw: object) -> Path:
    kw.setdefault("progress", False)
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 5)
    return download_archive(urls, dest, md5=md5, size=kw.pop("size", len(PAYLOAD)), **kw)


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def test_md5sum_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(PAYLOAD)
    assert md5sum(path, chunk_size=1000) == PAYLOAD_MD5


def test_plain_download(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "sub" / "data.tgz"
    out = _download([served.url], dest, progress=True)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
    assert not _part(dest).exists()
    assert served.state.ranges == [None]
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "data.tgz" in captured.err  # the tqdm bar goes to stderr


def test_dropped_connection_resumes(served: Served, tmp_path: Path) -> None:
    served.state.drop_once = True
    dest = tmp_path / "data.tgz"
    _download([served.url], dest)
    assert md5sum(dest) == PAYLOAD_MD5
    assert not _part(dest).exists()
    assert len(served.state.ranges) == 2
    assert served.state.ranges[0] is None
    match = _RANGE.match(served.state.ranges[1] or "")
    assert match is not None, served.state.ranges
    # resumed from what was written (the last partially received chunk may be lost), not zero
    assert 0 < int(match.group(1)) <= HALF


def test_dropped_connection_without_known_size(served: Served, tmp_path: Path) -> None:
    served.state.drop_once = True
    dest = tmp_path / "data.tgz"
    _download([served.url], dest, md5=None, size=None)
    assert dest.read_bytes() == PAYLOAD
    match = _RANGE.match(served.state.ranges[1] or "")
    assert match is not None and 0 < int(match.group(1)) <= HALF, served.state.ranges


def test_existing_part_is_continued(served: Served, tmp_path: Path) -> None:
    dest = tmp_path / "data.tgz"
    _part(dest).write_bytes(PAYLOAD[:HALF])
    _download([served.url], dest)
    assert dest.read_bytes() == PAYLOAD
    assert served.state.ranges == [f"bytes={HALF}-"]


def test_complete_part_answered_416_is_verified(served: Served, tmp_path: Path) -> None:
    dest = tmp_path / "data.tgz"
    _part(dest).write_bytes(PAYLOAD)
    _download([served.url], dest, size=None)
    assert dest.read_bytes() == PAYLOAD
    assert served.state.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert not _part(dest).exists()


def test_wrong_md5_deletes_part(served: Served, tmp_path: Path) -> None:
    dest = tmp_path / "data.tgz"
    with pytest.raises(WhisperforgeError) as info:
        _download([served.url], dest, md5=WRONG_MD5)
    message = str(info.value)
    assert "\n" not in message
    assert str(dest) in message
    assert WRONG_MD5 in message
    assert PAYLOAD_MD5 in message
    assert not dest.exists()
    assert not _part(dest).exists()


def test_dead_first_mirror_falls_back(served: Served, tmp_path: Path) -> None:
    dest = tmp_path / "data.tgz"
    _download([_dead_url(), served.url], dest)
    assert dest.read_bytes() == PAYLOAD
    assert served.state.ranges == [None]


def test_wrong_md5_mirror_falls_back(
    served: Served, served2: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served.state.body = bytes([PAYLOAD[0] ^ 1]) + PAYLOAD[1:]  # right size, wrong bytes
    dest = tmp_path / "data.tgz"
    with caplog.at_level(logging.WARNING, logger="whisperforge.data.download"):
        _download([served.url, served2.url], dest)
    assert dest.read_bytes() == PAYLOAD
    assert not _part(dest).exists()
    assert served.state.ranges == [None]
    assert served2.state.ranges == [None]  # the corrupt part was deleted, not resumed
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(served.url in m and "md5 mismatch" in m for m in warnings), warnings


def test_wrong_size_then_404_lists_both(served: Served, served2: Served, tmp_path: Path) -> None:
    served.state.body = PAYLOAD[:-100]
    served2.state.missing = True
    dest = tmp_path / "data.tgz"
    with pytest.raises(WhisperforgeError) as info:
        _download([served.url, served2.url], dest)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"could not download {dest}: ")
    first, second = message.split("; ")
    size_msg = f"size mismatch: expected {len(PAYLOAD)} bytes, got {len(PAYLOAD) - 100} bytes"
    assert first.endswith(f"{served.url}: {size_msg}")
    assert second.startswith(f"{served2.url}: HTTPError: 404")
    assert served2.state.ranges == [None]  # 404 is permanent: no retries
    assert not dest.exists()
    assert not _part(dest).exists()


def test_all_mirrors_fail(tmp_path: Path) -> None:
    dest = tmp_path / "data.tgz"
    urls = [_dead_url(), _dead_url()]
    with pytest.raises(WhisperforgeError) as info:
        _download(urls, dest, retries=2)
    message = str(info.value)
    assert "\n" not in message
    assert all(url in message for url in urls)
    assert "ConnectionError" in message
    assert not dest.exists()


def test_server_ignoring_range_restarts(served: Served, tmp_path: Path) -> None:
    served.state.ignore_range = True
    dest = tmp_path / "data.tgz"
    _part(dest).write_bytes(PAYLOAD[:HALF])  # appending a 200 body to this would corrupt it
    _download([served.url], dest)
    assert dest.read_bytes() == PAYLOAD
    assert served.state.ranges == [f"bytes={HALF}-"]


def test_server_ignoring_range_with_drop(served: Served, tmp_path: Path) -> None:
    served.state.ignore_range = True
    served.state.drop_once = True
    dest = tmp_path / "data.tgz"
    _download([served.url], dest)
    assert dest.read_bytes() == PAYLOAD
    assert len(served.state.ranges) == 2


def test_verify_archive(tmp_path: Path) -> None:
    path = tmp_path / "a.tgz"
    with pytest.raises(WhisperforgeError, match=re.escape(str(path))):
        verify_archive(path, PAYLOAD_MD5, None)
    path.write_bytes(PAYLOAD)
    verify_archive(path, PAYLOAD_MD5.upper(), len(PAYLOAD))
    with pytest.raises(WhisperforgeError, match=rf"expected {len(PAYLOAD) + 1} bytes"):
        verify_archive(path, PAYLOAD_MD5, len(PAYLOAD) + 1)
    with pytest.raises(WhisperforgeError, match=f"expected {WRONG_MD5}, got {PAYLOAD_MD5}"):
        verify_archive(path, WRONG_MD5, len(PAYLOAD))


def test_resolve_archive_local_untouched(tmp_path: Path) -> None:
    local = tmp_path / "mine" / "data_aishell.tgz"
    local.parent.mkdir()
    local.write_bytes(PAYLOAD)
    os.utime(local, (1_000_000_000, 1_000_000_000))
    before = local.stat()
    dest = tmp_path / "downloads" / "data.tgz"
    dead = [_dead_url()]
    out = resolve_archive(str(local), dead, dest, PAYLOAD_MD5, len(PAYLOAD))
    assert out == local
    after = local.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not dest.exists() and not dest.parent.exists()
    with pytest.raises(WhisperforgeError) as info:
        resolve_archive(str(local), dead, dest, WRONG_MD5, None)
    assert str(local) in str(info.value)
    assert WRONG_MD5 in str(info.value)
    with pytest.raises(WhisperforgeError, match=r"missing\.tgz"):
        resolve_archive(str(tmp_path / "missing.tgz"), dead, dest, None, None)


def test_resolve_archive_downloads(served: Served, tmp_path: Path) -> None:
    dest = tmp_path / "data.tgz"
    out = resolve_archive(None, [served.url], dest, PAYLOAD_MD5, len(PAYLOAD), progress=False)
    assert out == dest
    assert dest.read_bytes() == PAYLOAD
