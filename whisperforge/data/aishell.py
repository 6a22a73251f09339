"""AISHELL-1: `data_aishell.tgz` -> extracted wavs + an index, then index + transcript -> manifests.

Two steps, so that a filter change (or a transcript edit) rebuilds only the cheap second one:

1. `extract_archive` streams the outer tgz once. Each speaker tar (`wav/SXXXX.tar.gz`)
   is handed to a thread pool and unpacked from memory (zlib releases the GIL, so the speaker tars
   decompress in parallel while the outer stream is still being read). Every wav's format and
   duration come from its header alone. Output: the wav tree, the transcript, and `wavs.tsv`.
2. `build_manifests` joins the transcript with `wavs.tsv`, applies the length filters and writes
   `{train,dev,test}.jsonl` plus `stats.json`.

Archive members with absolute paths, `..` or links are refused; nothing partial is left behind.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import shutil
import tarfile
import threading
import wave
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import (
    atomic_path,
    free_bytes,
    human_bytes,
    is_full_disk,
    no_space,
    write_json,
)
from whisperforge.core.manifest import make_record, write_jsonl

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
TRANSCRIPT_MEMBER = "data_aishell/transcript/aishell_transcript_v0.8.txt"
SPEAKER_TAR_DIR = "data_aishell/wav/"
EXPECTED_FORMAT = (16000, 1, 2)  # sample rate, channels, bytes per sample

# Full-width ASCII (U+FF01..U+FF5E) -> ASCII; AISHELL's transcript has a few (ａｂｃｋｔ).
_FULL_TO_HALF = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


@dataclass(frozen=True)
class WavEntry:
    """One extracted wav as recorded in `wavs.tsv`."""

    utt_id: str
    split: str
    speaker: str
    path: str
    duration: float
    sample_rate: int
    channels: int
    sample_width: int

    @property
    def format_ok(self) -> bool:
        return (self.sample_rate, self.channels, self.sample_width) == EXPECTED_FORMAT


# --------------------------------------------------------------------------- extraction


def check_member(member: tarfile.TarInfo, archive: str | Path) -> PurePosixPath:
    """Refuse links, absolute paths and `..` (path traversal) in an archive member."""
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith("\\"):
        raise WhisperforgeError(f"{archive}: unsafe member path {name!r} (absolute or '..')")
    if member.issym() or member.islnk():
        raise WhisperforgeError(f"{archive}: link member {name!r} refused")
    return path


def _iter_outer(archive: Path) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    with tarfile.open(archive, mode="r|gz") as outer:
        yield from ((member, outer) for member in outer)


def wav_header(data: bytes, where: str) -> tuple[int, int, int, float]:
    """(sample rate, channels, bytes per sample, seconds) of a wav, from its header."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            rate, channels, width, frames = (
                w.getframerate(),
                w.getnchannels(),
                w.getsampwidth(),
                w.getnframes(),
            )
    except (wave.Error, EOFError) as e:
        raise WhisperforgeError(f"{where}: not a readable wav ({e})") from None
    # A header's frame count can overstate a truncated file: trust the bytes actually present.
    frames = min(frames, (len(data) - 44) // max(1, channels * width))
    return rate, channels, width, frames / rate if rate else 0.0


def extract_speaker_tar(data: bytes, name: str, archive: Path, wav_root: Path) -> list[WavEntry]:
    """Unpack one speaker tar (in memory) under `wav_root`; returns its wavs' header facts."""
    where = f"{archive}:{name}"
    entries = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                rel = check_member(member, where)
                if not member.isfile() or rel.suffix.lower() != ".wav":
                    continue
                if len(rel.parts) < 3 or rel.parts[-3] not in SPLITS:
                    raise WhisperforgeError(
                        f"{where}: member {member.name!r} is not <split>/<speaker>/<utt>.wav"
                    )
                split, speaker = rel.parts[-3], rel.parts[-2]
                blob = tar.extractfile(member).read()
                rate, channels, width, duration = wav_header(blob, f"{where}:{member.name}")
                out = wav_root / split / speaker / rel.name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(blob)
                entries.append(
                    WavEntry(rel.stem, split, speaker, str(out), duration, rate, channels, width)
                )
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise WhisperforgeError(f"{where}: corrupt or truncated speaker tar ({e})") from None
    return entries


# Extracted 16 kHz wavs per byte of the archive: AISHELL-1's 15.6 GB tgz gives ~18 GB of wavs.
WAVS_PER_ARCHIVE_BYTE = 1.2


def extraction_preflight(archive: Path, wav_dir: Path) -> None:
    """Refuse, before a byte is written, an extraction whose wavs cannot fit where they go."""
    needed = round(archive.stat().st_size * WAVS_PER_ARCHIVE_BYTE)
    free = free_bytes(wav_dir)
    if free < needed:
        raise WhisperforgeError(
            f"{wav_dir}: {human_bytes(free)} free, but the wavs of {archive.name} need about "
            f"{human_bytes(needed)} ({WAVS_PER_ARCHIVE_BYTE} x the archive); free space there or "
            "run in a directory on a bigger disk (snakemake --directory)"
        )


def _unpack(
    archive: Path, wav_dir: Path, threads: int, max_pending: int
) -> tuple[bytes | None, list[WavEntry]]:
    """Stream the outer tgz once; its speaker tars are unpacked by `threads` workers, at most
    `max_pending` read and waiting (memory: ~40 MB per real speaker tar). On any error the wav
    tree is removed and the error said in one line where it is the archive's or the disk's."""
    transcript: bytes | None = None
    slots = threading.BoundedSemaphore(max_pending)
    futures: list[Future[list[WavEntry]]] = []

    def work(data: bytes, name: str) -> list[WavEntry]:
        try:
            return extract_speaker_tar(data, name, archive, wav_dir)
        finally:
            slots.release()

    pool = ThreadPoolExecutor(max_workers=threads)
    try:
        for member, outer in _iter_outer(archive):
            path = check_member(member, archive)
            if not member.isfile():
                continue
            if path.as_posix().endswith(TRANSCRIPT_MEMBER):
                transcript = outer.extractfile(member).read()
            elif SPEAKER_TAR_DIR in path.as_posix() and path.name.endswith(".tar.gz"):
                data = outer.extractfile(member).read()
                if len(data) != member.size:
                    raise WhisperforgeError(f"{archive}: truncated member {member.name!r}")
                slots.acquire()
                # A speaker tar that failed (a full disk) stops the stream now, not after
                # reading the rest of a 15 GB archive for nothing.
                failed = next((f for f in futures if f.done() and f.exception()), None)
                if failed is not None:
                    slots.release()
                    failed.result()
                futures.append(pool.submit(work, data, member.name))
        entries = [e for f in futures for e in f.result()]
    except BaseException as e:
        pool.shutdown(cancel_futures=True)  # the running speakers end; the queued never start
        shutil.rmtree(wav_dir, ignore_errors=True)  # first, so a full disk's line counts its space
        if isinstance(e, (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)):
            raise WhisperforgeError(f"{archive}: corrupt or truncated archive ({e})") from None
        if isinstance(e, Exception) and is_full_disk(e):
            raise no_space(wav_dir, "AISHELL wavs") from None
        raise
    pool.shutdown()
    return transcript, entries


def extract_archive(
    archive: str | Path,
    wav_dir: str | Path,
    transcript_out: str | Path,
    index_out: str | Path,
    *,
    threads: int = 4,
    max_pending: int | None = None,
) -> dict[str, int]:
    """Stream the AISHELL tgz once and unpack every speaker tar in parallel.

    Writes the wav tree under `wav_dir`, a copy of the transcript, and `index_out` (wavs.tsv).
    On any error the partial wav tree is removed and no index or transcript is written; a full
    disk is one line naming `wav_dir` (or the file that did not fit) and the space left.
    """
    archive, wav_dir = Path(archive), Path(wav_dir)
    if not archive.is_file():
        raise WhisperforgeError(f"{archive}: archive not found")
    extraction_preflight(archive, wav_dir)
    wav_dir.mkdir(parents=True, exist_ok=True)
    transcript, entries = _unpack(archive, wav_dir, threads, max_pending or 2 * threads)
    problem = None
    if transcript is None:
        problem = f"{archive}: no {TRANSCRIPT_MEMBER} in the archive"
    elif not entries:
        problem = f"{archive}: no speaker tars under {SPEAKER_TAR_DIR}"
    if problem:
        shutil.rmtree(wav_dir, ignore_errors=True)
        raise WhisperforgeError(problem)

    entries.sort(key=lambda e: e.utt_id)
    transcript_out, wrote_transcript = Path(transcript_out), False
    try:
        with atomic_path(transcript_out, what="the AISHELL transcript") as tmp:
            tmp.write_bytes(transcript)
        wrote_transcript = True
        write_wav_index(index_out, entries)
    except BaseException:
        shutil.rmtree(wav_dir, ignore_errors=True)
        if wrote_transcript:  # it goes with the wavs just removed
            transcript_out.unlink(missing_ok=True)
        raise
    counts = Counter(e.split for e in entries)
    log.info("extracted %d wavs from %s (%s)", len(entries), archive, dict(counts))
    return dict(counts)


def write_wav_index(path: str | Path, entries: list[WavEntry]) -> None:
    names = [f.name for f in fields(WavEntry)]
    with (
        atomic_path(path, what="the AISHELL wav index") as tmp,
        tmp.open("w", newline="", encoding="utf-8") as f,
    ):
        writer = csv.DictWriter(f, fieldnames=names, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for entry in entries:
            writer.writerow(asdict(entry))


def read_wav_index(path: str | Path) -> list[WavEntry]:
    with open(path, newline="", encoding="utf-8") as f:
        return [
            WavEntry(
                r["utt_id"],
                r["split"],
                r["speaker"],
                r["path"],
                float(r["duration"]),
                int(r["sample_rate"]),
                int(r["channels"]),
                int(r["sample_width"]),
            )
            for r in csv.DictReader(f, delimiter="\t")
        ]


# --------------------------------------------------------------------------- manifests


def normalize_transcript_text(words: list[str]) -> str:
    """AISHELL text is word-segmented with spaces: join the words, full-width latin to ASCII."""
    return "".join(words).translate(_FULL_TO_HALF)


def read_transcript(path: str | Path, name: str | None = None) -> dict[str, str]:
    """Parse `UTTID word word ...` lines; a line with an id but no text is an error."""
    path = Path(path)
    name = name or str(path)
    if not path.is_file():
        raise WhisperforgeError(f"{name}: transcript not found")
    text: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise WhisperforgeError(f"{name}:{lineno}: transcript line has no text: {line!r}")
        text[parts[0]] = normalize_transcript_text(parts[1:])
    if not text:
        raise WhisperforgeError(f"{name}: transcript is empty")
    return text


@dataclass(frozen=True)
class Filters:
    """Which utterances a manifest keeps: config `data`'s filter keys (defaults in the schema)."""

    min_audio_s: float
    max_audio_s: float
    max_text_chars: int
    bad_wav: str  # "error" or "skip": a wav that is not 16 kHz mono 16-bit

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> Filters:
        """The filters in an already validated `data` section."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def reject_reason(self, entry: WavEntry, sentence: str) -> str | None:
        if not entry.format_ok:
            if self.bad_wav == "error":
                raise WhisperforgeError(
                    f"{entry.path}: wav is {entry.sample_rate} Hz, {entry.channels} channel(s), "
                    f"{8 * entry.sample_width}-bit; expected 16000 Hz mono 16-bit "
                    "(set data.bad_wav: skip to skip such files)"
                )
            return "bad_format"
        if entry.duration < self.min_audio_s:
            return "too_short"
        if entry.duration > self.max_audio_s:
            return "too_long"
        if len(sentence) > self.max_text_chars:
            return "text_too_long"
        return None


def build_manifests(
    transcript: str | Path,
    wav_index: str | Path,
    out_dir: str | Path,
    *,
    filters: Filters,
    train_on_dev: bool = False,
    language: str = "Chinese",
    required_splits: tuple[str, ...] | list[str] = SPLITS,
) -> dict[str, Any]:
    """Join transcript and wav index into `{train,dev,test}.jsonl` + `stats.json` in out_dir.

    A split listed in `required_splits` that ends up empty is an error (nothing is written).
    """
    texts = read_transcript(transcript)
    entries = read_wav_index(wav_index)
    records: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    skipped: Counter[str] = Counter()
    hours: Counter[str] = Counter()
    speakers: dict[str, set[str]] = {split: set() for split in SPLITS}
    for entry in entries:
        sentence = texts.get(entry.utt_id)
        if sentence is None:
            skipped["no_transcript"] += 1
            continue
        reason = filters.reject_reason(entry, sentence)
        if reason:
            skipped[reason] += 1
            continue
        records[entry.split].append(
            make_record(entry.utt_id, entry.path, sentence, entry.duration, language)
        )
        hours[entry.split] += entry.duration / 3600
        speakers[entry.split].add(entry.speaker)
    if train_on_dev:
        records["train"] = sorted(records["train"] + records["dev"], key=lambda r: r["id"])
    for split in required_splits:
        if not records[split]:
            raise WhisperforgeError(f"{wav_index}: no usable utterances in split {split!r}")

    out_dir = Path(out_dir)
    for split in SPLITS:
        write_jsonl(out_dir / f"{split}.jsonl", records[split], what=f"the {split} manifest")
    stats = {
        "utterances": {split: len(records[split]) for split in SPLITS},
        "speakers": {split: len(speakers[split]) for split in SPLITS},
        "hours": {split: round(hours[split], 4) for split in SPLITS},
        "skipped": dict(sorted(skipped.items())),
        "wavs_in_archive": len(entries),
        "transcript_lines": len(texts),
        "train_on_dev": train_on_dev,
        "filters": asdict(filters),
    }
    write_json(out_dir / "stats.json", stats, what="the manifest stats")
    log.info("manifests: %s; skipped %s", stats["utterances"], stats["skipped"])
    return stats
