"""Shared start-up of every step script: import path, logging to the rule's log, one-line errors.

Snakemake puts this folder on sys.path for `script:` rules, so each script does
`from _step import run_step` and hands over its `main(snakemake)`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The workflow's own package, importable also inside a `--sdm conda` env that does not install it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# OpenMP threads (CTranslate2, torch) that spin while waiting slow everything down 5-15x when
# jobs share cores, as parallel Snakemake jobs do; sleeping costs nothing measurable alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _redirect_output_to(log_path: str) -> int:
    """Send fds 1 and 2 (Python, tqdm, C++ libraries alike) to the log; return the old stderr."""
    saved = os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    return saved


def run_step(smk: Any, main: Callable[[Any], None]) -> None:
    """Run `main(snakemake)` with logging to `log[0]`; a WhisperforgeError becomes one line."""
    from whisperforge.core.errors import WhisperforgeError

    log_path = str(smk.log[0])
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    saved_stderr = _redirect_output_to(log_path)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    try:
        if Path(".snakemake").is_dir():  # the workflow's folder: this job is alive while it runs
            from whisperforge.core.instances import hold_instance_lock

            hold_instance_lock(Path(".snakemake"))
        if getattr(smk.resources, "gpu", 0):
            from whisperforge.train.gpu import claim_gpu

            claim_gpu(count=int(smk.resources.gpu))
        main(smk)
    except WhisperforgeError as e:
        logging.getLogger(smk.rule).error("%s", e)
        os.write(saved_stderr, f"whisperforge error in rule {smk.rule}: {e}\n".encode())
        sys.exit(1)
