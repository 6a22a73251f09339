"""Fine-tuning is a function of its inputs and settings: same seed, same adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT, record_of, speech_like
from safetensors.torch import load_file

from whisperforge.config import run_settings, validate_config
from whisperforge.manifest import write_jsonl
from whisperforge.tinymodel import build_tiny_whisper
from whisperforge.train import finetune

SENTENCES = ["今天天气很好", "我们明天开会", "经济增长很快", "北京是首都"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("finetune-inputs")
    base = build_tiny_whisper(root / "base", d_model=32, ffn_dim=64)
    records = [
        record_of(root / f"{i}.wav", speech_like(1.0 + 0.3 * i, seed=i), sentence)
        for i, sentence in enumerate(SENTENCES)
    ]
    write_jsonl(root / "train.jsonl", records)
    write_jsonl(root / "dev.jsonl", records[:2])
    return base, root / "train.jsonl", root / "dev.jsonl"


def adapter_after_two_steps(inputs, out: Path, seed: int) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate_config(config, ROOT / "schemas/config.schema.yaml")  # fills the schema's defaults
    settings = run_settings(config, "lora")
    settings.update(
        device="cpu",  # config.yaml asks for a GPU
        seed=seed,
        max_steps=2,
        eval_steps=2,
        save_steps=2,
        logging_steps=1,
        per_device_train_batch_size=2,
        dataloader_num_workers=0,
        lora={**settings["lora"], "r": 4, "alpha": 8},
    )
    base, train, dev = inputs
    finetune(base, train, dev, out / "adapter", out / "checkpoints", settings, threads=1)
    return load_file(out / "adapter/checkpoint-final/adapter_model.safetensors")


def test_same_seed_gives_the_same_adapter_and_another_seed_does_not(inputs, tmp_path):
    first = adapter_after_two_steps(inputs, tmp_path / "a", seed=7)
    again = adapter_after_two_steps(inputs, tmp_path / "b", seed=7)
    other = adapter_after_two_steps(inputs, tmp_path / "c", seed=8)
    assert first.keys() == again.keys() == other.keys()
    # LoRA's A matrices are drawn at random when the adapters are added: from the run's seed.
    assert all((first[k] == again[k]).all() for k in first), "same seed, different adapters"
    assert any((first[k] != other[k]).any() for k in first), "the seed changes nothing"
