"""Devices of GPU jobs: which GPUs a job gets, and whether (and in what precision) it may train.

Snakemake's `gpu` resource is only a counter: with `--resources gpu=2`, two training jobs would
both land on device 0. Each job claims as many free devices as its `gpu` resource says, with
exclusive lock files held for its lifetime, and sets CUDA_VISIBLE_DEVICES before CUDA is
initialized. A device list chosen by someone else (SLURM, the user) is left alone.

The locks are `filelock`'s OS locks (flock on POSIX, msvcrt on Windows): the OS drops them when
the process dies, however it dies, so a killed job never leaves a device claimed.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from whisperforge.core.errors import WhisperforgeError

log = logging.getLogger(__name__)

LOCK_DIR = Path(
    os.environ.get(
        "WHISPERFORGE_GPU_LOCKS", str(Path(tempfile.gettempdir()) / "whisperforge-gpu-locks")
    )
)
_held: list[FileLock] = []  # acquired locks: held until the process exits


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


def claim_gpu(
    n_devices: int | None = None, lock_dir: Path = LOCK_DIR, *, count: int = 1
) -> str | None:
    """Lock `count` free device indices and export them as CUDA_VISIBLE_DEVICES (or None).

    A job that cannot get `count` free devices takes the lowest busy ones too, with a warning:
    sharing is slow, but stopping a queued run would be worse.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        log.info("CUDA_VISIBLE_DEVICES=%s set by the caller", os.environ["CUDA_VISIBLE_DEVICES"])
        return os.environ["CUDA_VISIBLE_DEVICES"]
    n_devices = visible_gpu_count() if n_devices is None else n_devices
    if n_devices == 0:
        return None
    lock_dir.mkdir(parents=True, exist_ok=True)
    claimed: list[int] = []
    for index in range(n_devices):
        if len(claimed) == count:
            break
        # thread_local=False: the claim is the process's, not one thread's. No fallback to a
        # "soft" lock (a file that exists), which a killed process would leave claimed forever.
        lock = FileLock(lock_dir / f"gpu{index}.lock", thread_local=False, fallback_to_soft=False)
        try:
            lock.acquire(timeout=0)  # non-blocking: a busy device is skipped, not waited for
        except Timeout:
            continue
        _held.append(lock)
        claimed.append(index)
    if len(claimed) < count:
        busy = [i for i in range(n_devices) if i not in claimed][: count - len(claimed)]
        log.warning("only %d of %d GPUs free; sharing %s", len(claimed), count, busy)
        claimed = sorted(claimed + busy)
    devices = ",".join(map(str, claimed))
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    log.info("claimed GPU(s) %s of %d (CUDA_VISIBLE_DEVICES=%s)", devices, n_devices, devices)
    return devices


# A model this small trains in minutes on a CPU (the demo's is 5.7 M parameters); anything bigger
# is a real Whisper (tiny is 39 M, turbo 809 M) and belongs on a GPU unless the user says so.
CPU_OK_PARAMETERS = 30_000_000


def parameter_count(model_dir: Path) -> int:
    """Parameters in a HF model directory, from its safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for weights in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(weights, "pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                total += math.prod(f.get_slice(name).get_shape())
    return total


def pick_device(setting: str, model_dir: Path, *, cuda_available: bool) -> str:
    """`train.device` -> "cuda" or "cpu"; a real model never falls back to the CPU silently."""
    if setting == "cpu":
        return "cpu"
    if cuda_available:
        return "cuda"
    hint = "no CUDA device is visible; set train.device: cpu to train on the CPU anyway"
    if setting == "cuda":
        raise WhisperforgeError(f"config train.device: cuda: {hint}")
    n_params = parameter_count(model_dir)
    if n_params > CPU_OK_PARAMETERS:
        raise WhisperforgeError(
            f"config train.device: auto: {model_dir} has {n_params / 1e6:.0f} M parameters "
            f"and {hint}"
        )
    return "cpu"


def pick_precision(
    precision: str, fp16: bool | str | None, device: str, *, bf16_supported: bool
) -> str:
    """`train.precision` (or the older `train.fp16`) -> "fp32", "fp16" or "bf16"."""
    if fp16 is True:
        if precision not in ("auto", "fp16"):
            raise WhisperforgeError(
                f"config train.fp16: true contradicts train.precision: {precision}; drop train.fp16"
            )
        precision = "fp16"
    elif fp16 is False and precision == "auto":
        precision = "fp32"
    if precision == "auto":
        if device == "cpu":
            return "fp32"
        return "bf16" if bf16_supported else "fp16"
    if precision == "fp16" and device == "cpu":
        raise WhisperforgeError(
            "config train.precision: fp16 needs a CUDA device (train.fp16: true too); "
            "use auto, bf16 or fp32 on the CPU"
        )
    if precision == "bf16" and device == "cuda" and not bf16_supported:
        raise WhisperforgeError(
            "config train.precision: bf16 is not supported by this GPU (e.g. Turing, RTX 20xx); "
            "use fp16 or auto"
        )
    return precision
