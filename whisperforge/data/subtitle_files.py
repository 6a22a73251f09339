"""Reading a user's subtitle files (SRT, WebVTT, ASS/SSA) and turning cue text into training labels.

Files are read as Chinese users keep them (`read_subtitle_file`): the encoding is found from a
byte-order mark (UTF-8, UTF-16 LE/BE), else strict UTF-8, else charset-normalizer's best guess
among the Chinese legacy encodings (GB18030 for GBK/GB2312 text, a superset; Big5); the format
from the text (pysubs2), else the file's extension. Line ends may be CRLF. What is not speech
never becomes a cue, and is counted: ASS `Comment:` events (`comment_event`), vector drawings
(`drawing`), events whose style names a sign, note, title or song (`sign_style`, see
`SIGN_STYLE_WORDS`); ASS override tags (`{\\fn...}`, karaoke `{\\k20}`) and `\\N` breaks are
not text (`markup`, as for SRT below).

Subtitle text is not a transcript. `clean_cue_text` undoes what subtitle style adds, counting each
kind of change so that the corpus's stats say what was done to the user's text:

- markup: HTML-like tags (`<i>`, `<font ...>`) and ASS override blocks (`{\\an8}`);
- sound notes: `[音乐]`, `【掌声】`, `（笑）`, `(applause)`, music notes — not speech;
- translation lines: a bilingual cue (简英, 繁英) keeps the lines in the spoken language (a line
  with a Han character is Chinese; one with latin letters and no Han is English) and drops the
  others (`translation_line`); a cue with no line in that language is `other_language`;
- speaker dashes at the start of a line (`- 你好`, `－对`);
- full-width forms -> half-width (`ａｂｃ` -> `abc`, U+3000 -> space);
- the spaces Chinese subtitles put where punctuation would be, and punctuation itself: AISHELL's
  labels (the main corpus) have neither, so the corpus's labels drop them too;
- traditional -> simplified (or back) when the corpus's `script` asks (zhconv).

Spaces between two latin words are kept (one each), as in AISHELL's `ａ股`-style mixed lines.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from whisperforge.core.errors import WhisperforgeError, one_line

if TYPE_CHECKING:
    import pysubs2

SCRIPTS = {"simplified": "zh-hans", "traditional": "zh-hant"}
# data.corpora.NAME.language (schemas/config.schema.yaml) -> Whisper's name of it
LANGUAGES = {"zh": "Chinese", "en": "English"}
DEFAULT_LANGUAGE = "zh"

# Byte-order marks, exact: (mark, Python codec, the name stats give).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig", "utf-8-bom"),
    (codecs.BOM_UTF16_LE, "utf-16", "utf-16le-bom"),
    (codecs.BOM_UTF16_BE, "utf-16", "utf-16be-bom"),
)
# What charset-normalizer may guess for a file that is not UTF-8: a looser list lets it call a
# short GBK file cp1252 or Shift-JIS (mojibake labels, not an error).
LEGACY_ENCODINGS = ("gb18030", "gbk", "gb2312", "big5", "big5hkscs")
_DECODER = {"gbk": "gb18030", "gb2312": "gb18030"}  # GB18030 decodes all of both, and more

FORMATS = {".srt": "srt", ".vtt": "vtt", ".ass": "ass", ".ssa": "ssa"}
_NAMES = {"srt": "SRT", "vtt": "WebVTT", "ass": "ASS", "ssa": "SSA"}
# An event whose style name holds one of these (case-insensitive) is on-screen text, not speech:
# signs, translator's notes, titles and credits, song lyrics. Short or common words only whole
# (SIGN_STYLE_TOKENS), so that "Top", "Speed" or "Subtitle" is no sign.
SIGN_STYLE_WORDS = (
    "sign", "note", "credit", "staff", "lyric", "karaoke", "song",
    "注释", "注釋", "屏幕", "标题", "標題", "片头", "片頭", "片尾", "歌词", "歌詞", "制作", "製作",
)  # fmt: skip
SIGN_STYLE_TOKENS = ("op", "ed", "kara", "title")
_WORDS = re.compile(r"[a-z]+")
_DRAWING = re.compile(r"\\p[1-9]")


@dataclass(frozen=True)
class SubtitleCue:
    """One cue as the file has it: its number (1-based, as editors show it: an ASS file's events
    counted with its comments and signs), times in seconds, the text (lines joined by newlines;
    an SRT or WebVTT cue's markup kept for `clean_cue_text` to count, an ASS event's removed)."""

    number: int
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class SubtitleFile:
    """A subtitle file's speech cues, how it was read, and what was left out as not speech."""

    cues: list[SubtitleCue]
    encoding: str  # utf-8, utf-8-bom, utf-16le-bom, utf-16be-bom, gb18030, big5, ...
    format: str  # srt, vtt, ass, ssa
    changes: Counter = field(default_factory=Counter)  # comment_event, sign_style, markup, ...


def read_subtitles(path: str | Path) -> list[SubtitleCue]:
    """The speech cues of a subtitle file in file order (`read_subtitle_file`)."""
    return read_subtitle_file(path).cues


def read_subtitle_file(path: str | Path) -> SubtitleFile:
    """An .srt, .vtt, .ass or .ssa file in any encoding of the module doc; an unreadable or
    unparsable file, or a cue that ends before it starts, is an error naming the file (and the
    cue number)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WhisperforgeError(f"{path}: cannot read the subtitle file ({one_line(e)})") from e
    text, encoding = decode_subtitles(path, data)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fmt = _format_of(path, text)
    if fmt in ("ass", "ssa"):
        cues, changes = _ass_cues(path, text, fmt)
    else:
        cues, changes = _srt_or_vtt_cues(path, text, fmt), Counter()
    for cue in cues:
        if cue.end <= cue.start:
            raise WhisperforgeError(
                f"{path}: cue {cue.number}: ends ({cue.end:.3f} s) before it starts "
                f"({cue.start:.3f} s)"
            )
    return SubtitleFile(cues, encoding, fmt, +changes)


def decode_subtitles(path: Path, data: bytes) -> tuple[str, str]:
    """The file's text and its encoding's name: a byte-order mark, else strict UTF-8, else
    charset-normalizer's guess among LEGACY_ENCODINGS, decoded strictly."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), name
            except UnicodeDecodeError as e:
                raise WhisperforgeError(
                    f"{path}: starts with a {name} byte-order mark but is not {name} text "
                    f"({one_line(e)})"
                ) from e
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    guesses = list(from_bytes(data, cp_isolation=list(LEGACY_ENCODINGS)))
    if guesses:
        # A few short lines of GBK also read as clean Big5 (and back): on a tie GB18030, the
        # mainland's encoding, wins. Two cues are enough to break the tie on real subtitles.
        best = min(guesses, key=lambda m: (round(m.chaos, 3), -m.coherence, _rank(m.encoding)))
        name = _DECODER.get(best.encoding, best.encoding)
        try:
            return data.decode(name), name
        except UnicodeDecodeError:
            pass
    raise WhisperforgeError(
        f"{path}: not text in any encoding read (UTF-8, UTF-16 with a byte-order mark, "
        "GB18030/GBK, Big5): save it as UTF-8"
    )


def _rank(encoding: str) -> int:
    decoder = _DECODER.get(encoding, encoding)
    return LEGACY_ENCODINGS.index(decoder) if decoder in LEGACY_ENCODINGS else len(LEGACY_ENCODINGS)


def _format_of(path: Path, text: str) -> str:
    """pysubs2's reading of the text (a .srt that is really ASS happens), else the extension."""
    from pysubs2.exceptions import FormatAutodetectionError
    from pysubs2.formats import autodetect_format

    try:
        found = autodetect_format(text)
    except FormatAutodetectionError:
        found = None
    return found if found in FORMATS.values() else FORMATS.get(path.suffix.lower(), "srt")


def _parse(path: Path, text: str, fmt: str, **options: bool) -> pysubs2.SSAFile:
    import pysubs2

    if fmt == "vtt" and not text.startswith("WEBVTT"):
        raise WhisperforgeError(f"{path}: not a valid WebVTT file (no WEBVTT header)")
    try:
        return pysubs2.SSAFile.from_string(text, format_=fmt, **options)
    except (pysubs2.exceptions.Pysubs2Error, ValueError, KeyError) as e:
        raise WhisperforgeError(f"{path}: not a valid {_NAMES[fmt]} file ({one_line(e)})") from e


def _srt_or_vtt_cues(path: Path, text: str, fmt: str) -> list[SubtitleCue]:
    # keep_html_tags: the raw text reaches clean_cue_text, which counts the markup it removes.
    from pysubs2.formats import get_format_class

    subs = _parse(path, text, fmt, keep_html_tags=True)
    # pysubs2 skips a timing line it cannot read, and the cue with it: an error instead.
    stamp = get_format_class(fmt).TIMESTAMP
    for i, line in enumerate(text.split("\n"), start=1):
        if "-->" in line and len(stamp.findall(line)) != 2:
            raise WhisperforgeError(
                f"{path}: not a valid {_NAMES[fmt]} file near line {i} (not a timing line: "
                f"{line.strip()[:60]!r})"
            )
    cues = []
    for number, event in enumerate(subs.events, start=1):
        lines = event.text.replace("\\N", "\n")
        # A blank line ends a WebVTT cue: what follows is a NOTE block or the next cue's id.
        if fmt == "vtt":
            lines = lines.split("\n\n")[0]
        cues.append(SubtitleCue(number, event.start / 1000, event.end / 1000, lines))
    return cues


def _is_sign_style(style: str) -> bool:
    lowered = style.lower()
    return any(word in lowered for word in SIGN_STYLE_WORDS) or any(
        token in SIGN_STYLE_TOKENS for token in _WORDS.findall(lowered)
    )


def _ass_cues(path: Path, text: str, fmt: str) -> tuple[list[SubtitleCue], Counter]:
    """Dialogue events as cues (plain text: no override tags, `\\N` as a line break), numbered
    as editors number events; comments, drawings and sign styles only counted."""
    subs = _parse(path, text, fmt)
    cues, changes = [], Counter()
    for number, event in enumerate(subs.events, start=1):
        if event.is_comment:
            changes["comment_event"] += 1
        elif _DRAWING.search(event.text):
            changes["drawing"] += 1
        elif _is_sign_style(event.style):
            changes["sign_style"] += 1
        else:
            changes["markup"] += len(event.OVERRIDE_SEQUENCE.findall(event.text))
            cues.append(
                SubtitleCue(number, event.start / 1000, event.end / 1000, event.plaintext.strip())
            )
    return cues, changes


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
# A line is Chinese if it holds a Han character (the BMP blocks above, and the supplementary
# ideographs GB18030 can write); English if it has latin letters (full-width too) and no Han.
_HAN = re.compile(rf"[{_CJK}\U00020000-\U0003134f]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f\uff21-\uff3a\uff41-\uff5a]")


def _line_language(line: str) -> str | None:
    """zh, en, or None for a line with neither (digits, punctuation, nothing)."""
    return "zh" if _HAN.search(line) else "en" if _LATIN.search(line) else None


def keep_spoken_lines(text: str, language: str) -> tuple[str, Counter]:
    """The cue's lines in `language`, and what was dropped: `translation_line` per line in another
    language beside one in `language` (a bilingual cue), `other_language` (all its text dropped)
    when no line is in `language` but one is in another."""
    lines = text.split("\n")
    found = [_line_language(line) for line in lines]
    others = sum(lang not in (None, language) for lang in found)
    if not others:
        return text, Counter()
    if language not in found:
        return "", Counter(other_language=1)
    kept = [line for line, lang in zip(lines, found, strict=True) if lang in (None, language)]
    return "\n".join(kept), Counter(translation_line=others)


def _to_half_width(text: str) -> str:
    return "".join(
        unicodedata.normalize("NFKC", ch) if ch == "\u3000" or "\uff01" <= ch <= "\uff5e" else ch
        for ch in text
    )


def _is_punctuation(ch: str) -> bool:
    return unicodedata.category(ch)[0] in ("P", "S")


def clean_cue_text(
    text: str, script: str | None, language: str = DEFAULT_LANGUAGE
) -> tuple[str, Counter]:
    """A cue's label text and the count of each kind of change made (see the module doc);
    `language`: what is spoken (LANGUAGES), the lines in another are translations."""
    changes: Counter = Counter()

    def sub(pattern: re.Pattern, kind: str, value: str, repl: str = "") -> str:
        new, n = pattern.subn(repl, value)
        changes[kind] += n
        return new

    text = sub(_MARKUP, "markup", text)
    text = sub(_SOUND_NOTE, "sound_notes", text)
    # After markup and sound notes: `[Music]` is no English line, `{\\fnArial}` no latin text.
    text, dropped = keep_spoken_lines(text, language)
    changes.update(dropped)
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
