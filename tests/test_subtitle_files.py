"""Subtitle files in (SRT, WebVTT), and cue text turned into the labels training uses."""

from __future__ import annotations

import pytest

from whisperforge.core.errors import WhisperforgeError
from whisperforge.data.subtitle_files import clean_cue_text, read_subtitles


def test_srt_and_vtt_cues_with_numbers_times_and_lines(tmp_path):
    srt = tmp_path / "a.srt"
    srt.write_text(
        "1\n00:00:01,250 --> 00:00:02,500\n第一行\n第二行\n\n2\n00:01:00,000 --> 00:01:01,000\n好\n"
    )
    vtt = tmp_path / "b.vtt"
    vtt.write_text(
        "WEBVTT\n\n00:01.250 --> 00:02.500\n<i>第一</i>\n\n01:00:00.000 --> 01:00:01.500\n好\n"
    )
    a, b = read_subtitles(srt), read_subtitles(vtt)
    assert [(c.number, c.start, c.end, c.text) for c in a] == [
        (1, 1.25, 2.5, "第一行\n第二行"),
        (2, 60.0, 61.0, "好"),
    ]
    assert [(c.number, c.start, c.end, c.text) for c in b] == [
        (1, 1.25, 2.5, "<i>第一</i>"),
        (2, 3600.0, 3601.5, "好"),
    ]


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("bad.srt", "1\n00:00:01,000 --> nonsense\n好\n", r"bad\.srt: not a valid SRT file"),
        ("bad.vtt", "not webvtt at all\n", r"bad\.vtt: not a valid WebVTT file"),
        ("back.srt", "1\n00:00:02,000 --> 00:00:01,000\n好\n", r"back\.srt: cue 1: ends"),
    ],
)
def test_an_unparsable_file_or_cue_is_one_line_naming_it(tmp_path, name, body, message):
    (tmp_path / name).write_text(body)
    with pytest.raises(WhisperforgeError, match=message):
        read_subtitles(tmp_path / name)


@pytest.mark.parametrize(
    ("text", "script", "label", "changes"),
    [
        (
            "<i>今天　我們</i> 講 經濟",
            "simplified",
            "今天我们讲经济",
            {"markup": 2, "spaces_for_punctuation": 3, "to_simplified": 4},
        ),
        (
            "{\\an8}- 你好，世界！",
            "simplified",
            "你好世界",
            {"markup": 1, "speaker_dashes": 1, "punctuation": 2},
        ),
        ("[音乐]", None, "", {"sound_notes": 1}),
        ("股市（笑）上涨 ♪", None, "股市上涨", {"sound_notes": 2}),
        ("ａ股 CPI is up", None, "a股CPI is up", {"full_width": 1}),
        ("国家", "traditional", "國家", {"to_traditional": 1}),  # 家 is both
    ],
)
def test_cue_text_becomes_a_label_and_each_change_is_counted(text, script, label, changes):
    got, counted = clean_cue_text(text, script)
    assert got == label
    for kind, n in changes.items():
        assert counted[kind] == n, (kind, counted)
