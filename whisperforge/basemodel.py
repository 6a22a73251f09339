"""The base model: `model.base` resolved once (what it names, where its transformers folder is),
and a hub model fetched as one pinned snapshot into resources/models/.

A faster-whisper (CTranslate2) folder or repository is imported into a transformers folder
(whisperforge/ct2import.py), so every later step reads one kind of folder. Only torch-free
modules at the top: the Snakefile resolves the base while it plans.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from whisperforge.ct2import import import_ct2_model, is_ct2_model_dir
from whisperforge.errors import WhisperforgeError

log = logging.getLogger(__name__)

IMPORTED_DIR = "results/models/base/hf"  # the tiny base's pretraining, or a CT2 folder's import


@dataclass(frozen=True)
class BaseModel:
    """What `model.base` names: the demo's `tiny` model (built in the DAG), a local transformers
    folder, a local CTranslate2 folder (imported in the DAG), or a hub id (fetched, pinned)."""

    name: str  # as configured
    kind: Literal["tiny", "local", "ct2", "hub"]
    revision: str | None = None

    @property
    def path(self) -> Path:
        """A local folder as the rules name it (relative to the workflow's folder, ~ expanded)."""
        return Path(self.name).expanduser()

    @property
    def hub_dir(self) -> str:
        """Where a hub model's snapshot is fetched (and, for a CTranslate2 one, imported)."""
        slug = re.sub(r"[^\w.-]+", "--", self.name)
        return f"resources/models/{slug}@{self.revision or 'main'}"

    @property
    def hf_dir(self) -> str:
        """The transformers folder every later step reads."""
        if self.kind in ("tiny", "ct2"):
            return IMPORTED_DIR
        return str(self.path) if self.kind == "local" else self.hub_dir

    @property
    def hub_id(self) -> str | None:
        return self.name if self.kind == "hub" else None


def looks_like_path(base: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else (absolute, ./, ~, deeper) is a path."""
    return base.startswith(("/", ".", "~")) or base.count("/") > 1


def resolve_base(base: str, revision: str | None = None, workdir: Path = Path(".")) -> BaseModel:
    """Decide once what `model.base` is: a path-like name, or one that exists in `workdir`, is a
    local folder; anything else is a hub id. Nothing is checked here (config.check_base_model
    and doctor say what is wrong with a folder)."""
    if base == "tiny":
        return BaseModel(base, "tiny")
    path = workdir / Path(base).expanduser()
    if looks_like_path(base) or path.exists():
        return BaseModel(base, "ct2" if is_ct2_model_dir(path) else "local")
    return BaseModel(base, "hub", revision)


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


def _download(repo_id: str, revision: str | None, local_dir: Path) -> None:
    """`snapshot_download` into local_dir. HF_TOKEN is read by huggingface_hub itself."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        snapshot_download(
            repo_id, revision=revision, local_dir=str(local_dir), allow_patterns=ALLOW_PATTERNS
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        raise WhisperforgeError(
            f"config model.base: cannot fetch {repo_id}@{revision} ({type(e).__name__}); "
            "point model.base at a local directory when offline"
        ) from None


def fetch_hub_model(repo_id: str, revision: str | None, out_dir: str | Path) -> Path:
    """Fetch `repo_id`@`revision` into out_dir, importing a CTranslate2 model into transformers.

    The snapshot lands in a staging folder beside out_dir first (kept on failure, so a retry
    resumes the download), then becomes out_dir or is imported into it.
    """
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.fetch")
    _download(repo_id, revision, staging)
    if is_ct2_model_dir(staging):
        import_ct2_model(staging, out_dir)
        shutil.rmtree(staging)
    else:
        if out_dir.exists():  # a previous snapshot of this pin: the fresh one replaces it
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    log.info("fetched %s@%s into %s", repo_id, revision, out_dir)
    return out_dir
