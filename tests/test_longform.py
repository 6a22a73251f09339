"""Long-form measures (whisperforge.evaluate.longform) on hand-made cues whose answers are known,
and one real decode of a recording through evaluate_recording and scripts/longform.py."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import ROOT, write_tone_wav

from whisperforge.core.config import section_defaults
from whisperforge.core.errors import WhisperforgeError
from whisperforge.evaluate.longform import (
    LONG_DELETION_CHARS,
    LOOP_MIN_REPEATS,
    combine,
    correction_cer,
    evaluate_recording,
    read_reference,
    reference_json,
    score_longform,
    subtitle_conventions,
    worse_than,
)
from whisperforge.metrics.cer import normalize, score_pairs
from whisperforge.subtitles.cues import Cue, SubtitleOptions

OPTIONS = SubtitleOptions.from_config(
    section_defaults(ROOT / "schemas/config.schema.yaml", "subtitles")
)
SENTENCE = "今天我们讨论一下中国经济的增长速度"  # 17 characters, none repeated twice in a row


def test_thresholds_are_the_documented_ones():
    assert (LOOP_MIN_REPEATS, LONG_DELETION_CHARS) == (3, 10)
    assert (OPTIONS.max_lines, OPTIONS.max_chars_per_s) == (2, 9.0)
    assert (OPTIONS.min_cue_s, OPTIONS.max_cue_s, OPTIONS.max_line_chars) == (1.0, 7.0, 20)


# --- CER and loops --------------------------------------------------------------------------------


def test_cer_is_over_the_whole_recording_with_the_cer_tables_normalization():
    ref = [Cue(0, 3, "今天我们讨论"), Cue(3, 6, "中国经济")]
    # punctuation, spaces and traditional characters are not errors; cue boundaries do not matter
    hyp = [Cue(0, 2, "今天，我們"), Cue(2, 6, "討論 中國經"), Cue(6, 7, "齐！")]
    out = score_longform(hyp, ref)
    want = score_pairs([normalize("今天我们讨论中国经济")], [normalize("今天我们讨论中国经齐")])
    assert out["cer"] == pytest.approx(want["cer"]) == pytest.approx(0.1)
    assert (out["substitutions"], out["ref_chars"], out["hyp_chars"]) == (1, 10, 10)
    assert out["cer_whisper_finetune"] is not None
    assert out["cer_whisper_finetune"] > out["cer"]  # it counts the space
    assert score_longform(hyp, [])["cer"] is None


def loop_hyp(repeats: int) -> list[Cue]:
    return [Cue(0.0, 5.0, "我们讨论经济" + "问题" * repeats + "今天")]


def test_a_phrase_three_times_in_a_row_is_a_loop_twice_is_not():
    ref = [Cue(0.0, 5.0, "我们讨论经济问题今天")]
    three = score_longform(loop_hyp(3), ref)["loops"]
    assert three["count"] == 1 and three["chars"] == 6
    (example,) = three["examples"]
    assert (example["phrase"], example["repeats"], example["ref_repeats"]) == ("问题", 3, 1)
    assert (example["start"], example["end"]) == pytest.approx((5 * 6 / 14, 5 * 12 / 14), abs=1e-3)
    assert score_longform(loop_hyp(2), ref)["loops"]["count"] == 0
    assert score_longform(loop_hyp(8), ref)["loops"]["examples"][0]["repeats"] == 8
    # one character over and over is also a loop once it is a two-character phrase 3 times
    babble = [Cue(0, 5, "我们" + "的" * 6)]
    assert score_longform(babble, [Cue(0, 5, "我们的")])["loops"]["count"] == 1


def test_a_repetition_the_reference_has_is_not_a_loop():
    ref = [Cue(0.0, 4.0, "好的好的好的我们开始"), Cue(10.0, 12.0, "谢谢大家")]
    assert score_longform(ref, ref)["loops"]["count"] == 0
    more = [Cue(0.0, 4.0, "好的好的好的好的我们开始"), Cue(10.0, 12.0, "谢谢大家")]
    assert score_longform(more, ref)["loops"]["examples"][0]["ref_repeats"] == 3


def test_a_loop_across_split_cues_is_one_loop():
    hyp = [Cue(0, 2, "我们讨论问题问"), Cue(2, 4, "题问题问题"), Cue(4, 6, "今天")]
    loops = score_longform(hyp, [Cue(0, 6, "我们讨论问题今天")])["loops"]
    assert loops["count"] == 1 and loops["examples"][0]["repeats"] == 4


# --- deletions ----------------------------------------------------------------------------------


def deletion_case(n: int) -> dict:
    """A reference of two cues; the hypothesis misses the first `n` characters of the second."""
    ref = [Cue(0.0, 5.0, "央行下调存款准备金率"), Cue(6.0, 6.0 + len(SENTENCE) / 2, SENTENCE)]
    hyp = [Cue(0.0, 5.0, "央行下调存款准备金率"), Cue(6.0, 15.0, SENTENCE[n:])]
    return score_longform(hyp, ref)["long_deletions"]


def test_twelve_missing_characters_are_a_long_deletion_nine_are_not():
    twelve = deletion_case(12)
    assert (twelve["count"], twelve["chars"]) == (1, 12)
    (example,) = twelve["examples"]
    assert example["text"] == SENTENCE[:12]
    assert (example["start"], example["end"]) == pytest.approx((6.0, 12.0))  # 2 chars a second
    assert deletion_case(9) == {"count": 0, "chars": 0, "examples": []}
    assert deletion_case(LONG_DELETION_CHARS)["count"] == 1


def test_a_dropped_sentence_with_a_stray_character_in_its_place_still_counts():
    ref = [Cue(0, 4, "我们开始"), Cue(4, 10, SENTENCE), Cue(10, 12, "谢谢大家")]
    hyp = [Cue(0, 4, "我们开始"), Cue(4, 10, "嗯"), Cue(10, 12, "谢谢大家")]
    deletions = score_longform(hyp, ref)["long_deletions"]
    assert deletions["count"] == 1 and deletions["chars"] == len(SENTENCE) - 1


# --- text where the reference has none, and timing ----------------------------------------------


def test_text_over_a_reference_gap_is_counted_in_characters_and_seconds():
    ref = [Cue(0.0, 4.0, "我们开始上课"), Cue(20.0, 24.0, "下课")]
    hyp = [
        Cue(0.1, 4.2, "我们开始上课"),
        Cue(8.0, 11.5, "字幕由社区提供"),  # music: nothing in the reference from 4 to 20 s
        Cue(12.0, 12.5, "。"),  # no characters once normalized: nothing written
        Cue(19.0, 20.5, "下课"),  # overlaps the reference: not counted
    ]
    alone = score_longform(hyp, ref)["no_reference"]
    assert (alone["cues"], alone["chars"], alone["seconds"]) == (1, 7, 3.5)
    assert alone["examples"] == [{"start": 8.0, "end": 11.5, "text": "字幕由社区提供"}]
    everything = score_longform(hyp, [])["no_reference"]
    assert (everything["cues"], everything["chars"]) == (3, 15)


def test_start_error_is_the_median_over_mutually_best_overlapping_cues():
    ref = [Cue(0.0, 4.0, "一"), Cue(5.0, 9.0, "二"), Cue(10.0, 14.0, "三"), Cue(30, 31, "四")]
    hyp = [
        Cue(0.2, 4.0, "一"),  # 0.2
        Cue(5.5, 7.0, "二"),  # 0.5: the larger half of a split cue
        Cue(7.0, 8.0, "二"),  # the smaller half: not matched
        Cue(11.0, 14.0, "三"),  # 1.0
        Cue(20.0, 21.0, "五"),  # overlaps nothing
    ]
    start = score_longform(hyp, ref)["start_error"]
    assert start == {"median_s": 0.5, "matched": 3}
    assert score_longform(hyp[4:], ref)["start_error"] == {"median_s": None, "matched": 0}


# --- conventions ----------------------------------------------------------------------------------


def test_conventions_on_known_cues():
    cues = [
        Cue(0.0, 2.0, "今天天气很好"),  # meets all: 6 characters, 2 s, 3 a second
        Cue(2.0, 2.5, "好"),  # too short
        Cue(3.0, 11.0, "一二三四五六七八九十"),  # too long
        Cue(11.0, 12.0, "一二三四五六七八九十一二"),  # 12 characters a second
        Cue(12.0, 16.0, "第一行\n第二行\n第三行"),  # three lines
        Cue(16.0, 20.0, "一" * 21),  # a line of 21 characters
    ]
    out = subtitle_conventions(cues, OPTIONS)
    assert out["cues"] == 6
    assert (out["chars_per_line_max"], out["lines_per_cue_max"]) == (21, 3)
    assert out["share_line_chars_within"] == out["share_lines_within"] == pytest.approx(5 / 6, 1e-3)
    assert out["duration_median_s"] == 3.0
    assert out["share_duration_within"] == pytest.approx(4 / 6, abs=1e-4)
    assert out["chars_per_s_median"] == pytest.approx((2.25 + 3.0) / 2)
    assert out["share_chars_per_s_over"] == pytest.approx(1 / 6, abs=1e-4)
    assert out["share_meeting_all"] == pytest.approx(1 / 6, abs=1e-4)
    assert out["limits"]["max_chars_per_s"] == 9.0
    relaxed = replace(OPTIONS, max_lines=3, max_line_chars=21, max_chars_per_s=12, min_cue_s=0.5)
    assert subtitle_conventions(cues, replace(relaxed, max_cue_s=8))["share_meeting_all"] == 1.0
    assert subtitle_conventions([], OPTIONS)["share_meeting_all"] is None


# --- comparisons and corrections ------------------------------------------------------------------


def test_worse_than_names_the_measures_that_got_worse():
    ref = [Cue(0.0, 5.0, "我们讨论经济问题今天")]
    base = score_longform([Cue(0.0, 5.0, "我们讨论经济问题今天")], ref)
    run = score_longform([*loop_hyp(4), Cue(8.0, 9.0, "谢谢")], ref)
    assert worse_than(base, run) == ["cer", "loops.count", "no_reference.chars"]
    assert worse_than(run, base) == []
    assert worse_than({"longform": base}, {"longform": base}) == []
    later = score_longform([Cue(0.3, 5.0, "我们讨论经济问题今天")], ref)
    assert worse_than(base, later) == ["start_error.median_s"]
    assert worse_than(base, score_longform([Cue(0.04, 5.0, "我们讨论经济问题今天")], ref)) == []


def test_correction_cer_counts_what_the_person_changed():
    model = [Cue(0, 2, "今天我们讨论"), Cue(2, 4, "中国经齐")]
    corrected = [Cue(0, 2, "今天，我们讨论"), Cue(2, 3, "中国经济"), Cue(3, 4, "问题")]
    out = correction_cer(model, corrected)
    assert (out["chars_changed"], out["corrected_chars"], out["model_chars"]) == (3, 12, 10)
    assert (out["substitutions"], out["deletions"]) == (1, 2)
    assert out["cer"] == pytest.approx(3 / 12)
    assert out["chars_changed_raw"] == 4  # the comma the person added counts here
    assert correction_cer(model, model)["chars_changed"] == 0


@pytest.mark.parametrize("encoding", ["gb18030", "utf-16", "utf-8-sig"])
def test_the_persons_corrected_file_is_read_in_the_encoding_an_editor_saved_it_in(
    tmp_path, encoding
):
    from whisperforge.evaluate.longform import correction_of_files

    model = tmp_path / "lecture.mp4.srt"  # what whisperforge writes: UTF-8
    model.write_text("1\n00:00:00,000 --> 00:00:02,000\n中国经齐\n", encoding="utf-8")
    corrected = tmp_path / "lecture.srt"
    text = "1\r\n00:00:00,000 --> 00:00:02,000\r\n中国经济\r\n"
    corrected.write_bytes(text.encode(encoding))
    out = correction_of_files(model, corrected)
    assert (out["chars_changed"], out["corrected_chars"]) == (1, 4)


def test_reference_json_round_trips_and_bad_files_name_themselves(tmp_path):
    cues = [Cue(0.0, 1.5, "你好"), Cue(2.0, 3.0, "再见")]
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(reference_json(cues)), encoding="utf-8")
    assert read_reference(path) == cues
    for bad, message in [
        ({"cue": []}, "lacks cues"),
        ({"cues": [{"start": 1, "end": 0.5, "text": "x"}]}, "cue 0: ends"),
        ({"cues": [{"start": "0", "end": 1, "text": "x"}]}, "must be numbers"),
        ({"cues": [{"start": 0, "end": 1}]}, "'text' must be a string"),
    ]:
        path.write_text(json.dumps(bad), encoding="utf-8")
        with pytest.raises(WhisperforgeError, match=message):
            read_reference(path)


# --- a real decode --------------------------------------------------------------------------------

REFERENCE = [Cue(0.5, 5.0, "央行下调存款准备金率"), Cue(6.5, 8.5, "楼市新政")]
DECODE = replace(OPTIONS, beam_size=1, vad=False)  # tones are no speech to the VAD


SCRIPT = """
import json, runpy, sys
from types import SimpleNamespace as NS
sys.path.insert(0, "scripts")
job = json.loads(sys.argv[1])
smk = NS(rule="longform", log=[job["out"] + ".log"], output=[job["out"]], resources=NS(),
         threads=1,
         input=NS(model=job["model"], audio=[job["audio"]], reference=[job["reference"]]),
         params=NS(options=job["options"], compute_type="auto", recordings=["lecture"],
                   numerals_to_chinese=False))
runpy.run_path("scripts/longform.py", init_globals={"snakemake": smk})
"""


def test_a_recording_is_scored_through_the_subtitles_path_by_the_step_script(exported, tmp_path):
    # The one-token tiny model: a babbling model's text follows the process's OpenMP thread
    # count (int8 GEMMs), which differs between this worker and the step's subprocess.
    model = exported[0]
    audio = tmp_path / "lecture.wav"
    write_tone_wav(audio, 9.0, 330.0)
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(reference_json(REFERENCE), ensure_ascii=False))
    result = evaluate_recording(model, audio, REFERENCE, DECODE, compute_type="auto", threads=1)
    assert result["speech_segments"] == 2  # windows of max_segment_s: 0-6 s, 6-9 s
    assert result["cues"] >= 2 and result["audio_s"] == 9.0
    assert result["conventions"]["cues"] == result["cues"]
    assert result["longform"]["ref_chars"] == 14 and result["longform"]["cer"] > 0
    assert result["longform"]["start_error"]["matched"] >= 1
    assert not {"seconds", "device", "compute_type"} & set(result)

    out = tmp_path / "out/longform.json"
    options = section_defaults(ROOT / "schemas/config.schema.yaml", "subtitles")
    job = {
        "out": str(out),
        "model": str(model),
        "audio": str(audio),
        "reference": str(reference),
        "options": {**options, "beam_size": 1, "vad": False},
    }
    subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(job)], cwd=ROOT, check=True)
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(combine({"lecture": result})))
    assert written["recordings"]["lecture"] == json.loads(json.dumps(result))
    assert written["longform"]["cer"] == result["longform"]["cer"]  # one recording: the same
    assert "decode" in Path(f"{out}.log").read_text()


def test_several_recordings_combine_into_one_cer_over_all_their_characters():
    ref_a, ref_b = [Cue(0, 2, "央行下调存款")], [Cue(0, 2, "楼市")]
    a = {
        "longform": score_longform([Cue(0, 2, "央行下调存款")], ref_a),
        "cues": 1,
        "audio_s": 2.0,
        "conventions": {"share_meeting_all": 1.0},
    }
    b = {
        "longform": score_longform([Cue(0, 2, "楼")], ref_b),
        "cues": 3,
        "audio_s": 2.0,
        "conventions": {"share_meeting_all": 0.0},
    }
    both = combine({"a": a, "b": b})
    assert both["longform"]["cer"] == 1 / 8  # one deletion over 6 + 2 characters, not a mean
    assert both["longform"]["ref_chars"] == 8
    assert both["conventions"]["share_meeting_all"] == 0.25  # weighted by cues
    assert both["recordings"]["b"] is b and both["audio_s"] == 4.0
