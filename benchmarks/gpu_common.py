"""What the GPU day's modules share: the offline set-up, units, row statuses, one-line errors.

Imported before anything else by bench_gpu.py and by gpu_decode.py's child process: it puts the
repository on `sys.path` and turns the Hugging Face hubs offline before transformers or datasets
are imported (the GPU machine has no network).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Offline before transformers or datasets are imported (the GPU machine has no network).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

GiB = 2**30
SAMPLE_RATE = 16_000
SKIPPED, OK = "skipped", "ok"


def one_line(error: BaseException) -> str:
    from whisperforge.core.errors import WhisperforgeError
    from whisperforge.core.errors import one_line as quoted

    return str(error).splitlines()[0] if isinstance(error, WhisperforgeError) else quoted(error)
