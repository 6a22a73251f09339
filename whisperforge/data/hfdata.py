"""Manifests as Hugging Face `datasets`: for training, and as a dataset to share.

`load_manifest` reads a JSONL manifest (Whisper-Finetune's format stays the interface) as an
Arrow-backed `Dataset`, cached in the HF datasets cache, or streams it as an `IterableDataset`;
its audio stays a path (training reads it at each visit, dataset.py). `save_hf_dataset` writes
the prepared corpus as a `DatasetDict` with the audio embedded (`results/manifests/hf/`), which
`datasets.load_from_disk` reads back anywhere and `push_to_hub` uploads as is.

No torch here: the data stage's environment (envs/data.yaml) runs `save_hf_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from whisperforge.core.audio import SAMPLE_RATE
from whisperforge.core.errors import WhisperforgeError, one_line
from whisperforge.core.files import atomic_dir, is_full_disk, sha256_file
from whisperforge.core.manifest import numbered_records

# Whisper-Finetune's manifest fields, typed. pyarrow infers a JSON column's type per 10 MB chunk:
# `"start": 0` in the first chunk and `"start": 0.5` in a later one is then a cast error, so the
# schema is declared. Fields beyond these (and `audio` or `sentences` entries with keys of their
# own) are kept as JSON values.
SEGMENT_FIELDS = {"start": "float64", "end": "float64", "text": "string"}
FIELD_TYPES = {"id": "string", "sentence": "string", "language": "string", "duration": "float64"}


@dataclass(frozen=True)
class ManifestScan:
    """What one checked pass over a manifest found: its size and the shape of its records."""

    path: str
    records: int
    extra_fields: tuple[str, ...] = ()
    plain_audio: bool = True  # every `audio` is {"path": ...}
    plain_sentences: bool = True  # every `sentences` entry is {start, end, text}

    def features(self) -> datasets.Features:
        value = datasets.Value
        features: dict[str, Any] = {k: value(t) for k, t in FIELD_TYPES.items()}
        features["audio"] = {"path": value("string")} if self.plain_audio else datasets.Json()
        features["sentences"] = (
            datasets.List({k: value(t) for k, t in SEGMENT_FIELDS.items()})
            if self.plain_sentences
            else datasets.Json()
        )
        features.update({k: datasets.Json() for k in self.extra_fields})
        return datasets.Features(features)


def scan_manifest(path: str | Path) -> ManifestScan:
    """Check every line (a bad one raises naming the file and line) without keeping records."""
    count, extra, plain_audio, plain_sentences = 0, set(), True, True
    for _, record in numbered_records(path):
        count += 1
        extra.update(k for k in record if k not in FIELD_TYPES and k not in ("audio", "sentences"))
        plain_audio = plain_audio and record["audio"].keys() == {"path"}
        segments = record.get("sentences")
        plain_sentences = plain_sentences and (
            segments is None
            or (
                isinstance(segments, list)
                and all(isinstance(s, dict) and s.keys() == SEGMENT_FIELDS.keys() for s in segments)
            )
        )
    return ManifestScan(str(path), count, tuple(sorted(extra)), plain_audio, plain_sentences)


def load_manifest(
    manifest: str | Path | ManifestScan, *, streaming: bool = False
) -> datasets.Dataset | datasets.IterableDataset:
    """A manifest as an Arrow-backed `datasets.Dataset` (cached in the HF datasets cache), or,
    `streaming`, as an `IterableDataset` read line by line; audio stays a path until a visit."""
    scan = manifest if isinstance(manifest, ManifestScan) else scan_manifest(manifest)
    try:
        return datasets.load_dataset(
            "json",
            data_files=scan.path,
            split="train",
            features=scan.features(),
            streaming=streaming,
        )
    except datasets.exceptions.DatasetGenerationError as e:
        cause = one_line(e.__cause__ or e)
        raise WhisperforgeError(f"{scan.path}: datasets cannot load the manifest ({cause})") from e


def hf_split(manifest: str | Path) -> datasets.Dataset:
    """One manifest as a split of the shared dataset: its rows, `audio` an Audio feature (16 kHz,
    undecoded) whose bytes are embedded when saved. An `audio` with keys besides `path`
    (Whisper-Finetune's `start_time`, `end_time`) keeps them in `audio_info`."""
    scan = scan_manifest(manifest)
    data = load_manifest(scan)
    if not scan.plain_audio:
        data = data.map(
            lambda row: {
                "audio": row["audio"]["path"],
                "audio_info": {k: v for k, v in row["audio"].items() if k != "path"},
            },
            features=datasets.Features(
                {**data.features, "audio": datasets.Value("string"), "audio_info": datasets.Json()}
            ),
        )
    # Stored undecoded: a row reads as {"bytes", "path"} anywhere; decoding into arrays needs
    # torchcodec and FFmpeg, which the workflow's envs do not have. With them:
    # `corpus.cast_column("audio", datasets.Audio(sampling_rate=16000))`.
    # The saved state.json's fingerprint from the manifest's bytes: `datasets` would derive it
    # from the file's path and mtime, so two builds of the same data would differ there.
    fingerprint = sha256_file(scan.path)[:16]
    return data.cast_column(
        "audio",
        datasets.Audio(sampling_rate=SAMPLE_RATE, decode=False),
        new_fingerprint=fingerprint,
    )


def save_hf_dataset(manifests: dict[str, str | Path], out_dir: str | Path) -> dict[str, int]:
    """Write the splits' manifests to `out_dir` as a `DatasetDict` with the audio files' bytes in
    its Arrow files; atomic (a temp dir beside it, renamed). Returns the rows per split."""
    out_dir = Path(out_dir)
    corpus = datasets.DatasetDict({split: hf_split(path) for split, path in manifests.items()})
    with atomic_dir(out_dir, what="a Hugging Face dataset") as tmp:
        try:
            corpus.save_to_disk(str(tmp))
        except (OSError, datasets.exceptions.DatasetGenerationError) as e:
            if is_full_disk(e):
                raise  # atomic_dir's one line, not an audio file's fault
            # A missing or unreadable audio file, found when its bytes are embedded.
            raise WhisperforgeError(f"{out_dir}: cannot embed the audio ({one_line(e)})") from e
    return {split: len(data) for split, data in corpus.items()}
