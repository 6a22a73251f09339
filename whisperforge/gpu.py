"""One GPU per GPU job. Snakemake's `gpu` resource is only a counter: with `--resources gpu=2`,
two training jobs would both land on device 0. Each job claims a free device with an exclusive
lock file held for its lifetime, and sets CUDA_VISIBLE_DEVICES before CUDA is initialized.
A device list chosen by someone else (SLURM, the user) is left alone.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

LOCK_DIR = Path(os.environ.get("WHISPERFORGE_GPU_LOCKS", "/tmp/whisperforge-gpu-locks"))
_held: list[IO[str]] = []  # open lock files: released when the process exits


def visible_gpu_count() -> int:
    """How many NVIDIA GPUs the machine has, without initializing CUDA in this process."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def claim_gpu(n_devices: int | None = None, lock_dir: Path = LOCK_DIR) -> str | None:
    """Lock a free device index and export it as CUDA_VISIBLE_DEVICES; returns it (or None)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        log.info("CUDA_VISIBLE_DEVICES=%s set by the caller", os.environ["CUDA_VISIBLE_DEVICES"])
        return os.environ["CUDA_VISIBLE_DEVICES"]
    n_devices = visible_gpu_count() if n_devices is None else n_devices
    if n_devices == 0:
        return None
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(n_devices):
        handle = open(lock_dir / f"gpu{index}.lock", "w")  # noqa: SIM115 (held until exit)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
        log.info("claimed GPU %d of %d (CUDA_VISIBLE_DEVICES=%d)", index, n_devices, index)
        return str(index)
    log.warning("all %d GPUs are claimed by other jobs; sharing device 0", n_devices)
    os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    return "0"
