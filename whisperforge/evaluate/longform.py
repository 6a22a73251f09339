"""A model judged on whole recordings: long-form errors against a person's subtitles, subtitle
conventions of the written cues, and how much a person corrected the model's subtitles.

Clip-level CER (the CER table) misses what goes wrong only on long recordings: the decoder
looping on a phrase, whole sentences dropped, text written over silence or music, cues at the
wrong time. `score_longform` measures these on the cues of a whole recording against the
reference cues (the recording's corrected subtitles, already label text):

- CER over the recording: both sides' texts in time order, normalized by cer.py's `normalize`
  (the CER table's normalization), concatenated, aligned once (jiwer, as cer.py); also after
  Whisper-Finetune's normalization, as score.py reports it.
- loops: a phrase of LOOP_MIN_PHRASE_CHARS..LOOP_MAX_PHRASE_CHARS characters written at least
  LOOP_MIN_REPEATS times in a row in the hypothesis, more often than the reference says it there.
- long deletions: at least LONG_DELETION_CHARS reference characters deleted between two
  correctly written characters of the alignment.
- text with no reference: hypothesis cues that overlap no reference cue in time.
- start error: |start difference| of hypothesis and reference cues that overlap each other most
  (mutual best), median.

Times of characters inside a cue are estimated by spreading the characters evenly over the cue.
Everything returned is plain JSON with no timings, so the same inputs give the same bytes.

Heavy imports (numpy, jiwer through cer.py, faster-whisper) live in the functions: rules can
import the constants without them.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.options import SubtitleOptions
from whisperforge.subtitles.cues import Cue

log = logging.getLogger(__name__)

# A loop is a phrase, not a character: one character written three times (好好好, 对对对) is
# common speech. Two characters is the shortest Chinese word.
LOOP_MIN_PHRASE_CHARS = 2
# Whisper's loops repeat a word or a clause; the cap also bounds the regex's work (each position
# tries at most this many phrase lengths) on an hour's text.
LOOP_MAX_PHRASE_CHARS = 50
# Twice can be speech ("谢谢谢谢", a speaker restarting a phrase); three times in a row where the
# reference does not have it is the decoder stuck.
LOOP_MIN_REPEATS = 3
# About two seconds of Mandarin (~5 characters a second): a dropped clause or sentence, not a
# missed word or two, which the CER already counts.
LONG_DELETION_CHARS = 10
# Examples kept per measure: enough to find and listen to them, small enough for a summary.
MAX_EXAMPLES = 5
# worse_than: how much worse than base a measure must be to be named. Counts and characters: any
# increase. CER: any increase (decoding is deterministic, so a difference is real). Start error:
# 50 ms, below what a viewer notices and below the VAD's 10 ms frames times its padding jitter.
WORSE_MARGINS = {
    "cer": 0.0,
    "loops.count": 0,
    "long_deletions.count": 0,
    "no_reference.chars": 0,
    "start_error.median_s": 0.05,
}

_LOOP = re.compile(
    rf"(.{{{LOOP_MIN_PHRASE_CHARS},{LOOP_MAX_PHRASE_CHARS}}}?)\1{{{LOOP_MIN_REPEATS - 1},}}", re.S
)


# --- reading the reference ----------------------------------------------------------------------


def read_reference(path: str | Path) -> list[Cue]:
    """The cues of a reference JSON, `{"cues": [{"start": s, "end": s, "text": "..."}, ...]}`
    (seconds from the start of the recording); a malformed file is an error naming it."""
    from whisperforge.core.files import read_json_object

    path = Path(path)
    obj = read_json_object(path, "reference cues", required=["cues"])
    if not isinstance(obj["cues"], list):
        raise WhisperforgeError(f"{path}: 'cues' must be a list")
    cues = []
    for i, item in enumerate(obj["cues"]):
        where = f"{path}: cue {i}"
        if not isinstance(item, dict):
            raise WhisperforgeError(f"{where}: expected an object")
        times = [item.get("start"), item.get("end")]
        if any(isinstance(t, bool) or not isinstance(t, (int, float)) for t in times) or not all(
            math.isfinite(t) for t in times
        ):
            raise WhisperforgeError(f"{where}: 'start' and 'end' must be numbers (seconds)")
        if times[1] < times[0]:
            raise WhisperforgeError(f"{where}: ends ({times[1]}) before it starts ({times[0]})")
        if not isinstance(item.get("text"), str):
            raise WhisperforgeError(f"{where}: 'text' must be a string")
        cues.append(Cue(float(times[0]), float(times[1]), item["text"]))
    return cues


def reference_json(cues: Sequence[Cue]) -> dict[str, Any]:
    """The JSON `read_reference` reads, for these cues."""
    return {"cues": [{"start": c.start, "end": c.end, "text": c.text} for c in cues]}


# --- helpers ------------------------------------------------------------------------------------


def _in_order(cues: Sequence[Cue]) -> list[Cue]:
    return sorted(cues, key=lambda c: (c.start, c.end))


class _Text:
    """Cues' normalized texts concatenated, with each character's cue and estimated time."""

    def __init__(self, cues: list[Cue], normalize: Callable[[str], str]) -> None:
        self.cues = cues
        self.parts = [normalize(c.text) for c in cues]
        self.offsets = []
        total = 0
        for part in self.parts:
            self.offsets.append(total)
            total += len(part)
        self.text = "".join(self.parts)

    def cue_of(self, i: int) -> int:
        """The cue holding character i (empty cues hold none)."""
        return bisect.bisect_right(self.offsets, i) - 1

    def time(self, i: int, *, end: bool = False) -> float:
        """When character i starts (or ends), its cue's time spread evenly over its characters."""
        k = self.cue_of(i)
        cue, n = self.cues[k], len(self.parts[k])
        at = i - self.offsets[k] + (1 if end else 0)
        return round(cue.start + (cue.end - cue.start) * at / n, 3)


def _chunks(ref: str, hyp: str) -> list:
    """jiwer's alignment chunks of one reference/hypothesis pair (as cer.py aligns)."""
    import jiwer

    return list(jiwer.process_characters([ref], [hyp]).alignments[0])


def _counts(chunks: list) -> dict[str, int]:
    from whisperforge.metrics.cer import _chunk_counts

    return _chunk_counts(chunks)


def _cer(counts: Mapping[str, int], ref_chars: int) -> float | None:
    edits = counts["substitutions"] + counts["deletions"] + counts["insertions"]
    return edits / ref_chars if ref_chars else None


def _hyp_to_ref(chunks: list, n_hyp: int) -> list[int]:
    """For each hypothesis character, the reference position it is aligned to (an insertion: the
    position it was inserted before)."""
    at = [0] * n_hyp
    for c in chunks:
        for j in range(c.hyp_start_idx, c.hyp_end_idx):
            if c.type == "insert":
                at[j] = c.ref_start_idx
            else:
                at[j] = c.ref_start_idx + (j - c.hyp_start_idx)
    return at


def _max_repeats(phrase: str, text: str) -> int:
    runs = re.finditer(f"(?:{re.escape(phrase)})+", text)
    return max((len(m.group()) // len(phrase) for m in runs), default=0)


# --- the measures ---------------------------------------------------------------------------------


def _loops(hyp: _Text, ref: _Text, chunks: list) -> dict[str, Any]:
    """Phrases the hypothesis repeats LOOP_MIN_REPEATS+ times in a row, more often than the
    reference around the aligned place (widened by one phrase each side) says them in a row."""
    to_ref = _hyp_to_ref(chunks, len(hyp.text))
    found = []
    for m in _LOOP.finditer(hyp.text):
        phrase = m.group(1)
        repeats = len(m.group()) // len(phrase)
        lo = max(0, to_ref[m.start()] - len(phrase))
        hi = to_ref[m.end() - 1] + 1 + len(phrase)
        ref_repeats = _max_repeats(phrase, ref.text[lo:hi])
        if ref_repeats < repeats:
            found.append(
                {
                    "phrase": phrase,
                    "repeats": repeats,
                    "ref_repeats": ref_repeats,
                    "start": hyp.time(m.start()),
                    "end": hyp.time(m.end() - 1, end=True),
                }
            )
    return {
        "count": len(found),
        "chars": sum(len(f["phrase"]) * f["repeats"] for f in found),
        "examples": found[:MAX_EXAMPLES],
    }


def _long_deletions(ref: _Text, chunks: list) -> dict[str, Any]:
    """Stretches between two correct characters of the alignment that delete at least
    LONG_DELETION_CHARS reference characters (substitutions and insertions may sit among them:
    a dropped sentence with a stray character written in its place still counts)."""
    found = []

    def close(group: list) -> None:
        deleted = sum(c.ref_end_idx - c.ref_start_idx for c in group if c.type == "delete")
        if deleted >= LONG_DELETION_CHARS:
            lo, hi = group[0].ref_start_idx, group[-1].ref_end_idx
            found.append(
                {
                    "chars": deleted,
                    "start": ref.time(lo),
                    "end": ref.time(hi - 1, end=True),
                    "text": ref.text[lo:hi],
                }
            )

    group: list = []
    for c in chunks:
        if c.type == "equal":
            if group:
                close(group)
            group = []
        else:
            group.append(c)
    if group:
        close(group)
    return {
        "count": len(found),
        "chars": sum(f["chars"] for f in found),
        "examples": found[:MAX_EXAMPLES],
    }


def _overlaps(hyp: list[Cue], ref: list[Cue]):
    """Seconds each hypothesis cue (rows) overlaps each reference cue (columns)."""
    import numpy as np

    h = np.array([(c.start, c.end) for c in hyp], dtype=float).reshape(-1, 2)
    r = np.array([(c.start, c.end) for c in ref], dtype=float).reshape(-1, 2)
    ends = np.minimum(h[:, 1:2], r[:, 1][None, :])
    starts = np.maximum(h[:, 0:1], r[:, 0][None, :])
    return np.clip(ends - starts, 0.0, None)


def _no_reference(hyp: _Text, overlap) -> dict[str, Any]:
    """Hypothesis cues with text that overlap no reference cue: what the model wrote where the
    person wrote nothing (silence, music, applause)."""
    alone = [
        k
        for k in range(len(hyp.cues))
        if hyp.parts[k] and (overlap.shape[1] == 0 or not overlap[k].max() > 0)
    ]
    return {
        "cues": len(alone),
        "chars": sum(len(hyp.parts[k]) for k in alone),
        "seconds": round(sum(hyp.cues[k].end - hyp.cues[k].start for k in alone), 3),
        "examples": [
            {
                "start": round(hyp.cues[k].start, 3),
                "end": round(hyp.cues[k].end, 3),
                "text": hyp.cues[k].text,
            }
            for k in alone[:MAX_EXAMPLES]
        ],
    }


def _start_error(hyp: list[Cue], ref: list[Cue], overlap) -> dict[str, Any]:
    """Median |start difference| over pairs of cues that overlap each other most (mutual best):
    a hypothesis cue split in two is matched once, not charged for its second half's start."""
    import numpy as np

    if overlap.size == 0:
        return {"median_s": None, "matched": 0}
    best_ref = overlap.argmax(axis=1)
    best_hyp = overlap.argmax(axis=0)
    errors = [
        abs(hyp[h].start - ref[r].start)
        for h, r in enumerate(best_ref)
        if overlap[h, r] > 0 and best_hyp[r] == h
    ]
    median = round(float(np.median(errors)), 3) if errors else None
    return {"median_s": median, "matched": len(errors)}


def score_longform(
    hyp: Sequence[Cue], ref: Sequence[Cue], *, numerals_to_chinese: bool = False
) -> dict[str, Any]:
    """Long-form measures of a recording's hypothesis cues against its reference cues.

    Returns (JSON): `normalization` (cer.py's description), `cer` (None when the reference has
    no characters), `substitutions`, `deletions`, `insertions`, `hits`, `ref_chars`,
    `hyp_chars`, `cer_whisper_finetune`; `loops` {count, chars, examples: [{phrase, repeats,
    ref_repeats, start, end}]}; `long_deletions` {count, chars, examples: [{chars, start, end,
    text}]}; `no_reference` {cues, chars, seconds, examples: [{start, end, text}]};
    `start_error` {median_s (None without a match), matched}; `thresholds`. Times are seconds
    from the recording's start.
    """
    from functools import partial

    from whisperforge.metrics.cer import (
        describe_normalization,
        normalize,
        normalize_whisper_finetune,
    )

    hyp_cues, ref_cues = _in_order(hyp), _in_order(ref)
    norm = partial(normalize, numerals_to_chinese=numerals_to_chinese)
    h, r = _Text(hyp_cues, norm), _Text(ref_cues, norm)
    chunks = _chunks(r.text, h.text)
    counts = _counts(chunks)
    wf_ref = "".join(normalize_whisper_finetune(c.text) for c in ref_cues)
    wf_hyp = "".join(normalize_whisper_finetune(c.text) for c in hyp_cues)
    wf_counts = _counts(_chunks(wf_ref, wf_hyp))
    overlap = _overlaps(hyp_cues, ref_cues)
    return {
        "normalization": describe_normalization(numerals_to_chinese=numerals_to_chinese),
        "cer": _cer(counts, len(r.text)),
        **counts,
        "ref_chars": len(r.text),
        "hyp_chars": len(h.text),
        "cer_whisper_finetune": _cer(wf_counts, len(wf_ref)),
        "loops": _loops(h, r, chunks),
        "long_deletions": _long_deletions(r, chunks),
        "no_reference": _no_reference(h, overlap),
        "start_error": _start_error(hyp_cues, ref_cues, overlap),
        "thresholds": {
            "loop_min_phrase_chars": LOOP_MIN_PHRASE_CHARS,
            "loop_max_phrase_chars": LOOP_MAX_PHRASE_CHARS,
            "loop_min_repeats": LOOP_MIN_REPEATS,
            "long_deletion_chars": LONG_DELETION_CHARS,
        },
    }


# --- subtitle conventions -------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """A cue's lines as a player shows them (runs of spaces squashed, as the writers do)."""
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def subtitle_conventions(cues: Sequence[Cue], opts: SubtitleOptions) -> dict[str, Any]:
    """How the written cues keep subtitle conventions: `max_line_chars` characters a line,
    `max_lines` lines a cue, `min_cue_s`..`max_cue_s` on screen, at most `max_chars_per_s`
    characters a second (spaces and punctuation count, as players show them).

    Returns (JSON; None for the statistics of no cues): `cues`, `chars_per_line_max`,
    `chars_per_line_p95`, `share_line_chars_within`, `lines_per_cue_max`, `lines_per_cue_mean`,
    `share_lines_within`, `duration_median_s`, `share_duration_within`, `chars_per_s_median`,
    `share_chars_per_s_over`, `share_meeting_all`, and `limits` (the five limits used).
    """
    import numpy as np

    limits = {
        "max_line_chars": opts.max_line_chars,
        "max_lines": opts.max_lines,
        "max_chars_per_s": opts.max_chars_per_s,
        "min_cue_s": opts.min_cue_s,
        "max_cue_s": opts.max_cue_s,
    }
    out: dict[str, Any] = {"cues": len(cues), "limits": limits}
    if not cues:
        keys = [
            "chars_per_line_max",
            "chars_per_line_p95",
            "share_line_chars_within",
            "lines_per_cue_max",
            "lines_per_cue_mean",
            "share_lines_within",
            "duration_median_s",
            "share_duration_within",
            "chars_per_s_median",
            "share_chars_per_s_over",
            "share_meeting_all",
        ]
        return {**out, **dict.fromkeys(keys)}
    lines = [_lines(c.text) for c in cues]
    line_chars = [len(line) for cue_lines in lines for line in cue_lines] or [0]
    widest = np.array([max((len(x) for x in cue_lines), default=0) for cue_lines in lines])
    n_lines = np.array([len(cue_lines) for cue_lines in lines])
    duration = np.array([c.end - c.start for c in cues], dtype=float)
    chars = np.array([sum(len(x) for x in cue_lines) for cue_lines in lines], dtype=float)
    cps = chars / np.maximum(duration, 1e-3)  # a zero-length cue cannot be read: over any limit
    ok_width = widest <= opts.max_line_chars
    ok_lines = n_lines <= opts.max_lines
    eps = 1e-9  # cue times are floats: 7.0000000001 s is 7 s
    ok_duration = (duration >= opts.min_cue_s - eps) & (duration <= opts.max_cue_s + eps)
    over_speed = cps > opts.max_chars_per_s + eps

    def share(mask) -> float:
        return round(float(mask.mean()), 4)

    return {
        **out,
        "chars_per_line_max": int(max(line_chars)),
        "chars_per_line_p95": round(float(np.percentile(line_chars, 95)), 2),
        "share_line_chars_within": share(ok_width),
        "lines_per_cue_max": int(n_lines.max()),
        "lines_per_cue_mean": round(float(n_lines.mean()), 3),
        "share_lines_within": share(ok_lines),
        "duration_median_s": round(float(np.median(duration)), 3),
        "share_duration_within": share(ok_duration),
        "chars_per_s_median": round(float(np.median(cps)), 3),
        "share_chars_per_s_over": share(over_speed),
        "share_meeting_all": share(ok_width & ok_lines & ok_duration & ~over_speed),
    }


# --- a whole recording ----------------------------------------------------------------------------


def evaluate_recording(
    ct2_dir: str | Path,
    audio_path: str | Path,
    reference: Sequence[Cue],
    opts: SubtitleOptions,
    *,
    compute_type: str,
    threads: int,
    numerals_to_chinese: bool = False,
) -> dict[str, Any]:
    """Subtitle a whole recording the way write_subtitles does (transcribe_to_cues, then
    split_long_cues) and measure the written cues against `reference`.

    Returns (JSON, no timings: the same inputs give the same bytes) `longform`
    (`score_longform`), `conventions` (`subtitle_conventions`), `cues` (written cues),
    `speech_segments` (cues before splitting) and `audio_s` (the recording's length). Model
    load and decoding times go to the log.
    """
    from whisperforge.decode.transcribe import load_model
    from whisperforge.subtitles.cues import split_long_cues, transcribe_recording

    t0 = time.perf_counter()
    model, device, ctype = load_model(ct2_dir, compute_type, threads)
    t1 = time.perf_counter()
    cues, seconds = transcribe_recording(model, audio_path, opts)
    lines = split_long_cues(cues, opts.max_line_chars, opts.max_segment_s)
    t2 = time.perf_counter()
    result = {
        "longform": score_longform(lines, reference, numerals_to_chinese=numerals_to_chinese),
        "conventions": subtitle_conventions(lines, opts),
        "cues": len(lines),
        "speech_segments": len(cues),
        "audio_s": round(seconds, 3),
    }
    log.info(
        "%s with %s (%s, %s): load %.1f s, decode %.1f s for %.1f s of audio; CER %s",
        audio_path,
        ct2_dir,
        device,
        ctype,
        t1 - t0,
        t2 - t1,
        seconds,
        result["longform"]["cer"],
    )
    return result


# --- comparisons ----------------------------------------------------------------------------------


def _measure(result: Mapping[str, Any], name: str) -> float | None:
    value: Any = result.get("longform", result)
    for key in name.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def worse_than(base: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """The long-form measures (WORSE_MARGINS' names: `cer`, `loops.count`,
    `long_deletions.count`, `no_reference.chars`, `start_error.median_s`) on which `run` is worse
    than `base` by more than the margin. Either argument is an `evaluate_recording` result or a
    `score_longform` one; a measure missing (None) on either side is not compared."""
    worse = []
    for name, margin in WORSE_MARGINS.items():
        b, r = _measure(base, name), _measure(run, name)
        if b is not None and r is not None and r > b + margin + 1e-12:
            worse.append(name)
    return worse


def correction_cer(
    model_cues: Sequence[Cue], corrected_cues: Sequence[Cue], *, numerals_to_chinese: bool = False
) -> dict[str, Any]:
    """How much a person changed the model's subtitles: the model's text scored against the
    corrected text (both in time order, concatenated), as label text (cer.py's `normalize`) and
    raw (only whitespace removed: punctuation edits count too).

    Returns (JSON): `cer` (None when the corrected text is empty), `chars_changed` (edits),
    `substitutions`, `deletions`, `insertions`, `corrected_chars`, `model_chars`, `cer_raw`,
    `chars_changed_raw`.
    """
    from whisperforge.metrics.cer import normalize, remove_whitespace

    model_text = [c.text for c in _in_order(model_cues)]
    corrected = [c.text for c in _in_order(corrected_cues)]
    ref = "".join(normalize(t, numerals_to_chinese=numerals_to_chinese) for t in corrected)
    hyp = "".join(normalize(t, numerals_to_chinese=numerals_to_chinese) for t in model_text)
    counts = _counts(_chunks(ref, hyp))
    raw_ref = "".join(remove_whitespace(t) for t in corrected)
    raw_counts = _counts(_chunks(raw_ref, "".join(remove_whitespace(t) for t in model_text)))
    edits = counts["substitutions"] + counts["deletions"] + counts["insertions"]
    raw_edits = raw_counts["substitutions"] + raw_counts["deletions"] + raw_counts["insertions"]
    return {
        "cer": _cer(counts, len(ref)),
        "chars_changed": edits,
        "substitutions": counts["substitutions"],
        "deletions": counts["deletions"],
        "insertions": counts["insertions"],
        "corrected_chars": len(ref),
        "model_chars": len(hyp),
        "cer_raw": _cer(raw_counts, len(raw_ref)),
        "chars_changed_raw": raw_edits,
    }


def combine(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Several recordings' `evaluate_recording` results as one: edits and characters summed (so
    the CER is over all the recordings' characters), counts summed, the start error the median of
    the recordings' medians, conventions' share weighted by cues. `recordings` keeps each whole."""
    import statistics

    lfs = [r["longform"] for r in results.values()]
    edits = {k: sum(lf[k] for lf in lfs) for k in ("substitutions", "deletions", "insertions")}
    ref_chars = sum(lf["ref_chars"] for lf in lfs)
    medians = [
        lf["start_error"]["median_s"] for lf in lfs if lf["start_error"]["median_s"] is not None
    ]
    cues = sum(r["cues"] for r in results.values())
    met = [
        (r["conventions"].get("share_meeting_all"), r["cues"])
        for r in results.values()
        if r["conventions"].get("share_meeting_all") is not None
    ]
    return {
        "longform": {
            "cer": _cer(edits, ref_chars),
            **edits,
            "ref_chars": ref_chars,
            "hyp_chars": sum(lf["hyp_chars"] for lf in lfs),
            "loops": {"count": sum(lf["loops"]["count"] for lf in lfs)},
            "long_deletions": {"count": sum(lf["long_deletions"]["count"] for lf in lfs)},
            "no_reference": {"chars": sum(lf["no_reference"]["chars"] for lf in lfs)},
            "start_error": {
                "median_s": round(statistics.median(medians), 3) if medians else None,
                "matched": sum(lf["start_error"]["matched"] for lf in lfs),
            },
        },
        "conventions": {
            "share_meeting_all": (
                round(sum(s * n for s, n in met) / sum(n for _, n in met), 4)
                if met and sum(n for _, n in met)
                else None
            )
        },
        "cues": cues,
        "audio_s": round(sum(r["audio_s"] for r in results.values()), 3),
        "recordings": dict(results),
    }


def correction_of_files(model_srt: str | Path, corrected: str | Path) -> dict[str, Any]:
    """`correction_cer` of the model's subtitle file against the person's corrected one."""
    from whisperforge.data.subtitle_files import read_subtitles

    def cues(path: str | Path) -> list[Cue]:
        return [Cue(c.start, c.end, c.text) for c in read_subtitles(path)]

    return {"model_subtitles": str(model_srt), **correction_cer(cues(model_srt), cues(corrected))}
