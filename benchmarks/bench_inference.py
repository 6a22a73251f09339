"""Inference speed: transformers `generate` vs faster-whisper exports, batched and unbatched.

    python benchmarks/bench_inference.py --random-size small [--utterances 8] [--batch-size 8]
        [--beam 5] [--new-tokens 50] [--quantizations float16 int8] [--threads 2]
    python benchmarks/bench_inference.py --run lora [--results results] [--utterances 14]

Both modes time through `whisperforge.evaluate.speed.measure_speed`, the workflow's speed step:
the same utterances, beam and language for every engine, each engine batched at `--batch-size` and
unbatched, each measurement in a fresh process after one untimed warm-up, peak memory per process.
The speedup column compares each row with transformers at the same batch size.

`--run RUN` times the run's merged model (`results/models/<run>/merged`, after the workflow) and
exports of it. `--random-size SIZE` (tiny, base, small, medium, large-v3, large-v3-turbo) instead
builds a Whisper of that published shape with random weights (`build_published_shape`, offline).
Random weights write garbage of any length, so both engines are made to do the same work:
end-of-text and every other special token are banned and each utterance decodes exactly
`--new-tokens` tokens in both engines (transformers: max_new_tokens = min_new_tokens; faster-
whisper: max_new_tokens, doubled for CTranslate2's halving), which `measure_speed` checks per
utterance. Without `--manifest`, random mode decodes synthetic clips of AISHELL-like length
(what a clip says does not matter to random weights: every clip is padded to 30 s anyway).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# As in every workflow step (scripts/_step.py): OpenMP threads sleep rather than spin while
# waiting, which the timing children inherit; spinning threads slow down badly on a shared CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from whisperforge.core.audio import SAMPLE_RATE
from whisperforge.core.manifest import make_record, write_jsonl
from whisperforge.core.options import DecodeOptions
from whisperforge.evaluate.speed import HF, measure_speed
from whisperforge.model.export import export_ct2
from whisperforge.model.tinymodel import PUBLISHED_SHAPES, build_published_shape


def synthetic_manifest(out_dir: Path, n: int) -> Path:
    """`n` clips of 2.5-5.5 s (AISHELL-1's typical lengths): a tone in faint noise."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        seconds = 2.5 + 3.0 * i / max(n - 1, 1)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        audio = 0.2 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.02 * rng.standard_normal(t.size)
        wav = out_dir / f"SYN{i:04d}.wav"
        sf.write(wav, audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        records.append(make_record(wav.stem, str(wav), "", seconds))
    write_jsonl(out_dir / "test.jsonl", records)
    return out_dir / "test.jsonl"


@dataclass(frozen=True)
class Setup:
    hf: Path
    exports: dict[str, Path]
    manifest: Path
    model: str


def prepare(args: argparse.Namespace, work: Path) -> Setup:
    """The HF model, its exports (in `--quantizations` order) and the manifest to time."""
    if args.random_size:
        hf = build_published_shape(work / "hf", args.random_size)
        model = f"random-weight {args.random_size} (published shape)"
    else:
        hf = args.results / "models" / args.run / "merged"
        model = f"run {args.run} ({hf})"
    manifest = args.manifest
    if manifest is None:
        default = args.results / "manifests/test.jsonl"
        manifest = (
            synthetic_manifest(work / "clips", args.utterances)
            if args.random_size and not default.is_file()
            else default
        )
    t0 = time.perf_counter()
    exports = {q: work / f"ct2-{q}" for q in args.quantizations}
    for q, out in exports.items():
        export_ct2(hf, out, quantization=q)
    print(f"exported {', '.join(exports)} in {time.perf_counter() - t0:.0f} s", flush=True)
    return Setup(hf, exports, Path(manifest), model)


def markdown(result: dict) -> str:
    """The engines as a Markdown table, with the batching gain of each engine and variant."""
    unbatched = {
        (r["engine"], r["variant"]): r["seconds"] for r in result["engines"] if r["batch_size"] == 1
    }
    lines = [
        "| engine | export | compute type | batch | seconds | RTF | vs transformers, same batch "
        "| batched vs unbatched | peak memory MiB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["engines"]:
        key = (r["engine"], r["variant"])
        gain = f"{unbatched[key] / r['seconds']:.2f}x" if r["batch_size"] > 1 else ""
        export = "" if r["engine"] == HF else r["variant"]
        lines.append(
            f"| {r['engine']} | {export} | {r['compute_type']} | {r['batch_size']} "
            f"| {r['seconds']:.2f} | {r['rtf']:.3f} | {r['speedup']:.2f}x | {gain} "
            f"| {r['peak_memory_mb']:,.0f} ({r['memory']}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="lora")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--manifest", type=Path, help="default: <results>/manifests/test.jsonl")
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--quantizations", nargs="+", default=["float16", "int8"])
    parser.add_argument(
        "--random-size",
        choices=list(PUBLISHED_SHAPES),
        help="a random-weight Whisper of this published shape instead of the run's merged model",
    )
    parser.add_argument(
        "--new-tokens", type=int, default=50, help="with --random-size: tokens per utterance"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    fixed = args.new_tokens if args.random_size else None
    options = DecodeOptions(
        language="zh",
        task="transcribe",
        beam_size=args.beam,
        batch_size=args.batch_size,
        compute_type="auto",
        vad_filter=False,
    )
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        setup = prepare(args, Path(tmp))
        result = measure_speed(
            setup.hf,
            setup.exports,
            setup.manifest,
            options,
            n_utterances=args.utterances,
            batch_size=args.batch_size,
            threads=args.threads,
            device="cpu",
            fixed_tokens=fixed,
        )
    print(
        f"{setup.model}: {result['utterances']} utterances, {result['audio_s']:.1f} s of audio, "
        f"beam {result['beam_size']}, batch {result['batch_size']} and 1, "
        + (f"exactly {fixed} tokens per utterance in every engine, " if fixed else "")
        + f"{args.threads} threads, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(markdown(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
