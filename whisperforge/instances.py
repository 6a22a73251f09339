"""Snakemake's directory locks, told live from stale, so that a killed build reruns as it was typed.

Snakemake locks a working directory by writing files under `.snakemake/locks/` and deletes them
on a clean exit. A build that is SIGKILLed (the OOM killer, a SLURM time limit, a power cut)
leaves them, and the same command then stops with "Directory cannot be locked" until someone runs
`snakemake --unlock`, which is also what a person might type while another build is running.

Each whisperforge build holds an OS lock (`filelock`: flock on POSIX, msvcrt on Windows) on a file
of its own under `.snakemake/whisperforge-instances/` for its whole life; the OS drops it when the
process dies, however it dies. A new build takes its own first, then probes the others': when
none is held, no build is running here, and Snakemake's locks are the leftovers of a killed one.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

_held: dict[Path, FileLock] = {}  # this process's own instance locks, held until it exits


def _is_held_elsewhere(path: Path) -> bool:
    probe = FileLock(path, thread_local=False, fallback_to_soft=False)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def clear_stale_locks(snakemake_dir: Path) -> list[Path]:
    """Register this build, and remove Snakemake's locks in `snakemake_dir` when no other
    whisperforge build is alive there. Returns the lock files removed."""
    instances = snakemake_dir / "whisperforge-instances"
    instances.mkdir(parents=True, exist_ok=True)
    own = instances / f"{os.getpid()}.lock"
    if own not in _held:
        _held[own] = FileLock(own, thread_local=False, fallback_to_soft=False)
        _held[own].acquire(timeout=0)
    alive = False
    for other in instances.glob("*.lock"):
        if other == own:
            continue
        if _is_held_elsewhere(other):
            alive = True
        else:
            other.unlink(missing_ok=True)  # a finished or killed build's
    if alive:
        return []
    stale = sorted((snakemake_dir / "locks").glob("*.lock"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
