"""An hf corpus's import (an audiofolder -> 16 kHz wavs + manifests) vs decoding the same audio
files alone (the floor), in the same run.

    python benchmarks/bench_corpus_import.py [--utterances 2000] [--rate 44100]

Writes an audiofolder of short synthetic utterances (1-4 s of noise at --rate, the rate Common
Voice's clips have; metadata.csv with file_name,sentence,speaker) into a temp folder, then times:
  decode only:  soundfile.read of every file and core.audio.resample to 16 kHz (no output)
  import:       whisperforge.data.hfcorpus.import_hf_corpus (datasets' audiofolder loader,
                decode, resample, write the wavs, manifests and stats.json)
and prints each time and the import's ratio to the floor.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from whisperforge.core.audio import resample
from whisperforge.data.hfcorpus import import_hf_corpus

DATA = {"min_audio_s": 0.5, "max_audio_s": 30.0, "max_text_chars": 200, "bad_wav": "error"}


def make_audiofolder(root: Path, n: int, rate: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder = root / "train"
    folder.mkdir(parents=True)
    rows, files = ["file_name,sentence,speaker"], []
    for i in range(n):
        seconds = rng.uniform(1.0, 4.0)
        path = folder / f"u{i:06d}.wav"
        soundfile.write(str(path), (0.1 * rng.standard_normal(int(seconds * rate))), rate)
        rows.append(f"{path.name},第{i}句 话,s{i % 40}")
        files.append(path)
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return files


def decode_only(files: list[Path]) -> None:
    for path in files:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        resample(samples.mean(axis=1), rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=44100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_audiofolder(root / "af", args.utterances, args.rate)
        start = time.perf_counter()
        decode_only(files)
        floor = time.perf_counter() - start
        hf = {
            "path": str(root / "af"),
            "name": None,
            "splits": {"train": "train"},
            "audio_column": "audio",
            "text_column": "sentence",
            "speaker_column": "speaker",
        }
        start = time.perf_counter()
        stats = import_hf_corpus("bench", hf, root / "af", DATA, root / "audio", root / "out")
        took = time.perf_counter() - start
    print(f"{platform.machine()}, {args.utterances} utterances at {args.rate} Hz")
    print(f"decode only (floor): {floor:.2f} s")
    print(f"import_hf_corpus:    {took:.2f} s  ({took / floor:.2f}x the floor); {stats['hours']}")


if __name__ == "__main__":
    main()
