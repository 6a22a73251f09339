"""A recording's cues -> training windows: cut only between cues, never over unsubtitled speech."""

from __future__ import annotations

from whisperforge.data.recordings import (
    KEPT,
    CueRecord,
    build_windows,
    drop_unusable,
    no_speech_windows,
    rejected_srt,
    timed_cues,
    window_record,
)

chars = len  # a token per character, for these tests


def cue(n: int, start: float, end: float, label: str = "你好", status: str = KEPT) -> CueRecord:
    return CueRecord(n, start, end, start, end, label, label, status)


def test_consecutive_cues_merge_up_to_the_window_limit():
    cues = [cue(i + 1, 1 + 3 * i, 3 + 3 * i) for i in range(6)]  # 2 s cues, 1 s pauses
    speech = [(c.start, c.end) for c in cues]
    windows = build_windows(
        cues, speech, 20.0, max_audio_s=9.0, unsubtitled_speech_s=0.5, token_count=chars
    )
    assert [len(w.cues) for w in windows] == [3, 3]
    assert all(w.end - w.start <= 9.0 for w in windows)
    assert windows[0].start == 0.8 and windows[0].end == 9.2  # 0.2 s of silence each side


def test_a_dropped_cue_or_speech_nobody_subtitled_ends_the_window():
    cues = [cue(1, 1, 3), cue(2, 4, 6, status="text does not fit"), cue(3, 7, 9), cue(4, 12, 14)]
    speech = [(1, 3), (4, 6), (7, 9), (9.5, 11.5), (12, 14)]  # 9.5-11.5: an aside, no cue
    windows = build_windows(
        cues, speech, 20.0, max_audio_s=30.0, unsubtitled_speech_s=0.5, token_count=chars
    )
    assert [[c.number for c in w.cues] for w in windows] == [[1], [3], [4]]
    for w in windows:  # no window holds the dropped cue's audio or the aside
        assert not (w.start < 6 and w.end > 4) or w.cues[0].number == 2
        assert not (w.start < 11.5 and w.end > 9.5)


def test_cues_that_no_window_may_hold_get_their_reason():
    cues = [cue(1, 0, 2, label=""), cue(2, 3, 40), cue(3, 41, 43, label="好" * 500), cue(4, 44, 46)]
    statuses = [c.status for c in drop_unusable(cues, 30.0, chars)]
    assert statuses[0].startswith("no words")
    assert statuses[1].startswith("longer than 30 s (37.0 s)")
    assert statuses[2].startswith("label over 448 tokens")
    assert statuses[3] == KEPT


def test_no_speech_windows_come_from_silence_without_cues_and_are_seeded():
    cues = [cue(1, 1, 3), cue(2, 20, 22, label="", status="no words")]
    speech = [(1, 3), (30, 33)]
    a = no_speech_windows(cues, speech, 40.0, max_audio_s=10.0, count=2, seed=0)
    b = no_speech_windows(cues, speech, 40.0, max_audio_s=10.0, count=2, seed=0)
    assert a == b and len(a) == 2
    busy = [(1, 3), (20, 22), (30, 33)]
    for w in a:
        assert w.cues == () and w.end - w.start <= 10.0
        assert all(w.end <= s or w.start >= e for s, e in busy)


def test_window_records_are_whisper_finetune_lines_pointing_into_the_recording():
    cues = [cue(1, 10.0, 12.0, "股市"), cue(2, 12.5, 14.0, "cpi"), cue(3, 14.5, 15.0, "up")]
    (window,) = build_windows(
        cues, [(10, 15)], 30.0, max_audio_s=30, unsubtitled_speech_s=0.5, token_count=chars
    )
    record = window_record(window, 3, "lec", "l 1", "wang", "x.wav")
    assert record["id"] == "lec-l 1-0003"
    assert record["audio"] == {"path": "x.wav", "start_time": 9.8, "end_time": 15.2}
    assert record["sentence"] == "股市cpi up"  # two latin words keep their space
    assert record["sentences"][0] == {"start": 0.2, "end": 2.2, "text": "股市"}
    assert (
        record["duration"] == 5.4 and record["recording"] == "l 1" and record["speaker"] == "wang"
    )


def test_rejected_srt_has_the_files_own_times_numbers_and_reasons():
    dropped = CueRecord(
        7,
        61.5,
        63.0,
        62.0,
        63.5,
        "别的 / 句子",
        "别的句子",
        "text does not fit its audio (margin -0.20 < 0.3)",
    )
    text = rejected_srt([cue(1, 0, 1), dropped])
    assert (
        text == "7\n00:01:01,500 --> 00:01:03,000\n"
        "[text does not fit its audio (margin -0.20 < 0.3)] 别的 / 句子\n"
    )


# --- the whole recording step on a real (tiny) seed model -----------------------------------

SETTINGS = {
    "script": "simplified",
    "max_audio_s": 30.0,
    "no_speech_fraction": 0.5,
    "unsubtitled_speech_s": 0.5,
    "offset": {"max_s": 2.0, "min_gain": 0.02},
    # the absolute rule (min_relative_margin off): a random tiny seed model has no spread to use
    "check": {"model": "base", "others": 3, "min_relative_margin": None, "min_margin": 0.1},
    "split_seed": 0,
}


def lecture(tmp_path, name: str, srt_text: str, seconds: float = 12.0):
    import soundfile
    from helpers import speech_like

    folder = tmp_path / "lectures"
    folder.mkdir(exist_ok=True)
    audio = folder / f"{name}.flac"
    soundfile.write(str(audio), speech_like(seconds), 16000)
    subtitles = folder / f"{name}.srt"
    subtitles.write_text(srt_text, encoding="utf-8")
    out = tmp_path / "out"
    outputs = {
        "wav": out / f"{name}.wav",
        "windows": out / f"{name}.jsonl",
        "report": out / f"{name}.tsv",
        "info": out / f"{name}.json",
        "reference": out / f"{name}.reference.json",
        "rejected": out / f"{name}.rejected.srt",
    }
    return {"audio": str(audio), "subtitles": str(subtitles), "speaker": "wang"}, outputs


SRT = "".join(
    f"{i + 1}\n00:00:{2 * i + 1:02d},000 --> 00:00:{2 * i + 2:02d},500\n{text}\n\n"
    for i, text in enumerate(["今天　我們", "<i>讲</i> 经济", "[音乐]", "- 股市（笑）", "上涨"])
)


def test_a_recording_with_an_odd_name_becomes_windows_report_and_rejected_cues(tiny, tmp_path):
    import csv
    import json

    from whisperforge.data.recordings import prepare_recording

    name = "讲座 第1课 (final) it's a&b [v2] 100%"
    recording, outputs = lecture(tmp_path, name, SRT)
    facts = prepare_recording("lec", name, recording, SETTINGS, tiny, "cpu", outputs)
    assert all(path.is_file() for path in outputs.values())
    with outputs["report"].open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [r["label"] for r in rows] == ["今天我们", "讲经济", "", "股市", "上涨"]
    assert rows[2]["status"].startswith("no words")
    assert facts["cues"] == 5 and facts["text_changes"]["to_simplified"] == 1
    assert facts["cues_kept"] == sum(r["status"] == "kept" for r in rows)
    windows = [json.loads(line) for line in outputs["windows"].read_text().splitlines()]
    for w in windows:
        assert w["recording"] == name and w["speaker"] == "wang"
        assert w["audio"]["path"] == str(outputs["wav"])
    rejected = outputs["rejected"].read_text(encoding="utf-8")
    assert rejected.count(" --> ") == sum(r["status"] != "kept" for r in rows)
    reference = json.loads(outputs["reference"].read_text())
    assert [c["text"] for c in reference["cues"]] == [r["label"] for r in rows if r["label"]]


def test_a_cue_past_the_end_of_the_audio_names_file_and_cue_and_writes_nothing(tiny, tmp_path):
    import pytest

    from whisperforge.core.errors import WhisperforgeError
    from whisperforge.data.recordings import prepare_recording

    late = SRT + "6\n00:01:00,000 --> 00:01:02,000\n迟到\n"
    recording, outputs = lecture(tmp_path, "late", late)
    with pytest.raises(
        WhisperforgeError, match=r"late\.srt: cue 6 starts at 60\.000 s, past the end"
    ):
        prepare_recording("lec", "late", recording, SETTINGS, tiny, "cpu", outputs)
    assert not any(path.exists() for path in outputs.values())


def test_padding_never_takes_a_window_over_the_limit():
    cues = [cue(1, 2.0, 6.9)]  # 4.9 s of a 5 s limit
    (window,) = build_windows(
        cues, [(2.0, 6.9)], 20.0, max_audio_s=5.0, unsubtitled_speech_s=0.5, token_count=chars
    )
    assert window.end - window.start <= 5.0 + 1e-9
    assert window.start <= 2.0 and window.end >= 6.9


def test_the_fit_decision_reads_the_margin_relative_to_its_spread_then_the_optional_floor():
    from whisperforge.data.recordings import KEPT, fit_status

    check = {"min_relative_margin": 1.0, "min_margin": None}
    # A real model's margins are nats, a tiny model's tenths: the relative margin decides both.
    assert fit_status({"margin": 2.2, "relative_margin": 15.3}, check) == KEPT
    assert fit_status({"margin": 0.15, "relative_margin": 1.4}, check) == KEPT
    assert fit_status({"margin": 0.17, "relative_margin": 0.91}, check) == (
        "text does not fit its audio (relative margin 0.91 < 1)"
    )
    assert fit_status({"margin": -0.09, "relative_margin": -0.56}, check).startswith("text does")
    floor = {"min_relative_margin": 1.0, "min_margin": 0.3}
    assert fit_status({"margin": 0.2, "relative_margin": 4.0}, floor) == (
        "text does not fit its audio (margin 0.20 < 0.3)"
    )
    # A single comparison has no spread: the relative rule cannot judge, the floor still can.
    assert fit_status({"margin": 0.05, "relative_margin": None}, check) == KEPT


def test_a_cue_in_another_language_only_is_dropped_with_its_reason():
    from pathlib import Path

    from whisperforge.data.subtitle_files import SubtitleCue
    from whisperforge.data.timing import Timing

    raw = [SubtitleCue(1, 0, 1, "Hello there"), SubtitleCue(2, 1, 2, "你好\nHello")]
    cues, changes = timed_cues(Path("a.srt"), raw, Timing(), None, "zh")
    cues = drop_unusable(cues, 30.0, chars)
    assert [(c.label, c.status.split(" (")[0]) for c in cues] == [
        ("", "other language"),
        ("你好", KEPT),
    ]
    assert changes["translation_line"] == 1 and "other_language" not in changes


def test_a_subtitle_file_in_gb18030_utf16_or_bilingual_ass_keeps_the_utf8_srts_cues(tiny, tmp_path):
    import csv
    import json

    from helpers import bilingual_ass

    from whisperforge.data.recordings import prepare_recording

    english = ["Today we", "talk economics", "[Music]", "- The market (laughs)", "went up"]
    variants = {  # file name -> (bytes, the encoding stats.json names)
        "gb.srt": (SRT.encode("gb18030"), "gb18030"),
        "le.srt": (SRT.encode("utf-16"), "utf-16le-bom"),
        "bilingual.ass": (bilingual_ass(SRT, english).encode("utf-16"), "utf-16le-bom"),
    }
    recording, outputs = lecture(tmp_path, "lec", SRT)
    # The fit check off: a random tiny seed model would drop every cue, and leave no window.
    settings = {**SETTINGS, "check": {**SETTINGS["check"], "min_margin": None}}

    def run(subtitles: str, out: str) -> tuple[dict, list, list]:
        outs = {k: tmp_path / out / v.name for k, v in outputs.items()}
        facts = prepare_recording(
            "c", "lec", {**recording, "subtitles": subtitles}, settings, tiny, "cpu", outs
        )
        with outs["report"].open(encoding="utf-8") as f:
            rows = [
                (r["cue"], r["start"], r["end"], r["label"], r["status"])
                for r in csv.DictReader(f, delimiter="\t")
            ]
        windows = [json.loads(line) for line in outs["windows"].read_text().splitlines()]
        for w in windows:
            w["audio"].pop("path")
        return facts, rows, windows

    facts, rows, windows = run(recording["subtitles"], "utf8")
    assert facts["subtitle_encoding"] == "utf-8"
    assert [r[3] for r in rows] == ["今天我们", "讲经济", "", "股市", "上涨"]
    assert sum(r[4] == KEPT for r in rows) == 4 and any(w["sentence"] for w in windows)
    for name, (data, encoding) in variants.items():
        (tmp_path / "lectures" / name).write_bytes(data)
        got_facts, got_rows, got_windows = run(str(tmp_path / "lectures" / name), f"out-{name}")
        assert got_facts["subtitle_encoding"] == encoding, name
        if name.endswith(".ass"):
            assert got_facts["text_changes"]["translation_line"] == 4  # [Music] is a note
            assert got_facts["text_changes"]["comment_event"] == 1
            assert got_facts["text_changes"]["sign_style"] == 1
        assert (got_rows, got_windows) == (rows, windows), name
        for key in ("cues", "cues_kept", "dropped", "windows", "offset_s"):
            assert got_facts[key] == facts[key], (name, key)
