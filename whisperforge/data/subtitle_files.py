"""Reading a user's subtitle files (SRT, WebVTT) and turning cue text into training labels.

Subtitle text is not a transcript. `clean_cue_text` undoes what subtitle style adds, counting each
kind of change so that the corpus's stats say what was done to the user's text:

- markup: HTML-like tags (`<i>`, `<font ...>`) and ASS override blocks (`{\\an8}`);
- sound notes: `[音乐]`, `【掌声】`, `（笑）`, `(applause)`, music notes — not speech;
- speaker dashes at the start of a line (`- 你好`, `－对`);
- full-width forms -> half-width (`ａｂｃ` -> `abc`, U+3000 -> space);
- the spaces Chinese subtitles put where punctuation would be, and punctuation itself: AISHELL's
  labels (the main corpus) have neither, so the corpus's labels drop them too;
- traditional -> simplified (or back) when the corpus's `script` asks (zhconv).

Spaces between two latin words are kept (one each), as in AISHELL's `ａ股`-style mixed lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from whisperforge.core.errors import WhisperforgeError, one_line

SCRIPTS = {"simplified": "zh-hans", "traditional": "zh-hant"}


@dataclass(frozen=True)
class SubtitleCue:
    """One cue as the file has it: its number (1-based, as editors show it), times in seconds,
    the raw text (lines joined by newlines)."""

    number: int
    start: float
    end: float
    text: str


def _seconds(stamp: str) -> float:
    """`HH:MM:SS.mmm` or `MM:SS.mmm` (WebVTT) -> seconds."""
    parts = [float(p) for p in stamp.replace(",", ".").split(":")]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


def read_subtitles(path: str | Path) -> list[SubtitleCue]:
    """The cues of an .srt or .vtt file in file order; an unparsable file, or a cue that ends
    before it starts, is an error naming the file (and the cue number)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise WhisperforgeError(f"{path}: cannot read the subtitle file ({one_line(e)})") from e
    cues = _read_vtt(path, text) if path.suffix.lower() == ".vtt" else _read_srt(path, text)
    for cue in cues:
        if cue.end <= cue.start:
            raise WhisperforgeError(
                f"{path}: cue {cue.number}: ends ({cue.end:.3f} s) before it starts "
                f"({cue.start:.3f} s)"
            )
    return cues


def _read_srt(path: Path, text: str) -> list[SubtitleCue]:
    import srt

    try:
        # ignore_errors=False: a malformed block is an error, not silently skipped text.
        parsed = list(srt.parse(text))
    except srt.SRTParseError as e:
        # srt says where parsing stopped as a character offset: name the cue block around it.
        line = text[: getattr(e, "actual_start", 0)].count("\n") + 1
        raise WhisperforgeError(
            f"{path}: not a valid SRT file near line {line} ({one_line(e)})"
        ) from e
    return [
        SubtitleCue(number, c.start.total_seconds(), c.end.total_seconds(), c.content)
        for number, c in enumerate(parsed, start=1)
    ]


def _read_vtt(path: Path, text: str) -> list[SubtitleCue]:
    import webvtt

    try:
        captions = webvtt.from_string(text)
    except (webvtt.errors.MalformedFileError, webvtt.errors.MalformedCaptionError) as e:
        raise WhisperforgeError(f"{path}: not a valid WebVTT file ({one_line(e)})") from e
    return [
        SubtitleCue(number, _seconds(c.start), _seconds(c.end), c.raw_text)
        for number, c in enumerate(captions, start=1)
    ]


def timestamp(seconds: float, separator: str = ",") -> str:
    """`HH:MM:SS,mmm` (SRT; separator "." for WebVTT)."""
    ms = round(seconds * 1000)
    hms = f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}"
    return f"{hms}{separator}{ms % 1000:03d}"


# --------------------------------------------------------------------------- cue text -> label

_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_SOUND_NOTE = re.compile(r"\[[^\]]*\]|【[^】]*】|（[^）]*）|\([^)]*\)|[♪♫♬]+")
_SPEAKER_DASH = re.compile(r"^\s*[-－—–]+\s*", re.MULTILINE)
_CJK = r"\u3400-\u9fff\uf900-\ufaff"
# A space with a Chinese character on either side: subtitle style's stand-in for punctuation.
_SPACE_BY_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")


def _to_half_width(text: str) -> str:
    return "".join(
        unicodedata.normalize("NFKC", ch) if ch == "\u3000" or "\uff01" <= ch <= "\uff5e" else ch
        for ch in text
    )


def _is_punctuation(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("P", "S")


def clean_cue_text(text: str, script: str | None) -> tuple[str, Counter]:
    """A cue's label text and the count of each kind of change made (see the module doc)."""
    changes: Counter = Counter()

    def sub(pattern: re.Pattern, kind: str, value: str, repl: str = "") -> str:
        new, n = pattern.subn(repl, value)
        changes[kind] += n
        return new

    text = sub(_MARKUP, "markup", text)
    text = sub(_SOUND_NOTE, "sound_notes", text)
    text = sub(_SPEAKER_DASH, "speaker_dashes", text)
    half = _to_half_width(text)
    changes["full_width"] += sum(a != b for a, b in zip(text, half, strict=False))
    text = sub(_SPACE_BY_CJK, "spaces_for_punctuation", half.strip())  # line breaks too
    changes["punctuation"] += sum(_is_punctuation(ch) for ch in text)
    # Punctuation between latin words leaves one space; next to a Chinese character, none.
    text = "".join(" " if _is_punctuation(ch) else ch for ch in text)
    text = _SPACES.sub(" ", _SPACE_BY_CJK.sub("", text)).strip()
    if script is not None:
        import zhconv

        converted = zhconv.convert(text, SCRIPTS[script])
        changes[f"to_{script}"] += sum(a != b for a, b in zip(text, converted, strict=False))
        text = converted
    return text, +changes
