"""Files the workflow writes and reads back: atomically, stably, with one-line errors.

`atomic_path` yields a temp path beside the destination and renames it into place only when the
block succeeds; `write_text` and `write_json` are its two common uses. A write that fills the disk
is one line naming the file and the space left, and leaves nothing partial; `is_full_disk` tells
such a write from other failures, whatever the library raised. What a killed writer left beside
its destination is removed by the next write (`remove_leftovers`). `read_json` and
`read_json_object` read a step's JSON output back, naming the file when it is missing or malformed,
and `json_number` tells a finite number in it from anything else. `sha256_file` is the digest
recorded for provenance and checkpoints.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def free_bytes(path: str | Path) -> int:
    """Free space on the filesystem of `path` (its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def no_space(dest: Path, what: str) -> WhisperforgeError:
    """The one line for a write that filled the disk: the path, what needed it, what is left."""
    return WhisperforgeError(
        f"{dest}: no space left on the device writing {what} "
        f"({human_bytes(free_bytes(dest.parent))} free there); free some space or move results/"
    )


# The OS's words for a full disk, as libraries that drop the OSError quote them: safetensors'
# "I/O error: No space left on device (os error 28)" (112: Windows' ERROR_DISK_FULL).
FULL_DISK_WORDS = ("No space left on device", "os error 28") + (
    ("os error 112",) if sys.platform == "win32" else ()  # EHOSTDOWN elsewhere
)
# A failed write whose errno is lost: torch.save's "PytorchStreamWriter failed writing file ..."
# or, in torch 2.13, "unexpected pos 576 vs 534" over "basic_ios::clear: iostream error".
WRITE_FAILURE_WORDS = ("write", "unexpected pos", "iostream error")


def _error_chain(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it was raised from or while handling, as a traceback prints them: a
    `raise ... from None` (an error already turned into its own one line) ends the chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )


def is_full_disk(error: BaseException, where: str | Path | None = None, needed: int = 0) -> bool:
    """Whether `error` is a write that filled the disk, whatever the library made of the OSError.

    Yes when `error` or anything in its cause/context chain has errno ENOSPC or quotes the OS's
    words for it; with `where` and `needed`, also a failed write (the errno lost, as torch.save
    loses it) while less than `needed` bytes are free at `where`.
    """
    chain = list(_error_chain(error))
    if any(getattr(e, "errno", None) == errno.ENOSPC for e in chain):
        return True
    messages = [str(e) for e in chain]
    if any(words in m for m in messages for words in FULL_DISK_WORDS):
        return True
    return (
        where is not None
        and needed > 0
        and any(words in m for m in messages for words in WRITE_FAILURE_WORDS)
        and free_bytes(where) < needed
    )


def remove_leftovers(dest: Path, suffix: str = ".tmp") -> None:
    """Remove what a killed writer of `dest` left beside it: its temp file or directory
    (`.<name>.<8 random characters><suffix>`, as `tempfile` names them) and the previous version
    it had moved aside (`.<name>.old-<pid>`). One job writes an output at a time (Snakemake's
    locks), so none of these belongs to a live writer; `dest` itself is rebuilt by the caller."""
    name = re.escape(f".{dest.name}.")
    pattern = re.compile(rf"{name}([a-z0-9_]{{8}}{re.escape(suffix)}|old-\d+)")
    for path in [p for p in dest.parent.iterdir() if pattern.fullmatch(p.name)]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):  # held open (a virus scanner): left for later
                path.unlink()


@contextmanager
def atomic_path(dest: str | Path, suffix: str = "", what: str = "it") -> Iterator[Path]:
    """Yield a temp path beside `dest`, renamed onto it only if the block succeeds.

    A full disk (`is_full_disk`) is one WhisperforgeError naming `dest`, `what` was being written
    and the free space left, with the temp file gone and `dest` as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(dest, suffix or ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or ".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.chmod(0o644)  # mkstemp makes it owner-only; results are for the team to read
        os.replace(tmp_path, dest)
    except Exception as e:
        if not is_full_disk(e):
            raise
        tmp_path.unlink(missing_ok=True)  # first, so the message counts the space it held
        raise no_space(dest, what) from None
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(dest: str | Path, what: str = "it") -> Iterator[Path]:
    """Yield a temp directory beside `dest`; if the block succeeds it replaces `dest` (the old
    one moved aside first, then removed), so `dest` is never half-written or missing. A full disk
    is one line, as in `atomic_path`, with the temp directory gone."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it owner-only; results are for the team
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
    except Exception as e:
        if not is_full_disk(e):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        raise no_space(dest, what) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | Path, text: str, what: str = "it") -> None:
    """Write UTF-8 text atomically, newlines as given (the same bytes on every platform)."""
    with atomic_path(path, what=what) as tmp:
        tmp.write_bytes(text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, what: str = "it") -> None:
    """Write pretty, key-sorted JSON atomically (stable bytes for the same content)."""
    with atomic_path(path, what=what) as tmp:
        tmp.write_text(
            json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; a missing or unreadable file raises naming it."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except FileNotFoundError:
        raise WhisperforgeError(f"{path}: not found") from None
    except OSError as e:
        raise WhisperforgeError(f"{path}: cannot read ({e})") from None
    return digest.hexdigest()


def read_json(path: str | Path, what: str) -> Any:
    """The JSON in `path`; a WhisperforgeError naming the file and `what` it should hold."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WhisperforgeError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise WhisperforgeError(f"{path}: cannot read {what} ({e})") from None
    except json.JSONDecodeError as e:
        raise WhisperforgeError(f"{path}: {what} is not valid JSON ({e.msg})") from None


def read_json_object(path: str | Path, what: str, required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON object with at least the `required` keys, else a WhisperforgeError naming them."""
    obj = read_json(path, what)
    if not isinstance(obj, dict):
        raise WhisperforgeError(f"{path}: {what} must be a JSON object")
    missing = [k for k in required if k not in obj]
    if missing:
        raise WhisperforgeError(f"{path}: {what} lacks {', '.join(missing)}")
    return obj


def json_number(x: Any) -> float | None:
    """A finite float, or None for missing/non-numeric values."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)
