"""A corpus's hub dataset (`data.corpora.NAME.hf.path`: owner/name), fetched once at a pinned
revision with huggingface_hub into resources/datasets/NAME (a module of its own, so that an edit
to how rows are read re-reads the snapshot without fetching it again)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whisperforge.core.snapshot import download_snapshot, replace_dir

log = logging.getLogger(__name__)


def fetch_hub_dataset(corpus: str, hf: Mapping[str, Any], out_dir: str | Path) -> Path:
    """A hub dataset (`hf.path`@`hf.revision`, only `hf.allow_patterns` when given) fetched once
    into out_dir (core/snapshot.py: staged beside it, so that a retry resumes)."""
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.fetch")
    download_snapshot(
        hf["path"],
        hf.get("revision"),
        staging,
        key=f"data.corpora.{corpus}.hf.path",
        hint="set HF_ENDPOINT to a mirror, or point hf.path at a local folder",
        repo_type="dataset",
        allow_patterns=hf.get("allow_patterns"),
    )
    replace_dir(staging, out_dir)
    log.info("fetched dataset %s@%s into %s", hf["path"], hf.get("revision"), out_dir)
    return out_dir
