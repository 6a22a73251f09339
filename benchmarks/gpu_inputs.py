"""What the GPU day trains and decodes: a synthetic AISHELL-shaped manifest, and config.yaml's
`lora` run settings."""

from __future__ import annotations

import json
import random
import wave
from pathlib import Path
from typing import Any

from gpu_common import ROOT, SAMPLE_RATE

# Common characters for synthetic transcripts (what they say does not matter to random weights;
# their token count does: Whisper's BPE splits some characters into 2-3 tokens).
HANZI = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过"
    "子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制"
    "机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正"
)


def write_wav(path: Path, samples: list[int] | Any) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(samples.tobytes())


def synthetic_manifest(out: Path, n: int, seed: int, prefix: str) -> Path:
    """`n` AISHELL-shaped utterances: 2.5-6.5 s of a tone in noise, 12-18 characters of text."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    lines = []
    for i in range(n):
        seconds = 2.5 + 4.0 * i / max(n - 1, 1)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        audio = 0.2 * np.sin(2 * np.pi * (180 + 20 * i) * t) + 0.02 * rng.standard_normal(t.size)
        wav = out / f"{prefix}{i:04d}.wav"
        write_wav(wav, (audio * 32767).astype(np.int16))
        sentence = "".join(pick.choice(HANZI) for _ in range(pick.randint(12, 18)))
        record = {
            "audio": {"path": str(wav)},
            "sentence": sentence,
            "language": "Chinese",
            "duration": round(seconds, 3),
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    manifest = out / f"{prefix.lower()}.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def run_settings() -> dict[str, Any]:
    """The finetune rule's settings for config.yaml's `lora` run (schema defaults filled)."""
    import yaml

    from whisperforge.core.config import run_settings as settings_of
    from whisperforge.core.config import validate_config

    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    validate_config(config, ROOT / "schemas" / "config.schema.yaml")
    return {**settings_of(config, "lora"), "streaming": config["data"]["streaming"]}
