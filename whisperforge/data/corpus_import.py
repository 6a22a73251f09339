"""What the corpora read through the field's own loaders (`hf`: Hugging Face datasets, `lhotse`:
lhotse manifests) share: one policy for bad rows, text normalized as AISHELL's, and the same
`{train,dev,test}.jsonl` + `stats.json` a `manifests` corpus gets, so every later stage reads
them unchanged.

A bad row (no audio, audio that does not open, no text) follows `data.bad_wav`: `error` stops with
one line naming the source and the row, `skip` counts it in `stats.json` by reason. Rows outside
the `data` filters (`min_audio_s`, `max_audio_s`, `max_text_chars`) are skipped and counted, as
AISHELL's are.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import write_json
from whisperforge.core.manifest import write_jsonl
from whisperforge.data.aishell import Filters, normalize_transcript_text

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
# Why a row is bad; data.bad_wav decides between stopping and counting.
MISSING_AUDIO = "missing_audio"
UNREADABLE_AUDIO = "unreadable_audio"
EMPTY_TEXT = "empty_text"


class BadRow(Exception):
    """A row's audio is missing, does not open or lies outside its file: `reason` names which."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def normalize_text(text: Any) -> str:
    """A transcript as AISHELL's are made: words joined (spaces dropped), full-width latin to
    ASCII (aishell.normalize_transcript_text)."""
    return normalize_transcript_text(str(text or "").split())


@dataclass
class SplitRows:
    """One split's kept records and what was counted on the way."""

    records: list[dict[str, Any]] = field(default_factory=list)
    speakers: set[str] = field(default_factory=set)
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    source: str | None = None

    def add(self, record: dict[str, Any], speaker: str | None) -> None:
        self.records.append(record)
        self.seconds += float(record["duration"])
        if speaker:
            self.speakers.add(str(speaker))


@dataclass(frozen=True)
class RowPolicy:
    """data.bad_wav and the data filters, applied to one row at a time."""

    filters: Filters

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RowPolicy:
        return cls(Filters.from_config(settings))

    def bad(self, rows: SplitRows, where: str, reason: str, detail: str) -> None:
        """A bad row: one line naming `where` (data.bad_wav: error), or counted (skip)."""
        if self.filters.bad_wav == "error":
            raise WhisperforgeError(f"{where}: {detail} (set data.bad_wav: skip to skip such rows)")
        rows.skipped[reason] += 1

    def filtered(self, rows: SplitRows, duration: float, text: str) -> bool:
        """True (and counted) when the row lies outside the data filters."""
        f = self.filters
        reason = (
            "too_short"
            if duration < f.min_audio_s
            else "too_long"
            if duration > f.max_audio_s
            else "text_too_long"
            if len(text) > f.max_text_chars
            else None
        )
        if reason:
            rows.skipped[reason] += 1
        return reason is not None


def check_not_empty(splits: Mapping[str, SplitRows], wanted: Mapping[str, Any], key: str) -> None:
    """A split the config maps to a source that ends with no usable row is an error."""
    for split, rows in splits.items():
        if wanted.get(split) and not rows.records:
            skipped = ", ".join(f"{r}: {n}" for r, n in sorted(rows.skipped.items())) or "none"
            raise WhisperforgeError(
                f"{key}: {rows.source}: no usable rows for split {split!r} (skipped: {skipped})"
            )


def write_corpus(
    kind: str, splits: Mapping[str, SplitRows], out_dir: str | Path, policy: RowPolicy
) -> dict[str, Any]:
    """`{train,dev,test}.jsonl` and `stats.json` (the keys a manifests corpus writes, plus
    speakers, skipped rows by reason and the filters) in out_dir; returns the stats."""
    out_dir = Path(out_dir)
    for split in SPLITS:
        write_jsonl(out_dir / f"{split}.jsonl", splits[split].records, what=f"the {split} manifest")
    stats = {
        "kind": kind,
        "utterances": {s: len(splits[s].records) for s in SPLITS},
        "hours": {s: round(splits[s].seconds / 3600, 4) for s in SPLITS},
        "speakers": {s: len(splits[s].speakers) for s in SPLITS},
        "skipped": {s: dict(sorted(splits[s].skipped.items())) for s in SPLITS},
        "source": {s: splits[s].source for s in SPLITS},
        "filters": asdict(policy.filters),
    }
    write_json(out_dir / "stats.json", stats, what="the corpus stats")
    log.info("%s corpus: %s utterances; skipped %s", kind, stats["utterances"], stats["skipped"])
    return stats
