"""Merging: the adapter folded into the base gives the PEFT model's outputs, as a plain HF dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import WhisperForConditionalGeneration

from whisperforge.errors import WhisperforgeError
from whisperforge.merge import merge_adapter
from whisperforge.tinymodel import build_tiny_whisper


def test_the_merged_model_computes_what_base_plus_adapter_computes(tmp_path: Path):
    base_dir = build_tiny_whisper(tmp_path / "base", d_model=32, ffn_dim=64)
    torch.manual_seed(0)
    peft = get_peft_model(
        WhisperForConditionalGeneration.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"]),
    )
    for name, param in peft.named_parameters():
        if "lora_B" in name:  # B starts at zero: give the adapter something to fold in
            torch.nn.init.normal_(param, std=0.5)
    peft.save_pretrained(tmp_path / "adapter")

    merged_dir = merge_adapter(base_dir, tmp_path / "adapter", tmp_path / "merged")
    assert not (merged_dir / "adapter_config.json").exists()
    for name in ("model.safetensors", "tokenizer.json", "preprocessor_config.json"):
        assert (merged_dir / name).is_file(), name

    features = torch.randn(1, 80, 3000)
    decoder_input_ids = torch.tensor([[50258, 50260, 50360, 50364]])
    adapted = PeftModel.from_pretrained(
        WhisperForConditionalGeneration.from_pretrained(base_dir), tmp_path / "adapter"
    ).eval()
    merged = WhisperForConditionalGeneration.from_pretrained(merged_dir).eval()
    base = WhisperForConditionalGeneration.from_pretrained(base_dir).eval()
    with torch.no_grad():
        want = adapted(input_features=features, decoder_input_ids=decoder_input_ids).logits
        got = merged(input_features=features, decoder_input_ids=decoder_input_ids).logits
        before = base(input_features=features, decoder_input_ids=decoder_input_ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(before, want, atol=1e-3), "the adapter changed nothing"


def test_a_dir_without_an_adapter_says_so_and_writes_nothing(tmp_path: Path):
    base_dir = build_tiny_whisper(tmp_path / "base", d_model=32, ffn_dim=64)
    with pytest.raises(WhisperforgeError, match=r"no adapter_config\.json"):
        merge_adapter(base_dir, base_dir, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
