"""Fold a LoRA/AdaLoRA adapter into its base model: a plain HF Whisper dir CTranslate2 can read."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import WhisperForConditionalGeneration, WhisperProcessor

from whisperforge.errors import WhisperforgeError
from whisperforge.files import atomic_dir

log = logging.getLogger(__name__)


def merge_adapter(base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """`merge_and_unload` the adapter onto the base; save weights (safetensors) and processor.

    Built beside `out_dir` and renamed over it: a failure (a full disk is one line) leaves the
    previous merged model, or none.
    """
    from peft import PeftModel

    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise WhisperforgeError(f"{adapter_dir}: no adapter_config.json (not a PEFT adapter)")
    base = WhisperForConditionalGeneration.from_pretrained(base_dir)
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    processor = WhisperProcessor.from_pretrained(base_dir)
    with atomic_dir(out_dir, what="a merged model") as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        processor.tokenizer.save_pretrained(tmp)
        processor.feature_extractor.save_pretrained(tmp)
    log.info("merged %s into %s -> %s", adapter_dir, base_dir, out_dir)
    return out_dir
