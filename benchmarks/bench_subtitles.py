"""Subtitling speed: real-time factor of `write_subtitles` on a long recording, int8 vs float32.

    python benchmarks/bench_subtitles.py [--minutes 10] [--sizes small]
        [--demo-ct2 results/models/demo-lora/ct2-float16] [--compute-types int8,float32]
        [--beam 5] [--threads N] [--archive demo/data_aishell.tgz]

    e.g. the full measurement, on an otherwise idle machine:
    python benchmarks/bench_subtitles.py --sizes tiny,small \
        --demo-ct2 results/models/demo-lora/ct2-float16

Builds a recording of `--minutes` minutes from the demo archive's utterances (extracted with
whisperforge's own `extract_archive`, cycled as often as needed) joined with 1-3 s silences, then
times `whisperforge.subtitles.cues.write_subtitles` on it (the workflow's own path: model load,
audio decode, Silero VAD, clip decoding, cue splitting, .srt/.vtt/.txt) once per model and
compute type, on CPU, and prints seconds, real-time factor (seconds / audio seconds), cues,
tokens and characters written, and the speedup against float32 from the same run.

Models:
  demo:   the CTranslate2 export given by `--demo-ct2` (skipped without it), loaded with each
          compute type (CTranslate2 converts a float16 export's weights at load time)
  <size>: for each of `--sizes` (published Whisper shapes: tiny, base, small, medium,
          large-v3, large-v3-turbo), a randomly initialised Whisper of that shape built with
          `build_tiny_whisper` (large-v3's vocabulary), exported once per compute type
          with that quantization (int8, float32); random weights are enough for speed

Random weights write garbage and end it only by chance, so a clip usually decodes up to the
workflow's token cap (`subtitles.MAX_TOKENS_PER_S` tokens a second of the longest clip): the
worst case, not a trained model's speed.
The tokens column (tokens of the final beam, all clips) shows how much work each row did and
max/clip shows the cap reached; random text is long BPE pieces, so compare tokens, not
characters.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import whisperforge.decode.transcribe as transcribe_module
from whisperforge.core.config import section_defaults
from whisperforge.core.options import SubtitleOptions
from whisperforge.data.aishell import extract_archive, read_wav_index
from whisperforge.data.media import decode_recording
from whisperforge.subtitles.cues import speech_clips, write_subtitles

RATE = 16000
ROOT = Path(__file__).resolve().parent.parent
# The subtitles step's own settings: config.yaml's defaults, from the schema.
OPTIONS = SubtitleOptions.from_config(
    section_defaults(ROOT / "schemas/config.schema.yaml", "subtitles")
)
# Published Whisper shapes (openai/whisper model cards): build_tiny_whisper's keyword arguments.
PUBLISHED_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=384, encoder_layers=4, decoder_layers=4, attention_heads=6, ffn_dim=1536),
    "base": dict(d_model=512, encoder_layers=6, decoder_layers=6, attention_heads=8, ffn_dim=2048),
    "small": dict(
        d_model=768, encoder_layers=12, decoder_layers=12, attention_heads=12, ffn_dim=3072
    ),
    "medium": dict(
        d_model=1024, encoder_layers=24, decoder_layers=24, attention_heads=16, ffn_dim=4096
    ),
    "large-v3": dict(
        d_model=1280,
        encoder_layers=32,
        decoder_layers=32,
        attention_heads=20,
        ffn_dim=5120,
        num_mel_bins=128,
    ),
    "large-v3-turbo": dict(
        d_model=1280,
        encoder_layers=32,
        decoder_layers=4,
        attention_heads=20,
        ffn_dim=5120,
        num_mel_bins=128,
    ),
}


# --- inputs -------------------------------------------------------------------------------------


def demo_wavs(archive: Path, work: Path, threads: int) -> list[Path]:
    """Every wav of the (demo) AISHELL archive, extracted under `work`, in utterance order."""
    extract_archive(
        archive, work / "wav", work / "transcript.txt", work / "wavs.tsv", threads=threads
    )
    return [Path(e.path) for e in read_wav_index(work / "wavs.tsv")]


def make_recording(wavs: list[Path], out: Path, minutes: float, seed: int = 0) -> tuple[float, int]:
    """Join `wavs` (cycled) with 1-3 s silences until `minutes` long; write `out` (PCM 16).

    Returns (seconds of audio, utterances used).
    """
    rng = np.random.default_rng(seed)
    parts = [np.zeros(RATE, np.float32)]
    samples, used = RATE, 0
    while samples < minutes * 60 * RATE:
        audio, rate = sf.read(wavs[used % len(wavs)], dtype="float32")
        if rate != RATE or audio.ndim != 1:
            raise SystemExit(f"{wavs[used % len(wavs)]}: not 16 kHz mono")
        gap = np.zeros(round(rng.uniform(1.0, 3.0) * RATE), np.float32)
        parts += [audio, gap]
        samples += len(audio) + len(gap)
        used += 1
    sf.write(out, np.concatenate(parts), RATE, subtype="PCM_16")
    return samples / RATE, used


def random_exports(size: str, work: Path, quantizations: list[str]) -> dict[str, Path]:
    """A random-weight Whisper of a published `size`, exported once per quantization."""
    from ctranslate2.converters import TransformersConverter
    from transformers.utils import logging as hf_logging

    from whisperforge.model.export import COPY_FILES
    from whisperforge.model.tinymodel import build_tiny_whisper

    hf_logging.disable_progress_bar()

    hf = build_tiny_whisper(work / f"{size}-hf", **PUBLISHED_SIZES[size])
    exports = {}
    for quantization in quantizations:
        out = work / f"{size}-ct2-{quantization}"
        TransformersConverter(str(hf), copy_files=list(COPY_FILES)).convert(
            str(out), quantization=quantization
        )
        exports[quantization] = out
    return exports


# --- timing -------------------------------------------------------------------------------------


class CountingModel:
    """A faster-whisper model that forwards everything and counts the tokens it decoded."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.tokens = 0
        self.max_tokens = 0  # in one segment (one clip)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def transcribe(self, *args: Any, **kwargs: Any) -> tuple[Iterator[Any], Any]:
        segments, info = self._model.transcribe(*args, **kwargs)
        return self._count(segments), info

    def _count(self, segments: Iterator[Any]) -> Iterator[Any]:
        for segment in segments:
            self.tokens += len(segment.tokens)
            self.max_tokens = max(self.max_tokens, len(segment.tokens))
            yield segment


@contextlib.contextmanager
def counting_models() -> Iterator[list[CountingModel]]:
    """While active, `load_model` (as write_subtitles calls it) returns counting models."""
    real = transcribe_module.load_model
    loaded: list[CountingModel] = []

    def load_model(*args: Any, **kwargs: Any) -> tuple[CountingModel, str, str]:
        model, device, compute_type = real(*args, **kwargs)
        loaded.append(CountingModel(model))
        return loaded[-1], device, compute_type

    transcribe_module.load_model = load_model
    try:
        yield loaded
    finally:
        transcribe_module.load_model = real


def time_subtitles(
    ct2_dir: Path, recording: Path, out: Path, compute_type: str, beam: int, threads: int
) -> dict[str, Any]:
    """Wall time of one `write_subtitles` call, with cues, tokens and characters written."""
    out.mkdir(parents=True)
    files = [out / f"{recording.stem}.{ext}" for ext in ("srt", "vtt", "txt")]
    with counting_models() as loaded:
        start = time.perf_counter()
        options = replace(OPTIONS, beam_size=beam)
        facts = write_subtitles(
            ct2_dir, recording, *files, options, compute_type=compute_type, threads=threads
        )
        seconds = time.perf_counter() - start
    text = files[2].read_text(encoding="utf-8")
    return {
        "seconds": seconds,
        "cues": facts["cues"],
        "tokens": loaded[0].tokens,
        "max_tokens": loaded[0].max_tokens,
        "chars": sum(not c.isspace() for c in text),
        "compute_type": facts["compute_type"],
    }


def vad_clips(recording: Path) -> tuple[list[tuple[float, float]], float]:
    """The speech clips write_subtitles decodes, and the seconds the VAD took to find them."""
    audio = decode_recording(recording)
    start = time.perf_counter()
    clips = speech_clips(audio, OPTIONS)
    return clips, time.perf_counter() - start


# --- report -------------------------------------------------------------------------------------


def print_rows(rows: dict[tuple[str, str], dict[str, Any]], audio_s: float) -> None:
    print(
        f"{'model':16s} {'compute':8s} {'seconds':>8s} {'RTF':>6s} {'cues':>5s} "
        f"{'tokens':>7s} {'max/clip':>8s} {'chars':>6s}  vs float32"
    )
    for (model, compute_type), r in rows.items():
        base = rows.get((model, "float32"))
        ratio = f"{base['seconds'] / r['seconds']:5.2f}x" if base else "    -"
        print(
            f"{model:16s} {compute_type:8s} {r['seconds']:8.1f} {r['seconds'] / audio_s:6.3f} "
            f"{r['cues']:5d} {r['tokens']:7d} {r['max_tokens']:8d} {r['chars']:6d}  {ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sizes", default="small", help="comma-separated; '' for none")
    parser.add_argument("--demo-ct2", type=Path, help="the demo model's CTranslate2 export")
    parser.add_argument("--compute-types", default="int8,float32")
    parser.add_argument("--beam", type=int, default=OPTIONS.beam_size)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--archive", type=Path, default=ROOT / "demo/data_aishell.tgz")
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    compute_types = [c for c in args.compute_types.split(",") if c]
    unknown = set(sizes) - set(PUBLISHED_SIZES)
    if unknown:
        parser.error(f"unknown --sizes {sorted(unknown)}; known: {', '.join(PUBLISHED_SIZES)}")

    with tempfile.TemporaryDirectory(prefix="bench-subtitles-") as tmp:
        work = Path(tmp)
        recording = work / "recording.wav"
        wavs = demo_wavs(args.archive, work / "demo", args.threads)
        audio_s, used = make_recording(wavs, recording, args.minutes)
        clips, vad_s = vad_clips(recording)
        print(
            f"recording: {audio_s:.0f} s ({audio_s / 60:.1f} min), {used} utterances "
            f"({len(wavs)} distinct) with 1-3 s silences; VAD: {len(clips)} speech clips in "
            f"{vad_s:.1f} s\n"
            f"beam {args.beam}, {args.threads} threads, {os.cpu_count()} cores, "
            f"{platform.processor() or platform.machine()}, python {platform.python_version()}"
        )
        models: dict[str, dict[str, Path]] = {}
        if args.demo_ct2:
            models["demo"] = dict.fromkeys(compute_types, args.demo_ct2)
        for size in sizes:
            start = time.perf_counter()
            models[size] = random_exports(size, work / "models", compute_types)
            print(f"built and exported random {size}: {time.perf_counter() - start:.0f} s")

        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for name, exports in models.items():
            for compute_type, ct2_dir in exports.items():
                out = work / "out" / f"{name}-{compute_type}"
                rows[name, compute_type] = time_subtitles(
                    ct2_dir, recording, out, compute_type, args.beam, args.threads
                )
        print_rows(rows, audio_s)
        if sizes:
            print(
                f"random-weight rows ({', '.join(sizes)}): garbage text that ends only by "
                f"chance, so most of the {len(clips)} clips run to the token cap (max/clip): a "
                "worst case, not a trained model's speed; compare work by tokens, not chars"
            )


if __name__ == "__main__":
    main()
