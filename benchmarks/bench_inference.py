"""Inference: CTranslate2 export (faster-whisper) vs the merged model in transformers `generate`.

    python benchmarks/bench_inference.py [--run lora] [--utterances 14] [--beam 5]

Run it after the workflow (the demo or the real run): it reads `results/models/<run>/merged`,
exports int8 and float32 copies next to the float16 one in a temp dir, decodes the same test
utterances with the same beam through each, and prints seconds, real-time factor, CER and the
speedup against transformers from the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from whisperforge.dataset import load_audio
from whisperforge.manifest import read_manifest
from whisperforge.score import normalize, score_pairs
from whisperforge.transcribe import decode_one, load_model


def hf_decoder(merged: Path, beam: int, threads: int):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    torch.set_num_threads(threads)
    processor = WhisperProcessor.from_pretrained(merged)
    model = WhisperForConditionalGeneration.from_pretrained(merged).eval()

    def decode(audio) -> str:
        features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(
                features.input_features,
                language="zh",
                task="transcribe",
                num_beams=beam,
                max_new_tokens=120,
            )
        return processor.tokenizer.decode(ids[0], skip_special_tokens=True)

    return decode


def ct2_decoder(ct2_dir: Path, compute_type: str, beam: int, threads: int):
    model, _, _ = load_model(ct2_dir, compute_type, threads)
    return lambda audio: decode_one(model, audio, language="zh", task="transcribe", beam_size=beam)


def time_decoder(decode, audios) -> tuple[float, list[str]]:
    decode(audios[0])  # warm-up, not timed
    start = time.perf_counter()
    texts = [decode(a) for a in audios]
    return time.perf_counter() - start, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="lora")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--utterances", type=int, default=14)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    import ctranslate2

    merged = args.results / "models" / args.run / "merged"
    records = read_manifest(args.results / "manifests/test.jsonl")[: args.utterances]
    audios = [load_audio(r["audio"]["path"]) for r in records]
    refs = [normalize(r["sentence"]) for r in records]
    audio_s = sum(len(a) for a in audios) / 16000
    print(
        f"{len(records)} utterances, {audio_s:.1f} s of audio, beam {args.beam}, "
        f"{args.threads} threads, {platform.processor() or platform.machine()}"
    )

    rows = {"transformers fp32": hf_decoder(merged, args.beam, args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        for quantization, compute_type in [
            ("float16", "default"),
            ("float32", "float32"),
            ("int8", "int8"),
        ]:
            out = Path(tmp) / quantization
            ctranslate2.converters.TransformersConverter(
                str(merged), copy_files=["tokenizer.json", "preprocessor_config.json"]
            ).convert(str(out), quantization=quantization)
            rows[f"ct2 {quantization} ({compute_type})"] = ct2_decoder(
                out, compute_type, args.beam, args.threads
            )
        results = {}
        for name, decode in rows.items():
            seconds, texts = time_decoder(decode, audios)
            cer = score_pairs(refs, [normalize(t) for t in texts])["cer"]
            results[name] = {"seconds": seconds, "rtf": seconds / audio_s, "cer": cer}
    base = results["transformers fp32"]["seconds"]
    for name, r in results.items():
        print(
            f"{name:28s} {r['seconds']:7.2f} s  RTF {r['rtf']:.3f}  CER {100 * r['cer']:6.2f} %"
            f"  {base / r['seconds']:5.2f}x transformers"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
