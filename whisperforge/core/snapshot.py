"""A pinned hub snapshot (a base model or a corpus's dataset), fetched once with huggingface_hub.

The download lands in a staging folder beside its destination, kept on failure so that a retry
resumes it; the caller then moves or imports it into place. HF_ENDPOINT (a mirror such as
https://hf-mirror.com) and HF_TOKEN are read by huggingface_hub itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from whisperforge.core.errors import WhisperforgeError

DEFAULT_ENDPOINT = "https://huggingface.co"


def hub_endpoint() -> str:
    """The hub huggingface_hub talks to: HF_ENDPOINT (a mirror) or huggingface.co."""
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def download_snapshot(
    repo_id: str,
    revision: str | None,
    staging: Path,
    *,
    key: str,
    hint: str,
    repo_type: str = "model",
    allow_patterns: Sequence[str] | None = None,
) -> None:
    """`repo_id`@`revision` into `staging`; a failure is one line naming the config `key`, the
    endpoint asked and what to do (`hint`)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            allow_patterns=allow_patterns,
            local_dir=str(staging),
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        what = "dataset " if repo_type == "dataset" else ""
        raise WhisperforgeError(
            f"config {key}: cannot fetch {what}{repo_id}@{revision or 'main'} from "
            f"{hub_endpoint()} ({type(e).__name__}); {hint}"
        ) from None
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping


def replace_dir(staging: Path, out_dir: Path) -> None:
    """The staged snapshot becomes out_dir; a previous one (another pin) goes."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
