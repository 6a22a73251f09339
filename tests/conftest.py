"""Shared fixtures: tiny AISHELL-shaped archives, and a copy of the workflow to run rules in."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

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


@pytest.fixture
def small_archive(tmp_path: Path) -> Path:
    return make_archive(tmp_path / "data_aishell.tgz", SMALL_UTTERANCES, SMALL_TRANSCRIPT)


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


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: float = 1800):
    """Run the real snakemake CLI in `workdir`; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
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
