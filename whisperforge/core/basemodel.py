"""The base model: `model.base` resolved once, what it names and where its transformers folder is.

A faster-whisper (CTranslate2) folder is imported into a transformers folder in the DAG
(ct2import.py), so every later step reads one kind of folder. The Snakefile resolves the base
while it plans: standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from whisperforge.core.hubid import is_hub_id

MODEL_FILE = "model.bin"  # a CTranslate2 model's weights
CONFIG_FILE = "config.json"
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
    return not is_hub_id(base)


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


def is_ct2_model_dir(path: str | Path) -> bool:
    """Whether `path` is a CTranslate2 model folder: a model.bin and no transformers config.

    A transformers config.json names its `model_type`; CTranslate2's (suppress_ids, lang_ids,
    ...) does not. An unreadable config.json still counts, so the import names what is wrong.
    """
    path = Path(path).expanduser()
    if not (path / MODEL_FILE).is_file():
        return False
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not (isinstance(config, dict) and "model_type" in config)
