"""Snakemake's directory locks, told live from stale, so that a killed build reruns as it was typed.

Snakemake locks a working directory by writing files under `.snakemake/locks/` and deletes them
on a clean exit. A build that is SIGKILLed (the OOM killer, a SLURM time limit, a power cut)
leaves them, and the same command then stops with "Directory cannot be locked" until someone runs
`snakemake --unlock`, which is also what a person might type while another build is running.

Each whisperforge build, and each of its jobs, holds an OS lock (`filelock`: flock on POSIX,
msvcrt on Windows) on a file of its own under `.snakemake/whisperforge-instances/` for its whole
life; the OS drops it when the process dies, however it dies. A new build takes its own first,
then probes the others'. Snakemake's locks are removed only when it can tell that nothing of
another build is alive: no lock held, none it cannot probe (another account's, another host's:
flock may not cross machines), no job handed to a cluster that may still run, and OS locks that
work on this filesystem at all. Otherwise they stay, and the caller says why.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import uuid
from pathlib import Path

from filelock import FileLock, Timeout

INSTANCES = "whisperforge-instances"
_held: dict[Path, FileLock] = {}  # this process's own instance locks, held until it exits


def _host() -> str:
    return socket.gethostname().replace("-", "_") or "host"


def hold_instance_lock(snakemake_dir: Path) -> Path | None:
    """Register this process (a build or one of its jobs) in `snakemake_dir` for its life.
    Returns its lock file, or None where the filesystem has no working OS locks."""
    instances = snakemake_dir / INSTANCES
    for own in _held:
        if own.parent == instances:
            return own
    own = instances / f"{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
    lock = FileLock(own, mode=0o666, thread_local=False, fallback_to_soft=False)
    try:
        instances.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=5)
    except (OSError, Timeout):
        return None
    _held[own] = lock

    def forget() -> None:  # a clean exit leaves no file; a killed process's is removed later
        with contextlib.suppress(OSError):
            own.unlink()
        lock.release()

    atexit.register(forget)
    return own


def _probe(path: Path) -> str:
    """'alive', 'dead' (its file then removed) or 'unknown' for another process's lock file."""
    if not path.name.startswith(f"{_host()}-"):
        return "unknown"  # another machine's: flock may not reach across to it
    probe = FileLock(path, mode=0o666, thread_local=False, fallback_to_soft=False)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return "alive"
    except OSError:
        return "unknown"  # another account's file, or no OS locks here
    try:
        with contextlib.suppress(OSError):
            path.unlink()  # under its lock: an owner that is just starting takes a new file
    finally:
        probe.release()
    return "dead"


def cluster_jobs(snakemake_dir: Path) -> list[str]:
    """External job ids (SLURM and other executors) of jobs Snakemake marked as started and not
    finished: they may still run after the build that submitted them died."""
    ids = []
    for marker in sorted((snakemake_dir / "incomplete").glob("*")):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            job = json.loads(marker.read_text(encoding="utf-8")).get("external_jobid")
            if job:
                ids.append(str(job))
    return ids


def clear_stale_locks(snakemake_dir: Path) -> tuple[list[Path], str | None]:
    """Register this build; remove Snakemake's locks in `snakemake_dir` when no other build or
    job can be alive there. Returns the lock files removed, and why stale-looking locks were
    kept (None when there was nothing to doubt)."""
    locks = sorted((snakemake_dir / "locks").glob("*.lock"))
    own = hold_instance_lock(snakemake_dir)
    if own is None:
        return [], "OS file locks do not work on this filesystem" if locks else None
    states: dict[str, list[str]] = {"alive": [], "unknown": [], "dead": []}
    for other in sorted((snakemake_dir / INSTANCES).glob("*.lock")):
        if other != own:
            states[_probe(other)].append(other.name)
    if states["alive"] or not locks:
        return [], None  # a live build's locks, or none at all
    if states["unknown"]:
        return [], f"cannot tell whether {', '.join(states['unknown'])} is alive"
    jobs = cluster_jobs(snakemake_dir)
    if jobs:
        return [], f"cluster jobs {', '.join(jobs)} of a killed build may still be running"
    for path in locks:
        path.unlink(missing_ok=True)
    return locks, None
