"""The demo's own recordings: synthetic lectures with subtitle files that have real faults.

`demo/lectures/` holds three "lectures" read by one "teacher" (an espeak-ng male voice that
neither demo archive has: the demo's base model is weak on it, as a real base model is on a
strong accent), a minute or two long each, with pauses, a stretch of music, a stretch of silence
and, in lecture02, an aside nobody subtitled. Their subtitle files carry the faults real ones have:

- lecture01.srt: traditional characters, full-width spaces for punctuation, a sound note
  (`[音乐]`) over the music, `（笑）`, italics markup, a speaker dash;
- lecture02.srt: every cue 0.4 s late (`SHIFT_S`), one cue whose text belongs to another sentence
  (`WRONG_CUE`), one cue over 30 s (a run of sentences under a single cue), the unsubtitled aside;
- lecture03.vtt: clean, the held-out lecture (WebVTT).

Every sentence is one of the demo's SENTENCES, as the demo's splits share sentences, not voices.
The audio is FLAC, written by soundfile; the same espeak-ng and sox give the same bytes.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from whisperforge.core.audio import SAMPLE_RATE, read_training_audio
from whisperforge.data.subtitle_files import timestamp
from whisperforge.demo.demodata import SENTENCES, Voice, synthesize

TEACHER = Voice("john", pitch=45, speed=160)
SHIFT_S = 0.4  # lecture02's subtitles are this late
WRONG_CUE = ("lecture02", 5)  # (lecture, cue number) whose text is another sentence's
MUSIC_S, SILENCE_S = 3.0, 4.0


@dataclass(frozen=True)
class Part:
    """A stretch of a lecture: a sentence (index into SENTENCES), `music`, `silence`, or
    `run` (several sentences back to back under one cue)."""

    kind: str
    sentences: tuple[int, ...] = ()
    subtitled: bool = True
    style: str = ""  # how the cue's text is dressed: traditional, fullwidth, laugh, italic, dash


@dataclass(frozen=True)
class Lecture:
    name: str
    parts: tuple[Part, ...]
    subtitle_format: str = "srt"
    shift_s: float = 0.0
    wrong_cues: dict[int, int] = field(default_factory=dict)  # cue number -> sentence shown


def _s(i: int, style: str = "", subtitled: bool = True) -> Part:
    return Part("sentence", (i,), subtitled, style)


LECTURES: tuple[Lecture, ...] = (
    Lecture(
        "lecture01",
        (
            _s(0, "traditional"),
            _s(1),
            _s(2, "fullwidth"),
            _s(3),
            _s(4, "italic"),
            Part("music"),
            _s(5),
            _s(6, "traditional"),
            _s(7, "laugh"),
            _s(8),
            Part("silence"),
            _s(9, "dash"),
            _s(10, "fullwidth"),
            _s(11),
            _s(12),
            _s(13),
        ),
    ),
    Lecture(
        "lecture02",
        (
            _s(14),
            _s(15),
            _s(16, "fullwidth"),
            _s(17),
            _s(18),
            _s(19),
            Part("run", (*range(20, 30), 0, 1, 2)),
            _s(20),
            _s(21, subtitled=False),
            _s(22),
            Part("music"),
            _s(23),
            _s(24, "traditional"),
            Part("silence"),
            _s(25),
            _s(26),
            _s(27),
        ),
        shift_s=SHIFT_S,
        wrong_cues={WRONG_CUE[1]: 11},
    ),
    Lecture(
        "lecture03",
        (
            _s(2),
            _s(5),
            _s(8),
            _s(11),
            Part("music"),
            _s(14),
            _s(17),
            _s(20),
            Part("silence"),
            _s(23),
            _s(26),
            _s(29),
            _s(4),
            _s(7),
        ),
        subtitle_format="vtt",
    ),
)
PAUSES_S = (0.6, 0.9, 0.5, 1.1, 0.7)  # between parts, in turn


def _music(seconds: float) -> np.ndarray:
    """A few soft notes: tonal, not speech."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    notes = np.array([262.0, 330.0, 392.0, 523.0])[(t * 2).astype(int) % 4]
    return (0.2 * np.sin(2 * np.pi * notes * t) * np.minimum(1.0, (t * 2) % 1 * 8)).astype(
        np.float32
    )


def _dress(text: str, style: str) -> str:
    """A sentence (word-segmented, as SENTENCES are) as a subtitle writer styles it."""
    import zhconv

    words = text.split()
    plain = "".join(words)
    return {
        "traditional": zhconv.convert(plain, "zh-hant"),
        "fullwidth": "\u3000".join(words),
        "laugh": plain + "（笑）",
        "italic": f"<i>{plain}</i>",
        "dash": f"- {plain}",
    }.get(style, plain)


def build_lecture(lecture: Lecture, out_dir: Path, voice: Voice = TEACHER) -> dict[str, float]:
    """Synthesize one lecture (FLAC) and its subtitle file; returns {audio_s, cues}."""
    import soundfile

    pieces: list[np.ndarray] = [np.zeros(SAMPLE_RATE, dtype=np.float32)]  # 1 s lead-in
    cues: list[tuple[float, float, str]] = []
    t = 1.0
    with tempfile.TemporaryDirectory(prefix="wf-lecture-") as tmp:
        for k, part in enumerate(lecture.parts):
            if part.kind in ("music", "silence"):
                seconds = MUSIC_S if part.kind == "music" else SILENCE_S
                audio = (
                    _music(seconds)
                    if part.kind == "music"
                    else np.zeros(round(seconds * SAMPLE_RATE), np.float32)
                )
                if part.kind == "music":
                    cues.append((t, t + seconds, "[音乐]"))
            else:
                clips = []
                for i in part.sentences:
                    wav = Path(tmp) / f"{k}_{i}.wav"
                    synthesize(SENTENCES[i], voice, wav)
                    clips.append(read_training_audio(wav))
                gap = np.zeros(round(0.25 * SAMPLE_RATE), np.float32)
                audio = np.concatenate([c for clip in clips for c in (clip, gap)][:-1])
                seconds = len(audio) / SAMPLE_RATE
                text = "".join(_dress(SENTENCES[i], part.style) for i in part.sentences)
                if part.subtitled:
                    # espeak clips carry 0.1 s of silence on each side: the cue spans the words.
                    cues.append((t + 0.1, t + seconds - 0.1, text))
            pieces.append(audio)
            pause = PAUSES_S[k % len(PAUSES_S)]
            pieces.append(np.zeros(round(pause * SAMPLE_RATE), np.float32))
            t += len(audio) / SAMPLE_RATE + pause
    audio = np.concatenate(pieces)
    out_dir.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(out_dir / f"{lecture.name}.flac"), audio, SAMPLE_RATE, subtype="PCM_16")
    for number, sentence in lecture.wrong_cues.items():
        start, end, _ = cues[number - 1]
        cues[number - 1] = (start, end, "".join(SENTENCES[sentence].split()))
    cues = [(s + lecture.shift_s, e + lecture.shift_s, text) for s, e, text in cues]
    if lecture.subtitle_format == "vtt":
        body = "WEBVTT\n\n" + "\n".join(
            f"{timestamp(s, '.')} --> {timestamp(e, '.')}\n{text}\n" for s, e, text in cues
        )
    else:
        body = "\n".join(
            f"{n}\n{timestamp(s, ',')} --> {timestamp(e, ',')}\n{text}\n"
            for n, (s, e, text) in enumerate(cues, start=1)
        )
    (out_dir / f"{lecture.name}.{lecture.subtitle_format}").write_text(body, encoding="utf-8")
    return {"audio_s": round(len(audio) / SAMPLE_RATE, 2), "cues": len(cues)}


def build_lectures(out_dir: str | Path) -> dict[str, dict[str, float]]:
    return {lec.name: build_lecture(lec, Path(out_dir)) for lec in LECTURES}
