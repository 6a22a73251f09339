"""Fetching and verifying the corpus archive (e.g. AISHELL-1 ``data_aishell.tgz``).

The download is written to ``<dest>.part`` and resumed with HTTP ``Range`` requests after a dropped
connection or an interrupted run. Only after the size and md5 check pass is the part file renamed
to ``dest`` (atomically, with `os.replace`), so ``dest`` never exists half-written or unverified.
A part file that fails the check is deleted (resuming it would be pointless) and counts as that
mirror's failure: the next mirror is tried from zero.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import requests
import urllib3.exceptions
from tqdm import tqdm

from whisperforge.core.errors import WhisperforgeError, one_line

log = logging.getLogger(__name__)

USER_AGENT = "whisperforge-download/1.0"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_CONTENT_RANGE_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")

#: Errors after which the same mirror is tried again (resuming from the bytes already written).
_TRANSIENT = (
    requests.RequestException,  # ConnectionError, ChunkedEncodingError, Timeout, HTTPError, ...
    urllib3.exceptions.HTTPError,  # ProtocolError, ReadTimeoutError leaking from the raw stream
    http.client.HTTPException,  # IncompleteRead
    OSError,  # connection reset while reading; also disk errors (reported as the last error)
)


class _IncompleteBody(Exception):
    """The server closed the stream before sending the advertised Content-Length."""


class _RestartFromZero(Exception):
    """The part file cannot be resumed (bad Content-Range, or bigger than the remote file)."""


def md5sum(path: Path, chunk_size: int = 8 << 20) -> str:
    """Hex md5 digest of the file at ``path``, read in ``chunk_size`` blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _mismatch(path: Path, md5: str | None, size: int | None) -> str | None:
    """Why ``path`` fails the size/md5 check (size first: it is cheap), or None if it passes."""
    if size is not None:
        actual_size = path.stat().st_size
        if actual_size != size:
            return f"size mismatch: expected {size} bytes, got {actual_size} bytes"
    if md5 is not None:
        expected = md5.strip().lower()
        actual = md5sum(path)
        if actual != expected:
            return f"md5 mismatch: expected {expected}, got {actual}"
    return None


def verify_archive(path: Path, md5: str | None, size: int | None) -> None:
    """Check that ``path`` exists and has the given ``size`` and ``md5`` (each optional).

    Raises:
        WhisperforgeError: naming ``path`` if it is missing, or with the expected and actual
            size or md5 if they differ.
    """
    path = Path(path)
    if not path.is_file():
        raise WhisperforgeError(f"{path}: archive not found")
    reason = _mismatch(path, md5, size)
    if reason is not None:
        raise WhisperforgeError(f"{path}: {reason}")


def _open_bar(dest: Path, size: int | None, initial: int, progress: bool) -> tqdm:
    """A byte-unit tqdm progress bar on stderr."""
    return tqdm(
        total=size,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=dest.name,
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )


def _part_size(part: Path) -> int:
    """Size of the part file, 0 if there is none."""
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _remote_total(response: requests.Response) -> int | None:
    """Total size of the remote file from a 206/416 Content-Range header, if stated."""
    header = response.headers.get("Content-Range", "")
    match = _CONTENT_RANGE.match(header) or _CONTENT_RANGE_UNSATISFIED.match(header)
    if match is None or match.groups()[-1] == "*":
        return None
    return int(match.groups()[-1])


def _start_offset(response: requests.Response, have: int, size: int | None) -> int | None:
    """Where the body of ``response`` goes in the part file; None if the part is already complete.

    Raises:
        _RestartFromZero: the server's answer means the part file cannot be resumed.
    """
    if response.status_code == 416 and have:
        total = _remote_total(response) or size
        if total is not None and have == total:
            return None
        raise _RestartFromZero(f"server refused Range bytes={have}- (remote size {total})")
    response.raise_for_status()
    if response.status_code == 206 and have:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != have:
            raise _RestartFromZero(
                f"asked for bytes={have}-, got Content-Range "
                f"{response.headers.get('Content-Range')!r}"
            )
        return have
    if have:
        log.info("server ignored the Range request; restarting the download from zero")
    return 0


def _fetch(
    session: requests.Session,
    url: str,
    part: Path,
    bar: tqdm,
    *,
    size: int | None,
    chunk_size: int,
    timeout: float,
) -> None:
    """One HTTP request: append to (or restart) ``part`` until the response body ends.

    Returns normally once the body was received in full (or the part was already complete).

    Raises:
        _IncompleteBody: the stream ended before Content-Length bytes arrived.
        _RestartFromZero: the part file was deleted because it cannot be resumed.
        requests / urllib3 / OSError exceptions for connection problems.
    """
    have = _part_size(part)
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(url, headers=headers, stream=True, timeout=timeout) as response:
        try:
            offset = _start_offset(response, have, size)
        except _RestartFromZero:
            part.unlink(missing_ok=True)
            bar.reset(total=size)
            raise
        if offset is None:
            log.info("%s is already complete (%d bytes)", part, have)
            return
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        if size is None and expected is not None:
            bar.total = offset + expected
        bar.n = offset
        bar.refresh()
        written = 0
        with open(part, "ab" if offset else "wb") as fh:
            for chunk in response.iter_content(chunk_size=chunk_size):
                fh.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    if expected is not None and written < expected:
        raise _IncompleteBody(f"connection closed after {written} of {expected} bytes")


def _is_permanent(exc: BaseException) -> bool:
    """True for HTTP client errors that another attempt on the same mirror will not fix."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        return 400 <= status < 500 and status not in (408, 425, 429)
    return False


def _try_mirror(
    session: requests.Session,
    url: str,
    part: Path,
    bar: tqdm,
    *,
    size: int | None,
    retries: int,
    chunk_size: int,
    timeout: float,
    backoff: float,
) -> BaseException | None:
    """Up to ``retries`` attempts on one mirror; None on success, else the last error.

    An attempt that grew the part file beyond its previous size does not use up an attempt: a
    flaky connection that keeps making progress is resumed until the file is complete.
    """
    failures = 0
    best = _part_size(part)
    while True:
        try:
            _fetch(session, url, part, bar, size=size, chunk_size=chunk_size, timeout=timeout)
            return None
        except (_IncompleteBody, _RestartFromZero, *_TRANSIENT) as exc:
            now = _part_size(part)
            progressed = now > best
            best = max(best, now)
            failures = 0 if progressed else failures + 1
            log.warning("%s: %s (have %d bytes)", url, one_line(exc), now)
            if _is_permanent(exc) or failures >= retries:
                return exc
            if not progressed:
                time.sleep(backoff * 2 ** (failures - 1))


def download_archive(
    urls: Sequence[str],
    dest: Path,
    *,
    md5: str | None,
    size: int | None,
    progress: bool = True,
    retries: int = 3,
    chunk_size: int = 1 << 20,
    timeout: float = 60,
    backoff: float = 1.0,
) -> Path:
    """Download ``dest`` from the first mirror in ``urls`` that serves the right file.

    Bytes go to ``<dest>.part``; an existing part file is resumed with ``Range: bytes=N-`` (a
    server answering 200 restarts it from zero; 416 with a complete part goes straight to the
    check). Each mirror gets ``retries`` attempts, waiting ``backoff * 2**k`` seconds between
    attempts that made no progress; a connection dropped mid-stream resumes from the bytes
    already written. A completed download with the wrong size/md5 is deleted and the next mirror
    is tried. If ``dest`` already exists and passes the md5/size check it is returned.

    Returns:
        ``dest``, which exists only once verified.

    Raises:
        WhisperforgeError: every mirror failed; the one-line message names each mirror and what
            it gave (its last error, or the size/md5 mismatch of its download).
    """
    dest = Path(dest)
    if not urls:
        raise WhisperforgeError(f"{dest}: no download URL given")
    if dest.is_file() and (md5 is not None or size is not None) and not _mismatch(dest, md5, size):
        log.info("%s already exists and matches the expected checksum", dest)
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with requests.Session() as session, _open_bar(dest, size, _part_size(part), progress) as bar:
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        for url in urls:
            log.info("downloading %s -> %s", url, part)
            error = _try_mirror(
                session,
                url,
                part,
                bar,
                size=size,
                retries=retries,
                chunk_size=chunk_size,
                timeout=timeout,
                backoff=backoff,
            )
            reason = one_line(error) if error is not None else _mismatch(part, md5, size)
            if reason is None:
                os.replace(part, dest)
                log.info("downloaded and verified %s", dest)
                return dest
            if error is None:  # a complete but corrupt download: never resume it
                part.unlink()
                bar.reset(total=size)
                log.warning("%s: %s; deleted %s", url, reason, part.name)
            failures.append(f"{url}: {reason}")
    raise WhisperforgeError(f"could not download {dest}: {'; '.join(failures)}")


def resolve_archive(
    local: str | None,
    urls: Sequence[str],
    dest: Path,
    md5: str | None,
    size: int | None,
    *,
    progress: bool = True,
) -> Path:
    """The archive to use: the user's own copy (config ``data.archive``) or a fresh download.

    A ``local`` path is verified (when ``md5``/``size`` are given) and returned unchanged; nothing
    is downloaded or copied. Otherwise the archive is downloaded from ``urls`` to ``dest``.

    Raises:
        WhisperforgeError: the local archive is missing or fails the check, or the download fails.
    """
    if local:
        path = Path(local).expanduser()
        if not path.is_file():
            raise WhisperforgeError(f"{path}: archive not found (config data.archive)")
        verify_archive(path, md5, size)
        return path
    return download_archive(urls, Path(dest), md5=md5, size=size, progress=progress)
