"""The base model from the hub: one pinned snapshot, fetched once into resources/models/.

A faster-whisper (CTranslate2) repository is imported into a transformers folder at the same
path (ct2import.py), so every later step reads one kind of folder.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from whisperforge.core.basemodel import is_ct2_model_dir
from whisperforge.core.snapshot import download_snapshot, replace_dir
from whisperforge.model.ct2import import import_ct2_model

log = logging.getLogger(__name__)

# What a Whisper dir needs for training, merging and the CTranslate2 export, and its model card
# (README.md), whose license the hub folders' cards repeat; model.bin and vocabulary.* are a
# faster-whisper repository's weights and vocabulary.
ALLOW_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "*.tiktoken",
    "README.md",
    "model.bin",
    "vocabulary.*",
]


def fetch_hub_model(repo_id: str, revision: str | None, out_dir: str | Path) -> Path:
    """Fetch `repo_id`@`revision` into out_dir, importing a CTranslate2 model into transformers.

    The snapshot lands in a staging folder beside out_dir first (kept on failure, so a retry
    resumes the download), then becomes out_dir or is imported into it.
    """
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.fetch")
    download_snapshot(
        repo_id,
        revision,
        staging,
        key="model.base",
        hint="point model.base at a local directory when offline",
        allow_patterns=ALLOW_PATTERNS,
    )
    if is_ct2_model_dir(staging):
        import_ct2_model(staging, out_dir)
        shutil.rmtree(staging)
    else:
        replace_dir(staging, out_dir)
    log.info("fetched %s@%s into %s", repo_id, revision, out_dir)
    return out_dir
