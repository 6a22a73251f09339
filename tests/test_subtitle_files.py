"""Subtitle files in (SRT, WebVTT, ASS/SSA; the encodings users keep them in), and cue text
turned into the labels training uses."""

from __future__ import annotations

import re
from collections import Counter

import pysubs2
import pytest
from helpers import REALSUBS, realsubs_files

from whisperforge.core.errors import WhisperforgeError
from whisperforge.data.subtitle_files import (
    clean_cue_text,
    keep_spoken_lines,
    read_subtitle_file,
    read_subtitles,
)


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


# --- encodings and formats: one lecture's cues, however the file keeps them ----------------------

CUES = [  # (start, end, text): centisecond times, as ASS writes them
    (1.25, 2.5, "今天我们讲经济\n第二行"),
    (3.0, 4.75, "股市上涨（笑）"),
    (60.0, 61.5, "央行下调存款准备金率"),
    (3600.1, 3601.0, "好"),
]
EXTENSION_B = "5\n02:00:00,000 --> 02:00:01,000\n𠮷\n"  # four bytes in GB18030
TRADITIONAL = [  # Big5 has no simplified characters
    (1.25, 2.5, "今天我們講經濟\n第二行"),
    (3.0, 4.75, "股市上漲（笑）"),
    (60.0, 61.5, "央行下調存款準備金率"),
    (3600.1, 3601.0, "好"),
]


def srt_text(cues: list[tuple[float, float, str]]) -> str:
    from whisperforge.data.subtitle_files import timestamp

    return "".join(
        f"{i}\n{timestamp(s)} --> {timestamp(e)}\n{t}\n\n" for i, (s, e, t) in enumerate(cues, 1)
    )


def ass_text(cues: list[tuple[float, float, str]], english: bool = False) -> str:
    r"""The cues as an ASS file as fansubs write one: override tags, karaoke, `\N` breaks, a
    comment, a sign and a drawing between them; `english`: each cue a 简英 pair."""

    def stamp(t: float) -> str:
        cs = round(t * 100)
        return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"

    def line(kind: str, s: float, e: float, style: str, text: str) -> str:
        return f"{kind}: 0,{stamp(s)},{stamp(e)},{style},,0,0,0,,{text}\n"

    events = line("Comment", 0.5, 1.0, "Default", "校对：某某 {待定}")
    for i, (s, e, t) in enumerate(cues):
        first, *rest = t.split("\n")
        text = r"{\fn微软雅黑\fs20\pos(192,260)}" + r"{\k20}".join(first[:2]) + first[2:]
        text += "".join(r"\N{\b1}" + more for more in rest)
        if english:
            text += r"\N{\fnArial\fs14\1c&H0E95CE&}Translation of line " + str(i)
        events += line("Dialogue", s, e, "*Default", text)
        events += line("Dialogue", s, e, "Sign-OP", r"{\an8}片名 第一集")
    events += line("Dialogue", 2.5, 3.0, "Default", r"{\p1}m 0 0 l 100 0 100 100{\p0}")
    return (
        "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
        "BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, "
        "BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        + "".join(
            f"Style: {name},Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,"
            "0,0,1,2,2,2,10,10,10,1\n"
            for name in ("Default", "Sign-OP")
        )
        + "\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, "
        "Effect, Text\n" + events
    )


def as_read(path) -> list[tuple[float, float, str]]:
    return [(c.start, c.end, c.text) for c in read_subtitles(path)]


@pytest.mark.parametrize(
    ("name", "cues", "text", "encoding", "expected"),
    [
        ("gb.srt", CUES, srt_text(CUES) + EXTENSION_B, "gb18030", "gb18030"),
        ("le.srt", CUES, srt_text(CUES), "utf-16", "utf-16le-bom"),  # Python writes LE + BOM
        ("be.srt", CUES, srt_text(CUES), "utf-16-be", "utf-16be-bom"),
        ("bom.srt", CUES, srt_text(CUES).replace("\n", "\r\n"), "utf-8-sig", "utf-8-bom"),
        ("big5.srt", TRADITIONAL, srt_text(TRADITIONAL), "big5", "big5"),
        ("lecture.ass", CUES, ass_text(CUES), "utf-8", "utf-8"),
        ("lecture.ssa", CUES, ass_text(CUES), "utf-16", "utf-16le-bom"),
    ],
)
def test_a_file_in_any_kept_encoding_or_ass_reads_as_the_utf8_srt_does(
    tmp_path, name, cues, text, encoding, expected
):
    reference = tmp_path / "reference.srt"
    reference.write_text(srt_text(cues), encoding="utf-8")
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + text.encode("utf-16-be")
    else:
        data = text.encode(encoding)
    (tmp_path / name).write_bytes(data)
    read = read_subtitle_file(tmp_path / name)
    assert read.encoding == expected
    got = [(c.start, c.end, c.text) for c in read.cues]
    if name == "gb.srt":  # the extension-B character GB18030 writes in four bytes
        assert got[-1][2] == "𠮷"
        got = got[:-1]
    assert got == as_read(reference) == cues
    assert read_subtitle_file(reference).encoding == "utf-8"
    if name.endswith((".ass", ".ssa")):
        assert read.format == "ass"  # what the text is ([V4+ Styles]), not the extension
        assert read.changes["comment_event"] == 1 and read.changes["drawing"] == 1
        assert read.changes["sign_style"] == len(cues) and read.changes["markup"] > len(cues)
        assert [c.number for c in read.cues] == [2, 4, 6, 8]  # as an editor numbers events


def test_a_bilingual_ass_file_keeps_the_chinese_lines_and_counts_the_rest(tmp_path):
    (tmp_path / "a.ass").write_text(ass_text(CUES, english=True), encoding="utf-8-sig")
    cleaned = [clean_cue_text(c.text, None) for c in read_subtitles(tmp_path / "a.ass")]
    plain = [clean_cue_text(t, None) for _, _, t in CUES]
    assert [label for label, _ in cleaned] == [label for label, _ in plain]
    assert sum(changes["translation_line"] for _, changes in cleaned) == len(CUES)


def test_a_file_no_encoding_decodes_is_one_line_naming_it(tmp_path):
    (tmp_path / "junk.srt").write_bytes(bytes([0xFF, 0x80, 0x81, 0xFF, 0x30, 0x0A]) * 40)
    with pytest.raises(WhisperforgeError, match=r"junk\.srt: not text in any encoding") as e:
        read_subtitles(tmp_path / "junk.srt")
    assert "\n" not in str(e.value)


def test_webvtt_notes_and_cue_ids_are_not_cue_text(tmp_path):
    (tmp_path / "a.vtt").write_text(
        "WEBVTT\n\nNOTE made by hand\n\nintro\n00:01.000 --> 00:02.000 align:start\n你好\n\n"
        "NOTE a comment\nover two lines\n\n2\n00:03.000 --> 00:04.000\n再见\n"
    )
    assert as_read(tmp_path / "a.vtt") == [(1.0, 2.0, "你好"), (3.0, 4.0, "再见")]


@pytest.mark.parametrize(
    ("text", "language", "kept", "counted"),
    [
        ("我没有。\nI didn't.", "zh", "我没有。", {"translation_line": 1}),
        ("我没有。\nI didn't.", "en", "I didn't.", {"translation_line": 1}),
        ("Hello there", "zh", "", {"other_language": 1}),
        ("你好", "en", "", {"other_language": 1}),
        ("a股 CPI is up\n123", "zh", "a股 CPI is up\n123", {}),  # one Han character: Chinese
        ("♪\nOK", "en", "♪\nOK", {}),  # a line with no letters is no other language
    ],
)
def test_a_cue_keeps_its_lines_in_the_spoken_language(text, language, kept, counted):
    assert keep_spoken_lines(text, language) == (kept, Counter(counted))


# --- real subtitle files as users have them (../shared/realsubs, read in place) -----------------


def expected_encoding(described: str) -> str:
    """index.tsv's words -> read_subtitle_file's name: `UTF-16LE with BOM` -> utf-16le-bom."""
    name = described.split(" (")[0].lower().replace(" with bom", "-bom")
    return {"gbk": "gb18030"}.get(name, name)  # GBK files are read as GB18030, their superset


@pytest.mark.parametrize("row", realsubs_files(), ids=lambda row: row["file"][-40:])
def test_real_subtitle_files_read_in_their_encoding_and_keep_chinese_only(row):
    read = read_subtitle_file(REALSUBS / row["file"])
    assert read.encoding == expected_encoding(row["encoding"])
    assert read.cues
    changes, latin_lines = Counter(), 0
    for cue in read.cues:
        if read.format == "ass":  # override tags and breaks are not text (SRT's go to cleaning)
            assert "{\\" not in cue.text and r"\N" not in cue.text, cue
        label, changed = clean_cue_text(cue.text, None)
        assert "{" not in label and "\\" not in label, cue
        changes.update(changed)
        lines = cue.text.split("\n")
        latin_lines += sum(latin_only(line) for line in lines)
        kept, _ = keep_spoken_lines(cue.text, "zh")
        assert not any(latin_only(line) for line in kept.split("\n")), cue
        if changed["other_language"]:
            changes["other_language_lines"] += sum(latin_only(line) for line in lines)
    # Every English line was dropped, as a translation beside Chinese or a whole English cue.
    assert changes["translation_line"] + changes["other_language_lines"] == latin_lines
    # 简英/繁英: most cues carry an English line (R&M's "简英" file holds the Chinese track only).
    if "英" in row["file"] and "R&M" not in row["file"]:
        assert changes["translation_line"] > len(read.cues) / 2, changes
    if row["file"].endswith("gbk.srt"):
        assert [c.text for c in read.cues] == ["这是中文", "还有更多的中文", "再见"]


def latin_only(line: str) -> bool:
    return bool(re.search("[A-Za-z]", line)) and not re.search("[\u3400-\u9fff]", line)


def test_the_schemas_languages_are_the_ones_cleaning_knows():
    import yaml
    from helpers import ROOT

    from whisperforge.data.subtitle_files import DEFAULT_LANGUAGE, LANGUAGES

    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    language = schema["$defs"]["corpus"]["properties"]["language"]
    assert language["enum"] == list(LANGUAGES) and language["default"] == DEFAULT_LANGUAGE


@pytest.mark.parametrize(
    ("style", "sign"),
    [
        ("Sign", True),
        ("OP-Title", True),
        ("ED", True),
        ("注释", True),
        ("屏幕字", True),
        ("Default", False),
        ("*Default", False),
        ("Default-Top", False),
        ("Subtitle", False),
        ("DV 中文", False),
    ],
)
def test_a_style_that_names_on_screen_text_is_a_sign(style, sign):
    from whisperforge.data.subtitle_files import _is_sign_style

    assert _is_sign_style(style) is sign


@pytest.mark.parametrize("lecture", ["lecture01.srt", "lecture02.srt", "lecture03.vtt"])
def test_the_demo_lectures_keep_their_labels_in_gb18030_utf16_and_bilingual_ass(lecture, tmp_path):
    """The shipped demo lectures (with the faults real subtitle files have: markup, sound
    notes, dashes, full-width forms) re-encoded and converted as users get them: the same labels
    at the same times as the UTF-8 file (an ASS time is in centiseconds)."""
    from helpers import ROOT, bilingual_ass

    source = ROOT / "demo/lectures" / lecture
    text = source.read_text(encoding="utf-8")

    def labels(path) -> list[tuple[float, float, str]]:
        cues = read_subtitles(path)
        return [(c.start, c.end, clean_cue_text(c.text, None)[0]) for c in cues]

    expected = labels(source)
    srt_text = pysubs2.SSAFile.from_string(text).to_string("srt")  # the .vtt's cues as SRT
    english = [f"Line {i}" for i in range(len(pysubs2.SSAFile.from_string(srt_text).events))]
    variants = {
        f"gb{source.suffix}": text.encode("gb18030"),
        f"le{source.suffix}": text.encode("utf-16"),
        "bilingual.ass": bilingual_ass(srt_text, english).encode("utf-16"),
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
        got = labels(tmp_path / name)
        assert [label for *_, label in got] == [label for *_, label in expected], name
        for (start, end, _), (want_start, want_end, _) in zip(got, expected, strict=True):
            assert abs(start - want_start) <= 0.01 and abs(end - want_end) <= 0.01, name
