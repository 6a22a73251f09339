"""Subtitles (SRT, WebVTT, plain text) for your own recordings, from a CTranslate2 export.

How a recording becomes cues:

1. PyAV (through faster-whisper's `decode_audio`) decodes any wav/flac/mp3/m4a/mp4/mkv to 16 kHz
   mono. An empty or undecodable file, or one with no speech, is a `WhisperforgeError` naming it.
2. Silero VAD (shipped in the faster-whisper wheel) finds the speech, in chunks of at most
   `max_segment_s` (`VadOptions.max_speech_duration_s`; a longer stretch of speech is cut at its
   last pause, else hard). Without VAD the audio is cut into consecutive `max_segment_s` windows.
3. `WhisperModel.transcribe` decodes those chunks as `clip_timestamps`, text only: each chunk
   (shorter than Whisper's 30 s window) is one decoding window, and its cue spans exactly the
   chunk. Cue times therefore come from the VAD, never from Whisper's timestamp tokens, which a
   model fine-tuned without timestamps (`train.timestamps: false`, the default) has unlearned.
   `condition_on_previous_text` (off in the shipped config) carries each chunk's text into the
   next prompt.
4. A cue longer than `max_line_chars` characters is split into several cues of balanced length,
   preferably after punctuation, with the time split in proportion to the characters, or at the
   words' own times when `word_timestamps` is on.

5. Each cue carries its decode's confidence (avg_logprob, no_speech_prob, compression_ratio);
   `to_review_tsv` lists the written cues least sure first, for a person correcting them.

Decoding is deterministic (temperature 0, no fallback, no no-speech skipping), so the same
recording and model always give the same bytes.

The audio stack (numpy, faster-whisper) is imported where it is used, so that
rules/subtitles.smk can import the constants into a Snakemake without it (`--sdm conda`).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whisperforge.core.audio import SAMPLE_RATE
from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import write_text
from whisperforge.core.options import SubtitleOptions

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = ("wav", "flac", "mp3", "m4a", "mp4", "mkv")
# A recording's file name: no folder, one of AUDIO_EXTENSIONS in any case (a wildcard constraint).
_ANY_CASE = [
    "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in x) for x in AUDIO_EXTENSIONS
]
RECORDING_NAME = r"[^/]+\.(?:" + "|".join(_ANY_CASE) + ")"
BEST = "best"
SCRIPTS = {"simplified": "zh-hans", "traditional": "zh-hant"}  # script only, no regional words
SILENCE_PEAK = 10 ** (-60 / 20)  # without VAD: a peak below -60 dBFS is a silent recording
# A cap on the tokens decoded per clip: Mandarin is ~5 characters a second and Whisper's BPE
# needs at most ~2 tokens a character, so this bounds runaway repetition loops, nothing real.
MAX_TOKENS_PER_S = 25
DECODER_POSITIONS = 448
PUNCTUATION = set("，。！？；：、,.!?;:…")


@dataclass(frozen=True)
class Word:
    """One word (for Chinese: one character, punctuation attached) with its own times."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Cue:
    """One subtitle: times in seconds from the start of the recording, one line of text.

    The model's confidence in the text, from faster-whisper's segments (None for cues that did not
    come from a decode, e.g. a person's subtitles): `avg_logprob` (mean log-probability of its
    tokens), `no_speech_prob` (the model's probability that the clip holds no speech) and
    `compression_ratio` (zlib ratio of the text: above ~2.4 it repeats itself). A cue split by
    `split_long_cues` keeps the values of the cue it came from.
    """

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None


def is_recording(name: str) -> bool:
    """Whether a file name in the inputs folder gets subtitles (hidden files do not)."""
    return not name.startswith(".") and re.fullmatch(RECORDING_NAME, name) is not None


# --- audio and speech ---------------------------------------------------------------------------


def speech_clips(audio: np.ndarray, options: SubtitleOptions) -> list[tuple[float, float]]:
    """(start, end) seconds of each stretch of speech, none longer than `max_segment_s`.

    With `vad`, silero VAD's chunks (padded by `vad_speech_pad_ms`, split at pauses of at least
    `vad_min_silence_ms` or when longer than `max_segment_s`); else consecutive windows.
    """
    max_segment_s = options.max_segment_s
    total = len(audio) / SAMPLE_RATE
    if not options.vad:
        n = max(1, math.ceil(total / max_segment_s))
        return [(i * max_segment_s, min(total, (i + 1) * max_segment_s)) for i in range(n)]
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad_options = VadOptions(
        max_speech_duration_s=max_segment_s,
        min_silence_duration_ms=options.vad_min_silence_ms,
        speech_pad_ms=options.vad_speech_pad_ms,
    )
    clips = []
    for chunk in get_speech_timestamps(audio, vad_options, sampling_rate=SAMPLE_RATE):
        start, end = chunk["start"] / SAMPLE_RATE, chunk["end"] / SAMPLE_RATE
        n = max(1, math.ceil((end - start) / max_segment_s - 1e-9))  # VAD keeps the bound
        step = (end - start) / n
        clips.extend((start + i * step, start + (i + 1) * step) for i in range(n))
    return clips


def _frame(seconds: float) -> int:
    """The 10 ms feature frame faster-whisper seeks to for a clip bound."""
    return round(seconds * 100)


# --- decoding -----------------------------------------------------------------------------------


def _converter(script: str | None):
    """A text -> text function putting Chinese into the configured script (identity for None)."""
    if script is None:
        return lambda text: text
    import zhconv

    return lambda text: zhconv.convert(text, SCRIPTS[script])


def _token_request(longest_clip_s: float, with_previous_text: bool) -> int:
    """`max_new_tokens` that lets a clip decode MAX_TOKENS_PER_S tokens a second.

    CTranslate2 4.x ends a Whisper decode at about half of prompt + `max_new_tokens`
    (OpenNMT/CTranslate2#1856; measured with 4.8.5: 20, 50, 100 -> 12, 27, 52 tokens), so the
    request is twice the budget, kept within the decoder's positions: the prompt takes 4 of them,
    and up to 224 more with the previous text.
    """
    prompt = 4 + (DECODER_POSITIONS // 2 if with_previous_text else 0)
    budget = math.ceil(MAX_TOKENS_PER_S * longest_clip_s)
    return min(2 * budget, DECODER_POSITIONS - prompt)


def _decode_clips(
    model, audio: np.ndarray, clips: list[tuple[float, float]], opts: SubtitleOptions
) -> list:
    """faster-whisper segments of the clips, text only; only each clip's first window is kept.

    With word timestamps faster-whisper seeks back to the last word's end and decodes the rest
    of the clip again (usually a pad of silence, where models hallucinate): those later windows
    are dropped, since the first window already saw the whole clip.
    """
    tokenizer = model.hf_tokenizer
    first_timestamp = tokenizer.token_to_id("<|notimestamps|>") + 1
    segments, _ = model.transcribe(
        audio,
        language=opts.language,
        task="transcribe",
        beam_size=opts.beam_size,
        temperature=0.0,
        condition_on_previous_text=opts.condition_on_previous_text,
        without_timestamps=True,
        word_timestamps=opts.word_timestamps,
        no_speech_threshold=None,
        # A stray pair of timestamp tokens would split the clip's text and send faster-whisper
        # back into the clip for the rest, which the filter below would then lose.
        suppress_tokens=[-1, *range(first_timestamp, tokenizer.get_vocab_size())],
        max_new_tokens=_token_request(
            max(end - start for start, end in clips), opts.condition_on_previous_text
        ),
        vad_filter=False,
        clip_timestamps=[t for clip in clips for t in clip],
    )
    first_frames = {_frame(start) for start, _ in clips}
    return [s for s in segments if s.seek in first_frames]


def _confidence(segments: list) -> dict[str, float | None]:
    """A clip's confidence from its segments (usually one): the token-weighted mean
    log-probability, and the least reassuring no-speech probability and compression ratio."""
    if not segments:
        return {}
    weights = [max(1, len(s.tokens or ())) for s in segments]
    logprob = sum(w * s.avg_logprob for w, s in zip(weights, segments, strict=True)) / sum(weights)
    return {
        "avg_logprob": float(logprob),
        "no_speech_prob": float(max(s.no_speech_prob for s in segments)),
        "compression_ratio": float(max(s.compression_ratio for s in segments)),
    }


def _cues_from_segments(segments: list, clips: list[tuple[float, float]], convert) -> list[Cue]:
    """One cue per clip that got text; spans the clip, text and words of its segments joined,
    with the segments' confidence (`_confidence`)."""
    clip_at = {_frame(start): i for i, (start, _) in enumerate(clips)}
    by_clip: dict[int, list] = {}
    for segment in segments:
        # _decode_clips kept only windows starting at a clip
        by_clip.setdefault(clip_at[segment.seek], []).append(segment)
    cues = []
    for i in sorted(by_clip):
        texts = [s.text.strip() for s in by_clip[i]]
        text = convert(" ".join(t for t in texts if t).strip())
        words = tuple(
            Word(w.start, w.end, convert(w.word)) for s in by_clip[i] for w in s.words or ()
        )
        if text:
            cues.append(Cue(clips[i][0], clips[i][1], text, words, **_confidence(by_clip[i])))
    return cues


def transcribe_to_cues(model, audio_path: str | Path, opts: SubtitleOptions) -> list[Cue]:
    """One cue per stretch of speech in the recording (before `split_long_cues`).

    Raises a WhisperforgeError naming the file when it is empty, cannot be decoded, holds no
    speech, or the model writes no text for it.
    """
    return transcribe_recording(model, audio_path, opts)[0]


def transcribe_recording(
    model, audio_path: str | Path, opts: SubtitleOptions
) -> tuple[list[Cue], float]:
    """`transcribe_to_cues`'s cues and the recording's length in seconds."""
    from whisperforge.data.media import decode_recording

    path = Path(audio_path)
    audio = decode_recording(path)
    seconds = len(audio) / SAMPLE_RATE
    if not opts.vad and float(abs(audio).max()) < SILENCE_PEAK:
        raise WhisperforgeError(f"{path}: silent recording ({seconds:.1f} s below -60 dBFS)")
    clips = speech_clips(audio, opts)
    if not clips:
        raise WhisperforgeError(f"{path}: no speech found in {seconds:.1f} s of audio (silent?)")
    segments = _decode_clips(model, audio, clips, opts)
    cues = _cues_from_segments(segments, clips, _converter(opts.script))
    if not cues:
        raise WhisperforgeError(
            f"{path}: the model wrote no text for {len(clips)} stretches of speech"
        )
    log.info("%s: %.1f s, %d speech clips, %d cues", path, seconds, len(clips), len(cues))
    return cues, seconds


# --- line splitting -----------------------------------------------------------------------------

_UNIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9'.%+-]*|\s+|.", re.S)


def _units(cue: Cue) -> list[tuple[str, Word | None]]:
    """What a line may break between: the cue's words, or latin words, spaces and characters."""
    if cue.words and "".join(w.text for w in cue.words).strip():
        return [(w.text, w) for w in cue.words]
    return [(m.group(), None) for m in _UNIT.finditer(cue.text)]


def _greedy_lines(units: list[str], width: int) -> list[list[int]]:
    """Fill lines up to `width` characters; on overflow break after the line's last punctuation
    when that leaves the line at least a third full (and the carried rest fits the next line)."""
    lines: list[list[int]] = [[]]

    def length(indices: list[int]) -> int:
        return len("".join(units[k] for k in indices).strip())

    for i in range(len(units)):
        line = lines[-1]
        if line and length([*line, i]) > width:
            cuts = [k for k in range(len(line)) if units[line[k]].strip()[-1:] in PUNCTUATION]
            cut = cuts[-1] + 1 if cuts else len(line)
            if cut < len(line) / 3 or length([*line[cut:], i]) > width:
                cut = len(line)
            lines[-1:] = [line[:cut], line[cut:]]
        lines[-1].append(i)
    return [line for line in lines if length(line)]


def _break_lines(units: list[str], max_chars: int, n_lines: int) -> list[list[int]]:
    """Indices of the units on each line: the narrowest balanced width that needs at most
    `n_lines` lines, else `max_chars`-wide lines."""
    total = len("".join(units).strip())
    for width in range(max(1, math.ceil(total / n_lines)), max_chars + 1):
        lines = _greedy_lines(units, width)
        if len(lines) <= n_lines:
            return lines
    return _greedy_lines(units, max_chars)


def _hard_split(text: str, max_chars: int) -> list[str]:
    return [text[i : i + max_chars] for i in range(0, len(text), max_chars)] or [text]


def _split_cue(cue: Cue, max_chars: int, max_segment_s: float | None) -> list[Cue]:
    """`cue` as consecutive cues within both limits, covering exactly its time span."""
    texts: list[str] = []
    words: list[Word | None] = []
    for unit, word in _units(cue):
        for piece in _hard_split(unit, max_chars):
            texts.append(piece)
            words.append(word)
    n_lines = math.ceil(len(cue.text.strip()) / max_chars)
    if max_segment_s:
        n_lines = max(n_lines, math.ceil((cue.end - cue.start) / max_segment_s - 1e-9))
    n_lines = min(n_lines, sum(1 for t in texts if t.strip()))
    if n_lines <= 1 and len(cue.text.strip()) <= max_chars:
        return [cue]
    lines = _break_lines(texts, max_chars, max(1, n_lines))
    chars = sum(len(t) for t in texts)
    bounds, done = [cue.start], 0
    for line, following in itertools.pairwise(lines):
        done += sum(len(texts[k]) for k in line)
        word = words[following[0]]
        at = word.start if word is not None else cue.start + (cue.end - cue.start) * done / chars
        bounds.append(min(max(at, bounds[-1]), cue.end))
    bounds.append(cue.end)
    return [
        replace(
            cue,
            start=bounds[j],
            end=bounds[j + 1],
            text="".join(texts[k] for k in line).strip(),
            words=(),
        )
        for j, line in enumerate(lines)
    ]


def split_long_cues(
    cues: Sequence[Cue], max_line_chars: int, max_segment_s: float | None = None
) -> list[Cue]:
    """Cues of at most `max_line_chars` characters (and `max_segment_s` seconds, if given).

    A longer cue becomes consecutive cues of balanced length covering the same time span,
    breaking after punctuation where that keeps lines at least a third full; each new boundary is
    the next word's start when the cue has word timestamps, else proportional to characters.
    """
    out: list[Cue] = []
    for cue in cues:
        out.extend(
            replace(piece, words=())
            for piece in _split_cue(cue, max_line_chars, max_segment_s)
            if piece.text
        )
    return out


# --- formats ------------------------------------------------------------------------------------


def _timestamp(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _squash_spaces(text: str) -> str:
    return " ".join(text.split())


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip text: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    blocks = [
        f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{_squash_spaces(c.text)}\n"
        for i, c in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _squash_spaces(text)


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT text: the `WEBVTT` header, then `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues."""
    blocks = [
        f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{_vtt_escape(c.text)}\n"
        for c in cues
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def to_txt(cues: Sequence[Cue]) -> str:
    """A plain transcript: one line per cue (write_subtitles passes the unsplit cues)."""
    return "".join(f"{_squash_spaces(c.text)}\n" for c in cues)


REVIEW_COLUMNS = (
    "rank",
    "cue",
    "start",
    "end",
    "avg_logprob",
    "no_speech_prob",
    "compression_ratio",
    "text",
)


def _review_key(numbered: tuple[int, Cue]) -> tuple:
    """Least sure first: lowest mean log-probability, then the most repetitive text (highest
    compression ratio), then the most likely silence, then the order in the .srt. Cues without a
    confidence come last, in .srt order."""
    number, cue = numbered
    if cue.avg_logprob is None:
        return (1, 0.0, 0.0, 0.0, number)
    return (
        0,
        cue.avg_logprob,
        -(cue.compression_ratio or 0.0),
        -(cue.no_speech_prob or 0.0),
        number,
    )


def _number(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def to_review_tsv(cues: Sequence[Cue]) -> str:
    """The cues as `to_srt` numbers and writes them, least sure first (`_review_key`), as TSV
    with REVIEW_COLUMNS: rank (1 = check first), cue (its number in the .srt), start and end (as
    in the .srt), the model's avg_logprob, no_speech_prob and compression_ratio, the text."""
    rows = ["\t".join(REVIEW_COLUMNS)]
    ranked = sorted(enumerate(cues, 1), key=_review_key)
    for rank, (number, cue) in enumerate(ranked, 1):
        fields = [
            str(rank),
            str(number),
            _timestamp(cue.start, ","),
            _timestamp(cue.end, ","),
            _number(cue.avg_logprob),
            _number(cue.no_speech_prob),
            _number(cue.compression_ratio),
            _squash_spaces(cue.text),
        ]
        rows.append("\t".join(fields))
    return "".join(f"{row}\n" for row in rows)


# --- the workflow step ----------------------------------------------------------------------------


def resolve_model(requested: str, cer_files: Mapping[tuple[str, str], Path]) -> str:
    """The model a subtitle job uses: `requested`, or for "best" the run with the lowest test CER.

    `cer_files` maps (model, split) to a cer.json, as for `whisperforge.metrics.score.best_run`.
    """
    from whisperforge.metrics.score import best_run

    if requested == BEST:
        return best_run(cer_files, "test")
    return requested


def write_subtitles(
    ct2_dir: str | Path,
    audio_path: str | Path,
    out_srt: str | Path,
    out_vtt: str | Path,
    out_txt: str | Path,
    opts: SubtitleOptions,
    *,
    compute_type: str,
    threads: int = 2,
    out_review: str | Path | None = None,
) -> dict[str, Any]:
    """Transcribe one recording; write .srt and .vtt (split cues), .txt (one line per stretch)
    and, given `out_review`, the .srt's cues least sure first (`to_review_tsv`).

    Nothing is written unless the whole recording was transcribed; each file is written
    atomically. Returns facts for the log: cues, seconds of audio and of decoding, device.
    """
    from whisperforge.decode.transcribe import load_model

    t0 = time.perf_counter()
    model, device, ctype = load_model(ct2_dir, compute_type, threads)
    cues = transcribe_to_cues(model, audio_path, opts)
    lines = split_long_cues(cues, opts.max_line_chars, opts.max_segment_s)
    write_text(out_srt, to_srt(lines))
    write_text(out_vtt, to_vtt(lines))
    write_text(out_txt, to_txt(cues))
    if out_review is not None:
        write_text(out_review, to_review_tsv(lines))
    facts = {
        "audio": str(audio_path),
        "model": str(ct2_dir),
        "speech_segments": len(cues),
        "cues": len(lines),
        "seconds": round(time.perf_counter() - t0, 3),
        "device": device,
        "compute_type": ctype,
    }
    written = [p for p in (out_srt, out_vtt, out_txt, out_review) if p is not None]
    log.info("wrote %s: %s", ", ".join(map(str, written)), facts)
    return facts
