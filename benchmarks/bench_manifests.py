"""Manifest stage vs `tar -xzf` (the I/O floor) vs the aishell.py approach, same archive, same run.

    python benchmarks/bench_manifests.py [--utterances 2000] [--threads 2]

Builds a synthetic AISHELL-shaped archive (noise wavs of 1.5-5 s, 16 kHz mono 16-bit, 40
speakers), then times, each in a fresh directory:
  tar:        `tar -xzf` of the archive, then `tar -xzf` of every speaker tar (what Kaldi's
              download_and_untar.sh does: the floor for getting the wavs onto disk)
  tar-outer:  `tar -xzf` of the outer archive only
  aishell.py: a straight port of Whisper-Finetune's approach: extract everything, then
              soundfile.read each wav (a full decode) for its duration, then write the manifest
  whisperforge: extract_archive (one streaming pass, speaker tars in parallel, durations from
              headers) + build_manifests
and prints each time with its ratio to `tar`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from whisperforge.core.config import section_defaults
from whisperforge.data.aishell import Filters, build_manifests, extract_archive

# config.yaml's filters (the schema's defaults), as the build_manifests rule applies them.
FILTERS = Filters.from_config(
    section_defaults(Path(__file__).resolve().parent.parent / "schemas/config.schema.yaml", "data")
)


def _wav(seconds: float, rng: np.random.Generator) -> bytes:
    samples = (rng.standard_normal(int(seconds * 16000)) * 2000).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_archive(path: Path, n_utts: int, n_speakers: int = 40) -> None:
    rng = np.random.default_rng(0)
    lines = []
    with tarfile.open(path, "w:gz", compresslevel=6) as outer:
        per_speaker = -(-n_utts // n_speakers)
        for s in range(n_speakers):
            speaker = f"S{2 + s:04d}"
            split = "test" if s % 10 == 9 else "dev" if s % 10 == 8 else "train"
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as inner:
                for u in range(per_speaker):
                    utt = f"BAC009{speaker}W{u:04d}"
                    _add(inner, f"{split}/{speaker}/{utt}.wav", _wav(rng.uniform(1.5, 5.0), rng))
                    lines.append(f"{utt} 而 对 楼市 成交 抑制 作用 最 大 的 限 购")
            _add(outer, f"data_aishell/wav/{speaker}.tar.gz", buf.getvalue())
        transcript = ("\n".join(lines) + "\n").encode()
        _add(outer, "data_aishell/transcript/aishell_transcript_v0.8.txt", transcript)


def run_tar(archive: Path, out: Path, inner: bool) -> None:
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(out)], check=True)
    if inner:
        wav_dir = out / "data_aishell/wav"
        for speaker_tar in sorted(wav_dir.glob("*.tar.gz")):
            subprocess.run(["tar", "-xzf", str(speaker_tar), "-C", str(wav_dir)], check=True)


def run_aishell_py(archive: Path, out: Path) -> None:
    import soundfile

    with tarfile.open(archive) as outer:
        outer.extractall(out, filter="data")
    wav_dir = out / "data_aishell/wav"
    for speaker_tar in sorted(wav_dir.glob("*.tar.gz")):
        with tarfile.open(speaker_tar) as inner:
            inner.extractall(wav_dir, filter="data")
    transcript = {}
    for line in (out / "data_aishell/transcript/aishell_transcript_v0.8.txt").open():
        utt, *words = line.split()
        transcript[utt] = "".join(words)
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        for wav in sorted(wav_dir.rglob("*.wav")):
            if wav.stem not in transcript:
                continue
            samples, rate = soundfile.read(wav)
            duration = round(len(samples) / rate, 2)
            record = {
                "audio": {"path": str(wav)},
                "sentence": transcript[wav.stem],
                "duration": duration,
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def run_whisperforge(archive: Path, out: Path, threads: int) -> None:
    extract_archive(archive, out / "wav", out / "transcript.txt", out / "wavs.tsv", threads=threads)
    build_manifests(out / "transcript.txt", out / "wavs.tsv", out / "manifests", filters=FILTERS)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=2, help="best of N")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-manifests-") as tmp:
        tmp = Path(tmp)
        archive = tmp / "data_aishell.tgz"
        make_archive(archive, args.utterances)
        print(
            f"archive: {args.utterances} utterances, {archive.stat().st_size / 2**20:.0f} MiB; "
            f"{os.cpu_count()} cores, python {platform.python_version()}"
        )
        contenders = {
            "tar": lambda out: run_tar(archive, out, inner=True),
            "tar-outer": lambda out: run_tar(archive, out, inner=False),
            "aishell.py": lambda out: run_aishell_py(archive, out),
            "whisperforge": lambda out: run_whisperforge(archive, out, args.threads),
        }
        best: dict[str, float] = {}
        for attempt in range(args.repeat):
            for name, fn in contenders.items():
                out = tmp / f"{name}-{attempt}"
                out.mkdir()
                seconds = timed(fn, out)
                best[name] = min(best.get(name, float("inf")), seconds)
                subprocess.run(["rm", "-rf", str(out)], check=True)
        for name, seconds in best.items():
            print(f"{name:13s} {seconds:7.2f} s   {seconds / best['tar']:5.2f}x tar")


if __name__ == "__main__":
    main()
