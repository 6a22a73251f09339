"""The base model from the hub: one pinned snapshot, fetched once into resources/models/."""

from __future__ import annotations

import logging
from pathlib import Path

from whisperforge.errors import WhisperforgeError

log = logging.getLogger(__name__)

# What a Whisper dir needs for training, merging and the CTranslate2 export, and its model card
# (README.md), whose license the hub folders' cards repeat.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "README.md"]


def fetch_hub_model(repo_id: str, revision: str | None, out_dir: str | Path) -> Path:
    """`snapshot_download` into out_dir. HF_TOKEN is read by huggingface_hub itself."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = snapshot_download(
            repo_id, revision=revision, local_dir=str(out_dir), allow_patterns=ALLOW_PATTERNS
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise WhisperforgeError(
            f"config model.base: cannot fetch {repo_id}@{revision} ({type(e).__name__}); "
            "point model.base at a local directory when offline"
        ) from None
    log.info("fetched %s@%s into %s", repo_id, revision, path)
    return Path(path)
