"""Merging: the adapter folded into the base gives the PEFT model's outputs, as a plain HF dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import WhisperForConditionalGeneration

from whisperforge.core.errors import WhisperforgeError
from whisperforge.model.merge import merge_adapter
from whisperforge.model.tinymodel import build_tiny_whisper


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


def random_adapter(base_dir: Path, out: Path, seed: int, r: int = 4) -> Path:
    torch.manual_seed(seed)
    peft = get_peft_model(
        WhisperForConditionalGeneration.from_pretrained(base_dir),
        LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj", "fc1"]),
    )
    for name, param in peft.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.3)
    peft.save_pretrained(out)
    return out


def test_averaged_checkpoints_merge_to_the_mean_of_their_merged_models(tmp_path: Path):
    base_dir = build_tiny_whisper(tmp_path / "base", d_model=32, ffn_dim=64)
    adapters = [random_adapter(base_dir, tmp_path / f"ckpt{i}", seed=i) for i in range(3)]
    singles = [merge_adapter(base_dir, a, tmp_path / f"merged{i}") for i, a in enumerate(adapters)]
    averaged = merge_adapter(base_dir, adapters, tmp_path / "averaged")

    def weights(model_dir: Path) -> dict[str, torch.Tensor]:
        return WhisperForConditionalGeneration.from_pretrained(model_dir).state_dict()

    got, each = weights(averaged), [weights(d) for d in singles]
    changed = 0
    for name, tensor in got.items():
        mean = sum(w[name] for w in each) / len(each)
        assert torch.allclose(tensor, mean, atol=1e-5), name
        changed += not torch.allclose(each[0][name], each[1][name])
    assert changed >= 3 * 2, "the adapters did not differ: the test would prove nothing"


def test_only_lora_checkpoints_are_averaged(tmp_path: Path):
    base_dir = build_tiny_whisper(tmp_path / "base", d_model=32, ffn_dim=64)
    adapters = [random_adapter(base_dir, tmp_path / f"ckpt{i}", seed=i) for i in range(2)]
    config = adapters[1] / "adapter_config.json"
    config.write_text(config.read_text().replace('"LORA"', '"ADALORA"'))
    with pytest.raises(WhisperforgeError, match=r"ckpt1: only LoRA checkpoints can be averaged"):
        merge_adapter(base_dir, adapters, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
