"""One recording and its subtitle file -> checked training windows, a report, rejected cues.

1. The recording is decoded once to 16 kHz mono (`<corpus>/<name>.wav` under results/data/); the
   windows point into it with Whisper-Finetune's `audio.start_time`/`end_time`.
2. The subtitle file is read (SRT, WebVTT, ASS/SSA; UTF-8/16, GB18030, Big5) and each cue's text
   cleaned into a label in the corpus's `language` (subtitle_files.py): a bilingual cue keeps
   its spoken lines, a cue in another language only is dropped.
3. Silero VAD (inside faster-whisper) finds the speech; the cues' global offset (and drift) is
   estimated against it and applied when confident (timing.py).
4. Cues are dropped with a reason: no words (a sound note only), longer than `max_audio_s`,
   over Whisper's 448 label tokens, or text that does not fit its audio (segment_check.py).
5. Consecutive kept cues are merged into windows of at most `max_audio_s`, cut only between cues;
   a dropped cue, or speech that no cue covers (an aside nobody subtitled), ends a window, so no
   window holds words its text lacks. Stretches with neither speech nor cue become empty-text
   windows, `no_speech_fraction` of the speech windows' count (seeded), so the model learns
   silence instead of hallucinating on it.

Outputs: the windows (JSONL, Whisper-Finetune's format with `sentences` relative to the window,
plus `recording` and `speaker`), one report row per cue (kept or the reason), the dropped cues as
an .srt at the file's own times with the reason in the text (to open beside the video in any
subtitle editor), and the recording's facts and reference cues (JSON). Nothing is written unless
all of it is.
"""

from __future__ import annotations

import csv
import io
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from whisperforge.core.audio import SAMPLE_RATE
from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import atomic_path, write_json, write_text
from whisperforge.data.subtitle_files import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    SubtitleCue,
    clean_cue_text,
    read_subtitle_file,
    timestamp,
)
from whisperforge.data.timing import Timing, estimate_timing

log = logging.getLogger(__name__)

MAX_LABEL_TOKENS = 448  # Whisper's decoder positions
KEPT = "kept"
OTHER_LANGUAGE = "other language"  # a cue with no line in the corpus's language
EDGE_PAD_S = 0.2  # silence kept before and after a window's first and last cue, at most
MIN_NO_SPEECH_S = 2.0  # shorter silent stretches make no empty-text window
VAD_MIN_SILENCE_MS = 200  # timing and the speech-outside-cues check want tight speech bounds
REPORT_COLUMNS = ("recording", "cue", "start", "end", "text", "label", "status", "fit_margin")


@dataclass(frozen=True)
class CueRecord:
    """One cue of the file, timed onto the audio, with its label and what became of it."""

    number: int
    file_start: float  # as in the subtitle file
    file_end: float
    start: float  # after the offset/drift was applied
    end: float
    text: str  # the file's text, lines joined by " / "
    label: str
    status: str = KEPT
    fit_margin: float | None = None


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    cues: tuple[CueRecord, ...]  # empty: a no-speech window


def speech_intervals(audio: np.ndarray) -> list[tuple[float, float]]:
    """Where Silero VAD hears speech (seconds), unpadded, split at pauses of 0.2 s."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(min_silence_duration_ms=VAD_MIN_SILENCE_MS, speech_pad_ms=30)
    return [
        (c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE)
        for c in get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
    ]


def _overlap(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(e, end) - max(s, start)) for s, e in intervals)


def _join(left: str, right: str) -> str:
    """Labels of consecutive cues: Chinese joins without a space, two latin words with one."""
    if left and right and left[-1].isascii() and left[-1].isalnum() and right[0].isascii():
        return f"{left} {right}"
    return left + right


def timed_cues(
    path: Path,
    cues: Sequence[SubtitleCue],
    timing: Timing,
    script: str | None,
    language: str = DEFAULT_LANGUAGE,
) -> tuple[list[CueRecord], Counter]:
    records, changes = [], Counter()
    for cue in cues:
        label, changed = clean_cue_text(cue.text, script, language)
        # A whole cue dropped is a status (the report, rejected.srt), not a change of text.
        other = changed.pop("other_language", 0)
        changes.update(changed)
        text = " / ".join(line.strip() for line in cue.text.splitlines() if line.strip())
        records.append(
            CueRecord(
                cue.number,
                cue.start,
                cue.end,
                round(timing(cue.start), 3),
                round(timing(cue.end), 3),
                text,
                label,
                f"{OTHER_LANGUAGE} (not {language}: data.corpora.NAME.language)" if other else KEPT,
            )
        )
    return records, changes


def drop_unusable(
    cues: list[CueRecord], max_audio_s: float, token_count: Callable[[str], int]
) -> list[CueRecord]:
    """Cues no window may hold: no words, too long for one window, too many label tokens (a cue
    already dropped, as in another language, keeps its reason)."""
    out = []
    for cue in cues:
        status = KEPT
        if cue.status != KEPT:
            status = cue.status
        elif not cue.label:
            status = "no words (a sound note or markup only)"
        elif cue.end - cue.start > max_audio_s:
            status = (
                f"longer than {max_audio_s:g} s ({cue.end - cue.start:.1f} s): not cut mid-word"
            )
        elif token_count(cue.label) > MAX_LABEL_TOKENS - 4:  # the prefix tokens take 4
            status = f"label over {MAX_LABEL_TOKENS} tokens"
        out.append(replace(cue, status=status))
    return out


def build_windows(
    cues: Sequence[CueRecord],
    speech: Sequence[tuple[float, float]],
    duration: float,
    *,
    max_audio_s: float,
    unsubtitled_speech_s: float,
    token_count: Callable[[str], int],
) -> list[Window]:
    """Kept cues merged into windows (see the module doc); times in the recording's seconds."""
    windows: list[Window] = []
    group: list[CueRecord] = []
    ordered = sorted(cues, key=lambda c: c.start)

    def bounds(first: CueRecord, last: CueRecord) -> tuple[float, float]:
        i, j = ordered.index(first), ordered.index(last)
        before = ordered[i - 1].end if i > 0 else 0.0
        after = ordered[j + 1].start if j + 1 < len(ordered) else duration
        start = max(0.0, first.start - min(EDGE_PAD_S, max(0.0, first.start - before) / 2))
        end = min(duration, last.end + min(EDGE_PAD_S, max(0.0, after - last.end) / 2))
        over = (end - start) - max_audio_s  # the padding never takes a window over the limit
        if over > 0:
            start, end = min(first.start, start + over / 2), max(last.end, end - over / 2)
        return round(start, 3), round(end, 3)

    def close() -> None:
        if group:
            windows.append(Window(*bounds(group[0], group[-1]), tuple(group)))
            group.clear()

    for cue in ordered:
        if cue.status != KEPT:
            close()
            continue
        if group:
            gap_speech = _overlap(speech, group[-1].end, cue.start)
            start, end = bounds(group[0], cue)
            text = "".join(c.label for c in group) + cue.label
            if (
                gap_speech > unsubtitled_speech_s
                or end - start > max_audio_s
                or token_count(text) > MAX_LABEL_TOKENS - 4
            ):
                close()
        group.append(cue)
    close()
    return windows


def no_speech_windows(
    cues: Sequence[CueRecord],
    speech: Sequence[tuple[float, float]],
    duration: float,
    *,
    max_audio_s: float,
    count: int,
    seed: int,
) -> list[Window]:
    """`count` seeded stretches with neither speech nor any cue (kept or not), at most
    `max_audio_s` long each."""
    busy = sorted([(c.start, c.end) for c in cues] + list(speech))
    free, t = [], 0.0
    for start, end in busy:
        if start - t >= MIN_NO_SPEECH_S + 2 * EDGE_PAD_S:
            free.append((t + EDGE_PAD_S, start - EDGE_PAD_S))
        t = max(t, end)
    if duration - t >= MIN_NO_SPEECH_S + 2 * EDGE_PAD_S:
        free.append((t + EDGE_PAD_S, duration - EDGE_PAD_S))
    stretches = []
    for start, end in free:  # long silences cut into windows
        while end - start >= MIN_NO_SPEECH_S:
            stop = min(end, start + max_audio_s)
            stretches.append((round(start, 3), round(stop, 3)))
            start = stop
    chosen = sorted(random.Random(seed).sample(stretches, min(count, len(stretches))))
    return [Window(s, e, ()) for s, e in chosen]


def window_record(
    window: Window,
    index: int,
    corpus: str,
    name: str,
    speaker: str,
    wav: str,
    language: str = DEFAULT_LANGUAGE,
) -> dict[str, Any]:
    sentence = ""
    for cue in window.cues:
        sentence = _join(sentence, cue.label)
    duration = round(window.end - window.start, 3)
    return {
        "id": f"{corpus}-{name}-{index:04d}",
        "audio": {"path": wav, "start_time": window.start, "end_time": window.end},
        "sentence": sentence,
        "language": LANGUAGES[language],
        "sentences": [
            {
                "start": round(max(0.0, c.start - window.start), 2),
                "end": round(min(duration, c.end - window.start), 2),
                "text": c.label,
            }
            for c in window.cues
        ],
        "duration": duration,
        "recording": name,
        "speaker": speaker,
    }


def rejected_srt(cues: Sequence[CueRecord]) -> str:
    """The dropped cues at the file's own times, numbered as in the file, the reason first."""
    blocks = [
        f"{c.number}\n{timestamp(c.file_start)} --> {timestamp(c.file_end)}\n"
        f"[{c.status}] {c.text}\n"
        for c in cues
        if c.status != KEPT
    ]
    return "\n".join(blocks)


def report_rows(name: str, cues: Sequence[CueRecord]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for c in cues:
        writer.writerow(
            [
                name,
                c.number,
                f"{c.start:.3f}",
                f"{c.end:.3f}",
                c.text,
                c.label,
                c.status,
                "" if c.fit_margin is None else f"{c.fit_margin:.3f}",
            ]
        )
    return out.getvalue()


def check_within_audio(path: Path, cues: Sequence[SubtitleCue], duration: float) -> None:
    for cue in cues:
        if cue.start >= duration:
            raise WhisperforgeError(
                f"{path}: cue {cue.number} starts at {cue.start:.3f} s, past the end of the "
                f"audio ({duration:.3f} s): is it the subtitle file of another recording?"
            )


def fit_status(margins: Mapping[str, float | None], check: Mapping[str, Any]) -> str:
    """KEPT, or why the text does not fit its audio (the measure, its value and the limit)."""
    relative, absolute = margins["relative_margin"], margins["margin"]
    limit = check["min_relative_margin"]
    if relative is not None and limit is not None and relative < limit:
        return f"text does not fit its audio (relative margin {relative:.2f} < {limit:g})"
    limit = check["min_margin"]
    if absolute is not None and limit is not None and absolute < limit:
        return f"text does not fit its audio (margin {absolute:.2f} < {limit:g})"
    return KEPT


def check_cues(
    cues: list[CueRecord], audio: np.ndarray, fit: Any, check: Mapping[str, Any], seed: int
) -> list[CueRecord]:
    """Each usable cue's fit margin (segment_check.py): dropped below `check.min_relative_margin`
    (the margin in units of the spread of its text's fit over other audio) or, when set, below
    `check.min_margin` (nats per token)."""
    from whisperforge.data.segment_check import fit_margins

    checkable = [i for i, c in enumerate(cues) if c.status == KEPT]
    clips = [
        audio[round(cues[i].start * SAMPLE_RATE) : round(cues[i].end * SAMPLE_RATE)]
        for i in checkable
    ]
    labels = [cues[i].label for i in checkable]
    margins = fit_margins(fit, clips, labels, others=check["others"], seed=seed)
    out = list(cues)
    for i, m in zip(checkable, margins, strict=True):
        out[i] = replace(cues[i], status=fit_status(m, check), fit_margin=m["margin"])
    return out


def recording_facts(
    name: str,
    recording: Mapping[str, str],
    cues: Sequence[CueRecord],
    windows: Sequence[Window],
    silent: Sequence[Window],
    duration: float,
    timing: Timing,
    changes: Counter,
    subtitle_encoding: str = "utf-8",
) -> dict[str, Any]:
    """What stats.json says of one recording (no timings of the run: stable bytes)."""
    dropped = Counter(c.status.split(" (")[0] for c in cues if c.status != KEPT)
    return {
        "recording": name,
        "audio": str(recording["audio"]),
        "subtitles": str(recording["subtitles"]),
        "speaker": recording["speaker"],
        "cues": len(cues),
        "cues_kept": sum(c.status == KEPT for c in cues),
        "hours_in": round(duration / 3600, 4),
        "hours_kept": round(sum(w.end - w.start for w in windows) / 3600, 4),
        "windows": len(windows),
        "no_speech_windows": len(silent),
        "dropped": dict(sorted(dropped.items())),
        "text_changes": dict(sorted(changes.items())),
        "offset_s": timing.offset_s,
        "drift_s_per_h": timing.drift_s_per_h,
        "timing": asdict(timing),
        "subtitle_encoding": subtitle_encoding,
    }


def prepare_recording(
    corpus: str,
    name: str,
    recording: Mapping[str, str],
    settings: Mapping[str, Any],
    seed_model: str | Path,
    device: str,
    outputs: Mapping[str, str | Path],
) -> dict[str, Any]:
    """Run the whole recording step (module doc); `outputs`: wav, windows, report, rejected,
    info, reference. Returns the recording's facts (also in `info`)."""
    from whisperforge.data.media import decode_recording
    from whisperforge.data.segment_check import TextFit

    subtitle_path = Path(recording["subtitles"])
    audio = decode_recording(recording["audio"])
    duration = len(audio) / SAMPLE_RATE
    subtitles = read_subtitle_file(subtitle_path)
    raw = subtitles.cues
    if not raw:
        raise WhisperforgeError(f"{subtitle_path}: the subtitle file has no cues")
    check_within_audio(subtitle_path, raw, duration)
    speech = speech_intervals(audio)

    script, language = settings["script"], settings.get("language", DEFAULT_LANGUAGE)
    untimed, _ = timed_cues(subtitle_path, raw, Timing(), script, language)
    spoken = [(c.start, c.end) for c in untimed if c.label]
    timing = estimate_timing(spoken, speech, duration, **settings["offset"])
    cues, changes = timed_cues(subtitle_path, raw, timing, script, language)
    changes.update(subtitles.changes)  # what reading the file left out (ASS comments, signs)
    log.info("%s: timing %s", subtitle_path, timing)

    fit = TextFit(seed_model, device, language=LANGUAGES[language].lower(), task="transcribe")
    tokenizer = fit.processor.tokenizer
    tokens = lambda text: len(tokenizer(text, add_special_tokens=False).input_ids)  # noqa: E731
    max_s, seed = settings["max_audio_s"], settings["split_seed"]
    cues = drop_unusable(cues, max_s, tokens)
    cues = check_cues(cues, audio, fit, settings["check"], seed)
    gap_s = settings["unsubtitled_speech_s"]
    windows = build_windows(
        cues, speech, duration, max_audio_s=max_s, unsubtitled_speech_s=gap_s, token_count=tokens
    )
    n_silent = round(settings["no_speech_fraction"] * len(windows))
    silent = no_speech_windows(cues, speech, duration, max_audio_s=max_s, count=n_silent, seed=seed)
    wav = str(outputs["wav"])
    records = [
        window_record(w, k, corpus, name, recording["speaker"], wav, language)
        for k, w in enumerate(sorted([*windows, *silent], key=lambda w: w.start))
    ]
    facts = recording_facts(
        name, recording, cues, windows, silent, duration, timing, changes, subtitles.encoding
    )
    facts["seed_model"] = str(seed_model)
    # What a whole-recording evaluation is scored against (longform.read_reference): every cue
    # with words, at the audio's times. Not only the kept ones: the person's subtitles are the
    # reference, and a weak seed model's doubt about a cue does not make its words wrong.
    reference = {
        "cues": [{"start": c.start, "end": c.end, "text": c.label} for c in cues if c.label],
        "sound_notes": [[c.start, c.end] for c in cues if not c.label],
    }
    _write_all(outputs, audio, records, report_rows(name, cues), rejected_srt(cues), facts)
    write_json(outputs["reference"], reference)
    return facts


def _write_all(outputs, audio, records, report, rejected, facts) -> None:
    import soundfile

    from whisperforge.core.manifest import write_jsonl

    with atomic_path(outputs["wav"], suffix=".wav") as tmp:
        soundfile.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16")
    write_jsonl(outputs["windows"], records)
    write_text(outputs["report"], report)
    write_text(outputs["rejected"], rejected)
    write_json(outputs["info"], facts)
