"""The manifest format shared by every stage.

One JSON object a line, as Whisper-Finetune's `aishell.py` writes them, so existing tools read ours:

    {"audio": {"path": "results/data/aishell/wav/test/S0764/BAC009S0764W0121.wav"},
     "sentence": "甚至出现交易几乎停滞的情况", "language": "Chinese",
     "sentences": [{"start": 0, "end": 2.31, "text": "甚至出现交易几乎停滞的情况"}],
     "duration": 2.31}

We add one field, `id` (the utterance id), which readers of the original format ignore.
Relative audio paths are resolved against the working directory (the workflow root).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import atomic_path, write_json

REQUIRED_FIELDS = ("audio", "sentence", "duration")


def make_record(
    utt_id: str, audio_path: str, sentence: str, duration: float, language: str = "Chinese"
) -> dict[str, Any]:
    """A manifest line for one utterance (duration in seconds, rounded to 2 decimals)."""
    duration = round(duration, 2)
    return {
        "id": utt_id,
        "audio": {"path": audio_path},
        "sentence": sentence,
        "language": language,
        "sentences": [{"start": 0, "end": duration, "text": sentence}],
        "duration": duration,
    }


def utterance_id(record: dict[str, Any]) -> str:
    """The record's id, or the audio file's stem for manifests written by other tools."""
    return record.get("id") or Path(record["audio"]["path"]).stem


def numbered_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a JSONL manifest, each checked; a bad line raises naming the file
    and line number."""
    path = Path(path)
    if not path.is_file():
        raise WhisperforgeError(f"{path}: manifest not found")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise WhisperforgeError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            missing = [k for k in REQUIRED_FIELDS if k not in record]
            if (
                missing
                or not isinstance(record.get("audio"), dict)
                or "path" not in record["audio"]
            ):
                what = ", ".join(missing) or "audio.path"
                raise WhisperforgeError(f"{path}:{lineno}: manifest line lacks {what}")
            yield lineno, record


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Read and check a JSONL manifest; a bad line raises naming the file and line number."""
    return [record for _, record in numbered_records(path)]


def write_jsonl(
    path: str | Path, records: Iterable[dict[str, Any]], what: str = "a manifest"
) -> int:
    """Write records atomically, one JSON object a line; returns how many were written. A full
    disk is one line naming `path` and `what` (see `atomic_path`)."""
    n = 0
    with atomic_path(path, what=what) as tmp, tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def import_manifests(sources: dict[str, str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Check the user's own manifests (every line, every audio file) and copy them into out_dir."""
    out_dir = Path(out_dir)
    stats: dict[str, Any] = {"utterances": {}, "hours": {}, "source": {}}
    checked = {}
    for split, source in sources.items():
        records = read_manifest(source)
        if not records:
            raise WhisperforgeError(f"{source}: manifest for split {split!r} is empty")
        for record in records:
            if not Path(record["audio"]["path"]).is_file():
                raise WhisperforgeError(f"{source}: audio file {record['audio']['path']} not found")
        checked[split] = records
        stats["utterances"][split] = len(records)
        stats["hours"][split] = round(sum(float(r["duration"]) for r in records) / 3600, 4)
        stats["source"][split] = str(source)
    for split, records in checked.items():
        write_jsonl(out_dir / f"{split}.jsonl", records)
    write_json(out_dir / "stats.json", stats)
    return stats


def import_eval_set(source: str | Path, out: str | Path) -> int:
    """Check an extra test set (config eval.sets) line by line, its audio included, and copy it.

    Every line needs a text `sentence` and an audio file that soundfile can open and that holds
    samples; the first that does not stops the import with one line naming the file and line.
    Returns how many utterances the set has.
    """
    import soundfile

    records = []
    for lineno, record in numbered_records(source):
        where = f"{source}:{lineno}"
        if not isinstance(record["sentence"], str) or not record["sentence"].strip():
            raise WhisperforgeError(f"{where}: `sentence` is not a non-empty text")
        audio = Path(record["audio"]["path"])
        try:
            frames = soundfile.info(str(audio)).frames
        except (OSError, RuntimeError) as e:  # soundfile.LibsndfileError is a RuntimeError
            raise WhisperforgeError(f"{where}: cannot read audio {audio} ({e})") from None
        if frames <= 0:
            raise WhisperforgeError(f"{where}: audio {audio} holds no samples")
        records.append(record)
    if not records:
        raise WhisperforgeError(f"{source}: manifest has no utterances")
    return write_jsonl(out, records)
