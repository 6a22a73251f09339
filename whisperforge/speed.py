"""Time transformers `generate` against faster-whisper on the CTranslate2 export.

Both decode the same first utterances of a manifest, one at a time (no batching), with the same
beam, language and task, after one untimed warm-up decode each. Texts are compared too: the two
front ends pad the log-mel of clips shorter than 30 s differently (transformers pads the audio,
faster-whisper the features), so a few hypotheses may differ even for the same weights.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from whisperforge.audio import SAMPLE_RATE
from whisperforge.errors import WhisperforgeError, one_line
from whisperforge.manifest import read_manifest
from whisperforge.transcribe import (
    DecodeOptions,
    decode_one,
    load_audio,
    load_model,
    pick_device_and_compute_type,
)

log = logging.getLogger(__name__)


def _load_hf(hf_dir: Path, threads: int):
    """(model, feature extractor, tokenizer, device, dtype) for a plain HF Whisper dir."""
    import torch
    from transformers import (
        AutoTokenizer,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    try:
        model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=dtype)
        extractor = WhisperFeatureExtractor.from_pretrained(hf_dir)
        tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    except (OSError, ValueError) as e:
        raise WhisperforgeError(f"{hf_dir}: transformers cannot load it ({one_line(e)})") from e
    model.to(device).eval()
    return model, extractor, tokenizer, device, dtype


def _time_hf(hf_dir: Path, audios: list, language: str, beam_size: int, threads: int):
    """Decode with transformers generate; returns (texts, seconds, device, dtype)."""
    import torch

    model, extractor, tokenizer, device, dtype = _load_hf(hf_dir, threads)

    def decode(audio) -> str:
        features = extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            ids = model.generate(
                features.to(device, dtype),
                num_beams=beam_size,
                language=language,
                task="transcribe",
            )
        return tokenizer.decode(ids[0], skip_special_tokens=True).strip()

    decode(audios[0])  # warm-up
    t0 = time.perf_counter()
    texts = [decode(a) for a in audios]
    seconds = time.perf_counter() - t0  # decode() ends in a device-to-host copy: synchronised
    return texts, seconds, device, dtype


def measure_speed(
    hf_dir: str | Path,
    ct2_dir: str | Path,
    manifest: str | Path,
    options: DecodeOptions,
    *,
    n_utterances: int,
    threads: int = 2,
    device: str = "auto",
) -> dict[str, Any]:
    """Decode the first `n_utterances` with both back ends; return timings and the speedup.

    Both decode with `options`' language and beam size (task: transcribe, no batching or VAD); the
    CTranslate2 side with its compute type.
    """
    language, beam_size = options.language, options.beam_size
    # train.device: cuda without one stops here
    pick_device_and_compute_type(options.compute_type, device)
    hf_dir = Path(hf_dir)
    records = read_manifest(manifest)[:n_utterances]
    if not records:
        raise WhisperforgeError(f"{manifest}: manifest has no utterances to time")
    audios = [load_audio(r["audio"]["path"], manifest) for r in records]
    audio_s = sum(len(a) for a in audios) / SAMPLE_RATE
    if audio_s <= 0:
        raise WhisperforgeError(f"{manifest}: the first {len(audios)} utterances have no audio")

    hf_texts, hf_s, hf_device, dtype = _time_hf(hf_dir, audios, language, beam_size, threads)

    ct2, ct2_device, ctype = load_model(ct2_dir, options.compute_type, threads, device=device)
    opts = {"language": language, "task": "transcribe", "beam_size": beam_size}
    decode_one(ct2, audios[0], **opts)  # warm-up
    t0 = time.perf_counter()
    ct2_texts = [decode_one(ct2, a, **opts) for a in audios]
    ct2_s = time.perf_counter() - t0

    result = {
        "utterances": len(records),
        "audio_s": round(audio_s, 3),
        "beam_size": beam_size,
        "hf": {
            "seconds": round(hf_s, 3),
            "rtf": round(hf_s / audio_s, 4),
            "device": hf_device,
            "dtype": str(dtype).removeprefix("torch."),
        },
        "ct2": {
            "seconds": round(ct2_s, 3),
            "rtf": round(ct2_s / audio_s, 4),
            "device": ct2_device,
            "compute_type": ctype,
        },
        "speedup": round(hf_s / ct2_s, 3) if ct2_s > 0 else None,
        "hf_texts_equal_ct2": sum(a == b for a, b in zip(hf_texts, ct2_texts, strict=True)),
    }
    log.info("speed %s vs %s: %s", hf_dir, ct2_dir, result)
    return result
