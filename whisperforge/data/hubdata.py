"""A corpus's hub dataset (`data.corpora.NAME.hf.path`: owner/name), fetched once at a pinned
revision with huggingface_hub into resources/datasets/NAME (a module of its own, so that an edit
to how rows are read re-reads the snapshot without fetching it again)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"


def hub_endpoint() -> str:
    """The hub huggingface_hub talks to: HF_ENDPOINT (a mirror such as https://hf-mirror.com)
    or huggingface.co."""
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def fetch_hub_dataset(corpus: str, hf: Mapping[str, Any], out_dir: str | Path) -> Path:
    """A hub dataset (`hf.path`@`hf.revision`, only `hf.allow_patterns` when given) fetched once
    with huggingface_hub into out_dir. The download lands in a staging folder beside out_dir
    (kept on failure, so that a retry resumes it); HF_ENDPOINT (a mirror) and HF_TOKEN are read
    by huggingface_hub itself."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.fetch")
    try:
        snapshot_download(
            hf["path"],
            repo_type="dataset",
            revision=hf.get("revision"),
            allow_patterns=hf.get("allow_patterns"),
            local_dir=str(staging),
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as e:
        endpoint = hub_endpoint()
        raise WhisperforgeError(
            f"config data.corpora.{corpus}.hf.path: cannot fetch dataset {hf['path']}@"
            f"{hf.get('revision') or 'main'} from {endpoint} ({type(e).__name__}); set "
            "HF_ENDPOINT to a mirror, or point hf.path at a local folder"
        ) from None
    shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
    if out_dir.exists():  # a previous snapshot (another revision): the fresh one replaces it
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    log.info("fetched dataset %s@%s into %s", hf["path"], hf.get("revision"), out_dir)
    return out_dir
