"""Fold a LoRA/AdaLoRA adapter into its base model: a plain HF Whisper dir CTranslate2 can read."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from transformers import WhisperForConditionalGeneration, WhisperProcessor

from whisperforge.errors import WhisperforgeError

log = logging.getLogger(__name__)


def merge_adapter(base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """`merge_and_unload` the adapter onto the base; save weights (safetensors) and processor."""
    from peft import PeftModel

    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise WhisperforgeError(f"{adapter_dir}: no adapter_config.json (not a PEFT adapter)")
    base = WhisperForConditionalGeneration.from_pretrained(base_dir)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    processor = WhisperProcessor.from_pretrained(base_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        processor.tokenizer.save_pretrained(tmp)
        processor.feature_extractor.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("merged %s into %s -> %s", adapter_dir, base_dir, out_dir)
    return out_dir
