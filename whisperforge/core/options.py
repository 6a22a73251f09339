"""Typed options of the decoding steps, built from config sections the schema already validated.

Standard library only: the Snakefile imports it to pass each rule exactly the keys it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class DecodeOptions:
    """How evaluation decodes: config `eval`'s decoding keys, whose defaults live in the schema."""

    language: str | None
    task: str
    beam_size: int
    batch_size: int
    compute_type: str
    vad_filter: bool

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> DecodeOptions:
        """The options in an already validated `eval` section (its other keys are not decoding)."""
        return cls(**{f.name: section[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class SubtitleOptions:
    """How recordings become cues: config `subtitles`, whose defaults live in the schema only."""

    language: str | None
    beam_size: int
    vad: bool
    max_segment_s: float
    max_line_chars: int
    word_timestamps: bool
    condition_on_previous_text: bool
    script: str | None  # a key of SCRIPTS, or None: as the model writes
    vad_min_silence_ms: int
    vad_speech_pad_ms: int
    # Subtitle conventions (longform.subtitle_conventions measures the written cues against them;
    # the writer's own limits are max_line_chars and max_segment_s above).
    max_lines: int
    max_chars_per_s: float
    min_cue_s: float
    max_cue_s: float

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SubtitleOptions:
        """The options in an already validated `subtitles` section (`inputs` and `model` are the
        rule's, not the library's)."""
        options = cls(**{f.name: section[f.name] for f in fields(cls)})
        return replace(
            options,
            max_segment_s=float(options.max_segment_s),
            max_chars_per_s=float(options.max_chars_per_s),
            min_cue_s=float(options.min_cue_s),
            max_cue_s=float(options.max_cue_s),
        )


def decode_keys() -> list[str]:
    """The `eval` keys that decide how a model decodes (a change reruns transcribe and speed)."""
    return [f.name for f in fields(DecodeOptions)]


def subtitle_keys() -> list[str]:
    """The `subtitles` keys that decide how recordings become cues (a change reruns subtitles and
    the long-form judgement; `inputs` and `model` choose what is subtitled, and rerun neither)."""
    return [f.name for f in fields(SubtitleOptions)]
