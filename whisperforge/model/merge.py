"""Fold a LoRA/AdaLoRA adapter into its base model: a plain HF Whisper dir CTranslate2 can read.

Several LoRA checkpoints of one run can be folded in as their average (icefall's model averaging,
`--avg N`): the mean of their weight updates, which is the mean of the merged models.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from transformers import WhisperForConditionalGeneration, WhisperProcessor

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import atomic_dir

log = logging.getLogger(__name__)


def merged_model(base_dir: Path, adapter_dirs: Sequence[Path]) -> WhisperForConditionalGeneration:
    """The base with the adapter merged in, or with the average of several LoRA adapters."""
    from peft import PeftModel

    for adapter_dir in adapter_dirs:
        config = adapter_dir / "adapter_config.json"
        if not config.is_file():
            raise WhisperforgeError(f"{adapter_dir}: no adapter_config.json (not a PEFT adapter)")
        if len(adapter_dirs) > 1 and json.loads(config.read_text())["peft_type"] != "LORA":
            raise WhisperforgeError(f"{adapter_dir}: only LoRA checkpoints can be averaged")
    names = [f"checkpoint{i}" for i in range(len(adapter_dirs))]
    base = WhisperForConditionalGeneration.from_pretrained(base_dir)
    model = PeftModel.from_pretrained(base, adapter_dirs[0], adapter_name=names[0])
    for name, adapter_dir in zip(names[1:], adapter_dirs[1:], strict=True):
        model.load_adapter(adapter_dir, adapter_name=name)
    if len(names) > 1:
        # "cat" stacks the adapters' ranks, so the result is exactly the mean of the updates
        # B_i A_i ("linear" would average the A and the B matrices apart: not the same).
        weights = [1 / len(names)] * len(names)
        model.add_weighted_adapter(names, weights, "average", combination_type="cat")
        model.set_adapter("average")
        for name in names:
            model.delete_adapter(name)
    return model.merge_and_unload()


def merge_adapter(
    base_dir: str | Path,
    adapter_dir: str | Path | Sequence[str | Path],
    out_dir: str | Path,
) -> Path:
    """`merge_and_unload` the adapter (or the average of several) onto the base; save weights
    (safetensors) and processor.

    Built beside `out_dir` and renamed over it: a failure (a full disk is one line) leaves the
    previous merged model, or none.
    """
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    adapters = [adapter_dir] if isinstance(adapter_dir, str | Path) else adapter_dir
    adapter_dirs = [Path(a) for a in adapters]
    merged = merged_model(base_dir, adapter_dirs)
    processor = WhisperProcessor.from_pretrained(base_dir)
    with atomic_dir(out_dir, what="a merged model") as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        processor.tokenizer.save_pretrained(tmp)
        processor.feature_extractor.save_pretrained(tmp)
    log.info("merged %s into %s -> %s", ", ".join(map(str, adapter_dirs)), base_dir, out_dir)
    return out_dir
