"""Inference: CTranslate2 export (faster-whisper) vs the merged model in transformers `generate`.

    python benchmarks/bench_inference.py [--run lora] [--utterances 14] [--beam 5]
    python benchmarks/bench_inference.py --random-size small [--new-tokens 100] [--utterances 14]

Run it after the workflow (the demo or the real run): it reads `results/models/<run>/merged`,
exports int8 and float32 copies next to the float16 one in a temp dir, decodes the same test
utterances with the same beam through each, and prints seconds, real-time factor, CER and the
speedup against transformers from the same run on the same machine.

The demo model is tiny (d_model 96, 2+2 layers), so per-call overhead dominates there. With
`--random-size SIZE` (tiny, base, small, medium, large-v3, large-v3-turbo) the "merged" model is
instead a randomly initialised Whisper of that published shape (`build_tiny_whisper`, offline),
so the ratio is measured at a real size. Random weights write garbage of any length, so both
engines are made to do the same work: end-of-text and every other special token are suppressed
and each utterance decodes exactly `--new-tokens` tokens (the tokens column shows it); CER is
meaningless there and not printed. The test utterances still come from `results/manifests`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_subtitles import PUBLISHED_SIZES

from whisperforge.cer import normalize, score_pairs
from whisperforge.dataset import load_audio
from whisperforge.manifest import read_manifest
from whisperforge.transcribe import DECODE_OPTIONS, decode_one, load_model

# A decoder maps 16 kHz audio to (text, tokens generated).
Decoder = Callable[..., tuple[str, int]]
# faster-whisper's prompt without a previous text: <|startoftranscript|><|zh|><|transcribe|>
# <|notimestamps|>.
PROMPT_TOKENS = 4
EXPORTS = [("float16", "default"), ("float32", "float32"), ("int8", "int8")]


def special_ids(tokenizer_len: int, eot: int) -> list[int]:
    """<|endoftext|> and every id after it (specials, timestamps): what fixed-work decodes ban."""
    return list(range(eot, tokenizer_len))


def hf_decoder(merged: Path, beam: int, threads: int, new_tokens: int | None = None) -> Decoder:
    """transformers `generate`; with `new_tokens`, exactly that many text tokens per utterance."""
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    torch.set_num_threads(threads)
    processor = WhisperProcessor.from_pretrained(merged)
    model = WhisperForConditionalGeneration.from_pretrained(merged).eval()
    eot = processor.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if new_tokens is None:
        limits = {"max_new_tokens": 120}
    else:
        limits = {
            "max_new_tokens": new_tokens,
            "min_new_tokens": new_tokens,
            "suppress_tokens": special_ids(len(processor.tokenizer), eot),
        }

    def decode(audio) -> tuple[str, int]:
        features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(
                features.input_features,
                language="zh",
                task="transcribe",
                num_beams=beam,
                **limits,
            )
        tokens = sum(1 for t in ids[0].tolist() if t < eot)  # the prompt and padding are >= eot
        return processor.tokenizer.decode(ids[0], skip_special_tokens=True), tokens

    return decode


def ct2_decoder(ct2_dir: Path, compute_type: str, beam: int, threads: int) -> Decoder:
    """The workflow's own decode (`decode_one`); tokens counted by re-encoding its text."""
    model, _, _ = load_model(ct2_dir, compute_type, threads)

    def decode(audio) -> tuple[str, int]:
        text = decode_one(model, audio, language="zh", task="transcribe", beam_size=beam)
        return text, len(model.hf_tokenizer.encode(text, add_special_tokens=False).ids)

    return decode


def ct2_fixed_decoder(
    ct2_dir: Path, compute_type: str, beam: int, threads: int, new_tokens: int
) -> Decoder:
    """faster-whisper with the workflow's options, decoding exactly `new_tokens` text tokens.

    CTranslate2 4.x's Whisper decodes at most `max_length / 2` new tokens (OpenNMT/CTranslate2
    issue 1856), and faster-whisper passes `max_length = prompt + max_new_tokens`; so asking for
    `2 * new_tokens - prompt` new tokens gets `new_tokens` (at most 224).
    """
    model, _, _ = load_model(ct2_dir, compute_type, threads)
    tokenizer = model.hf_tokenizer
    banned = special_ids(tokenizer.get_vocab_size(), tokenizer.token_to_id("<|endoftext|>"))

    def decode(audio) -> tuple[str, int]:
        segments, _ = model.transcribe(
            audio,
            language="zh",
            task="transcribe",
            beam_size=beam,
            vad_filter=False,
            max_new_tokens=2 * new_tokens - PROMPT_TOKENS,
            suppress_tokens=banned,
            **DECODE_OPTIONS,
        )
        segments = list(segments)
        text = "".join(s.text for s in segments).strip()
        return text, sum(len(s.tokens) for s in segments)

    return decode


def time_decoder(decode: Decoder, audios) -> tuple[float, list[str], list[int]]:
    decode(audios[0])  # warm-up, not timed
    start = time.perf_counter()
    outputs = [decode(a) for a in audios]
    seconds = time.perf_counter() - start
    return seconds, [text for text, _ in outputs], [tokens for _, tokens in outputs]


def random_merged(size: str, out: Path) -> Path:
    """A randomly initialised Whisper of a published size, as a merged HF model dir."""
    from whisperforge.tinymodel import build_tiny_whisper

    return build_tiny_whisper(out, **PUBLISHED_SIZES[size])


def quiet_transformers(warnings: bool) -> None:
    """No progress bars (each model load draws one); no warnings in fixed-work mode, where
    generate() warns about every explicit limit."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not warnings:
        hf_logging.set_verbosity_error()


def export(merged: Path, out: Path, quantization: str) -> Path:
    import ctranslate2

    ctranslate2.converters.TransformersConverter(
        str(merged), copy_files=["tokenizer.json", "preprocessor_config.json"]
    ).convert(str(out), quantization=quantization)
    return out


def print_results(results: dict[str, dict], fixed: bool) -> None:
    base = results["transformers fp32"]["seconds"]
    for name, r in results.items():
        cer = "" if fixed else f"  CER {100 * r['cer']:6.2f} %"
        print(
            f"{name:28s} {r['seconds']:7.2f} s  RTF {r['rtf']:.3f}  tokens {r['tokens']:6d}{cer}"
            f"  {base / r['seconds']:5.2f}x transformers"
        )
    if fixed:
        print("random weights: CER is meaningless (not printed); equal work = equal tokens")
    else:
        print("tokens: transformers' generated text tokens; CTranslate2's re-encoded from its text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="lora")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--utterances", type=int, default=14)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--random-size",
        choices=list(PUBLISHED_SIZES),
        help="a random-weight Whisper of this published size instead of the run's merged model",
    )
    parser.add_argument(
        "--new-tokens", type=int, default=100, help="with --random-size: tokens per utterance"
    )
    args = parser.parse_args()
    if args.random_size and not PROMPT_TOKENS < args.new_tokens <= 224:
        parser.error(f"--new-tokens must be in {PROMPT_TOKENS + 1}..224")
    fixed = args.new_tokens if args.random_size else None
    quiet_transformers(warnings=not fixed)

    records = read_manifest(args.results / "manifests/test.jsonl")[: args.utterances]
    audios = [load_audio(r["audio"]["path"]) for r in records]
    refs = [normalize(r["sentence"]) for r in records]
    audio_s = sum(len(a) for a in audios) / 16000
    model_name = f"random {args.random_size}" if fixed else f"run {args.run}"
    print(
        f"{model_name}: {len(records)} utterances, {audio_s:.1f} s of audio, beam {args.beam}, "
        + (f"{fixed} tokens per utterance, " if fixed else "")
        + f"{args.threads} threads, {platform.processor() or platform.machine()}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        if fixed:
            merged = random_merged(args.random_size, Path(tmp) / "merged")
        else:
            merged = args.results / "models" / args.run / "merged"
        rows = {"transformers fp32": hf_decoder(merged, args.beam, args.threads, fixed)}
        for quantization, compute_type in EXPORTS:
            out = export(merged, Path(tmp) / quantization, quantization)
            if fixed:
                decoder = ct2_fixed_decoder(out, compute_type, args.beam, args.threads, fixed)
            else:
                decoder = ct2_decoder(out, compute_type, args.beam, args.threads)
            rows[f"ct2 {quantization} ({compute_type})"] = decoder
        results = {}
        for name, decode in rows.items():
            seconds, texts, tokens = time_decoder(decode, audios)
            if fixed and set(tokens) != {fixed}:  # e.g. a CTranslate2 without the halving
                sys.exit(f"{name}: decoded {tokens} tokens, not {fixed} each: unequal work")
            results[name] = {"seconds": seconds, "rtf": seconds / audio_s, "tokens": sum(tokens)}
            if not fixed:
                results[name]["cer"] = score_pairs(refs, [normalize(t) for t in texts])["cer"]
    print_results(results, bool(fixed))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
