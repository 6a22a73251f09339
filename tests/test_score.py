"""Tests for whisperforge.metrics.score; every expected number is hand-computed in the comments."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_report import CERS, _cer_json, _write_json

from whisperforge.core.errors import WhisperforgeError
from whisperforge.metrics.cer import normalize, score_pairs
from whisperforge.metrics.score import best_run, score_file, write_scores


def _cer(ref: str, hyp: str, **kw: bool) -> dict:
    return score_pairs([normalize(ref, **kw)], [normalize(hyp, **kw)])


# --- normalize + score_pairs on known pairs ----------------------------------------------------


def test_one_substitution_in_six_chars():
    # 今天天气很好 vs 今天天汽很好: only 气->汽 differs -> S=1, D=0, I=0, 6 ref chars, CER 1/6.
    res = _cer("今天天气很好", "今天天汽很好")
    assert (res["substitutions"], res["deletions"], res["insertions"]) == (1, 0, 0)
    assert res["hits"] == 5
    assert res["ref_chars"] == 6
    assert res["cer"] == pytest.approx(1 / 6)


def test_traditional_hypothesis_matches_simplified_reference():
    # 氣 is the traditional form of 气; after zh-cn conversion the strings are identical.
    assert normalize("今天天氣很好") == "今天天气很好"
    assert _cer("今天天气很好", "今天天氣很好")["cer"] == 0


def test_full_width_latin_is_half_width_lowercase():
    # ＡＢＣ (U+FF21..U+FF23) -> ABC -> abc.
    assert normalize("ＡＢＣ股票") == "abc股票"
    assert _cer("abc股票", "ＡＢＣ股票")["cer"] == 0


def test_full_width_digits_and_ideographic_space():
    # ２０２４ -> 2024, U+3000 ideographic space -> space -> removed.
    assert normalize("２０２４\u3000年") == "2024年"


def test_cjk_is_not_mangled():
    # Applying NFKC to the whole string would turn the compatibility ideograph U+F900 into U+8C48
    # and the circled ① into 1; only full-width forms are converted, so both stay as they are.
    assert normalize("\uf900①") == "\uf900①"


def test_punctuation_and_spaces_removed():
    # Reference 你好，世界！ and hypothesis "你 好 世界" both normalize to 你好世界 -> CER 0.
    assert normalize("你好，世界！") == "你好世界"
    assert _cer("你好，世界！", "你 好 世界")["cer"] == 0


def test_chinese_and_ascii_punctuation_and_symbols():
    text = "「他」说：『好』（对）《书》“是”‘吗’…—·、；？!,.;:?\"'()[]-+$%"
    assert normalize(text) == "他说好对书是吗"


def test_deletion_and_insertion():
    # ref 我爱北京天安门 (7 chars), hyp 爱北京天安门了: 我 deleted, 了 inserted. Every other
    # character is shifted by one, so no 2-edit path uses substitutions: D=1, I=1, S=0, CER 2/7.
    res = _cer("我爱北京天安门", "爱北京天安门了")
    assert (res["substitutions"], res["deletions"], res["insertions"]) == (0, 1, 1)
    assert res["cer"] == pytest.approx(2 / 7)


def test_corpus_level_is_sum_of_edits_over_sum_of_chars():
    # utt 1: 好 vs 坏 -> 1 edit / 1 char (per-utt CER 1.0)
    # utt 2: 今天天气很好真的呀 vs same -> 0 edits / 9 chars (per-utt CER 0)
    # Corpus: (1 + 0) / (1 + 9) = 0.1; mean of per-utterance CERs would be (1.0 + 0) / 2 = 0.5.
    res = score_pairs(["好", "今天天气很好真的呀"], ["坏", "今天天气很好真的呀"])
    assert res["ref_chars"] == 10
    assert res["n_utts"] == 2
    assert res["cer"] == pytest.approx(0.1)


def test_empty_reference_is_excluded_and_counted():
    # "" has no CER; it is skipped, the other pair is exact -> CER 0 over 1 char.
    res = score_pairs(["", "好"], ["嗯", "好"])
    assert res["empty_refs"] == 1
    assert res["n_utts"] == 1
    assert res["ref_chars"] == 1
    assert res["insertions"] == 0
    assert res["cer"] == 0


def test_only_empty_references_does_not_crash():
    res = score_pairs([""], ["嗯"])
    assert res["cer"] is None
    assert (res["n_utts"], res["empty_refs"]) == (0, 1)


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError):
        score_pairs(["好"], [])


# --- numerals option ----------------------------------------------------------------------------


def test_numerals_to_chinese():
    # cn2an reads a number followed by 年 digit by digit: "2024年" -> "二零二四年" (not
    # "二千零二十四年"), which is how AISHELL references write years.
    assert normalize("2024年", numerals_to_chinese=True) == "二零二四年"
    assert _cer("二零二四年", "2024年", numerals_to_chinese=True)["cer"] == 0
    # Without the option the four digits are four substitutions: 4 edits / 5 chars.
    assert _cer("二零二四年", "2024年")["cer"] == pytest.approx(4 / 5)
    # Other numbers are read as quantities: 3 -> 三.
    assert normalize("我有3个苹果", numerals_to_chinese=True) == "我有三个苹果"


def test_numerals_off_by_default_keeps_digits():
    assert normalize("我有3个苹果") == "我有3个苹果"


# --- score_file / write_scores -----------------------------------------------------------------


ROWS = [
    # u1: 1 substitution, 6 chars, CER 1/6; raw: the same.
    {"id": "u1", "ref": "今天天气很好", "hyp": "今天天汽很好", "audio_s": 1800},
    # u2: 1 substitution, 1 char, CER 1.0; raw: the same.
    {"id": "u2", "ref": "好", "hyp": "坏", "audio_s": 900},
    # u3: 1 deletion + 1 insertion, 7 chars, CER 2/7; raw: the same.
    {"id": "u3", "ref": "我爱北京天安门", "hyp": "爱北京天安门了", "audio_s": 900.0},
    # u4: normalized reference is empty -> excluded (empty_refs = 1), also from cer_raw.
    {"id": "u4", "ref": "。", "hyp": "嗯", "audio_s": 0},
    # u5: 0 edits over 4 normalized chars; raw (whitespace removed only): 你好，世界！ (6 chars)
    # vs 你好世界 -> the two punctuation marks are 2 deletions.
    {"id": "u5", "ref": "你好，世界！", "hyp": "你 好 世界"},
]
# normalized: edits 1+1+2+0 = 4 over 6+1+7+4 = 18 chars -> 2/9
# raw:        edits 1+1+2+2 = 6 over 6+1+7+6 = 20 chars -> 0.3
# Whisper-Finetune: u1-u3 as normalized; u5 ref 你好世界 (，！ removed), hyp keeps its two single
#             spaces -> 2 insertions; edits 1+1+2+2 = 6 over 18 chars -> 1/3 (u4 excluded too)
# audio: 1800 + 900 + 900 + 0 (+ u5 without audio_s) = 3600 s = 1.0 h


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_score_file_summary(tmp_path):
    summary, rows = score_file(_write_jsonl(tmp_path / "hyp.jsonl", ROWS))
    assert summary["cer"] == pytest.approx(2 / 9)
    assert summary["cer_raw"] == pytest.approx(0.3)
    assert summary["ref_chars"] == 18
    assert summary["n_utts"] == 4
    assert summary["empty_refs"] == 1
    assert (summary["substitutions"], summary["deletions"], summary["insertions"]) == (2, 1, 1)
    assert summary["audio_hours"] == pytest.approx(1.0)
    assert "zh-cn" in summary["normalization"]
    assert [r["id"] for r in rows] == ["u1", "u2", "u3", "u5"]
    assert sum(r["edits"] for r in rows) == 4
    assert summary["cer_whisper_finetune"] == pytest.approx(1 / 3)
    assert summary["whisper_finetune"] == {
        "substitutions": 2, "deletions": 1, "insertions": 3, "hits": 15, "ref_chars": 18,
    }  # fmt: skip
    assert "！，。" in summary["normalization_whisper_finetune"]
    u5 = rows[3]
    assert (u5["ref_norm"], u5["hyp_norm"], u5["edits"], u5["cer"]) == (
        "你好世界",
        "你好世界",
        0,
        0,
    )


def test_score_file_worst_ordering(tmp_path):
    # By edits desc, then CER desc: u3 (2 edits), u2 (1 edit, CER 1.0), u1 (1 edit, CER 1/6), u5.
    summary, _ = score_file(_write_jsonl(tmp_path / "hyp.jsonl", ROWS), worst_n=3)
    assert [w["id"] for w in summary["worst"]] == ["u3", "u2", "u1"]
    assert summary["worst"][0] == {
        "id": "u3",
        "ref": "我爱北京天安门",
        "hyp": "爱北京天安门了",
        "cer": pytest.approx(2 / 7),
        "edits": 2,
    }


def test_score_file_numerals_option(tmp_path):
    path = _write_jsonl(tmp_path / "hyp.jsonl", [{"id": "a", "ref": "二零二四年", "hyp": "2024年"}])
    assert score_file(path)[0]["cer"] == pytest.approx(4 / 5)
    with_numerals = score_file(path, numerals_to_chinese=True)[0]
    assert with_numerals["cer"] == 0
    # Whisper-Finetune's scoring has no numeral step: 4 substitutions of 5 either way.
    assert with_numerals["cer_whisper_finetune"] == pytest.approx(4 / 5)


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "hyp.jsonl"
    good = json.dumps(ROWS[0], ensure_ascii=False)
    path.write_text(f"{good}\n\n{{not json\n", "utf-8")
    with pytest.raises(WhisperforgeError, match=r"hyp\.jsonl:3\b"):
        score_file(path)


def test_missing_key_names_line(tmp_path):
    path = _write_jsonl(tmp_path / "hyp.jsonl", [ROWS[0], {"id": "x", "ref": "好"}])
    with pytest.raises(WhisperforgeError, match=r"hyp\.jsonl:2: .*'hyp'"):
        score_file(path)


def test_duplicate_id_is_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "hyp.jsonl", [ROWS[0], ROWS[0]])
    with pytest.raises(WhisperforgeError, match=r"hyp\.jsonl:2: duplicate id 'u1'"):
        score_file(path)


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_file_names_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content, "utf-8")
    with pytest.raises(WhisperforgeError, match=r"empty\.jsonl"):
        score_file(path)


def test_all_references_empty_is_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "hyp.jsonl", [ROWS[3]])
    with pytest.raises(WhisperforgeError, match=r"hyp\.jsonl"):
        score_file(path)


def test_write_scores(tmp_path):
    hyp = _write_jsonl(tmp_path / "hyp.jsonl", ROWS)
    out = tmp_path / "out"
    write_scores(hyp, out / "cer.json", out / "per_utt.tsv", worst_n=2)
    assert sorted(p.name for p in out.iterdir()) == ["cer.json", "per_utt.tsv"]
    data = json.loads((out / "cer.json").read_text("utf-8"))
    assert isinstance(data["cer"], float)
    assert data["cer"] == pytest.approx(2 / 9)
    assert data["cer_whisper_finetune"] == pytest.approx(1 / 3)
    assert [w["id"] for w in data["worst"]] == ["u3", "u2"]
    with (out / "per_utt.tsv").open(encoding="utf-8", newline="") as fh:
        table = list(csv.reader(fh, delimiter="\t"))
    assert table[0] == ["id", "ref_norm", "hyp_norm", "edits", "ref_chars", "cer"]
    assert [r[0] for r in table[1:]] == ["u1", "u2", "u3", "u5"]
    assert table[3][3:5] == ["2", "7"]


def test_write_scores_failure_writes_nothing(tmp_path):
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text("{broken\n", "utf-8")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(WhisperforgeError):
        write_scores(hyp, out / "cer.json", out / "per_utt.tsv")
    assert list(out.iterdir()) == []


# --- best_run -----------------------------------------------------------------------------------


def test_best_run_picks_lowest_run_not_base(tmp_path):
    cer_files = {
        (m, s): _write_json(tmp_path / "eval" / m / s / "cer.json", _cer_json(m, s, c))
        for (m, s), c in CERS.items()
    }
    assert best_run(cer_files, split="test") == "alpha"  # 0.0943 < 0.10; base not a candidate
    assert best_run(cer_files, split="dev") == "alpha"  # 0.0754 < 0.30
    # base lower than every run: still a run is returned.
    worse = {**cer_files, ("base", "test"): _write_json(
        tmp_path / "b" / "cer.json", _cer_json("base", "test", 0.01))}  # fmt: skip
    assert best_run(worse) == "alpha"


def test_best_run_tie_is_alphabetical(tmp_path):
    files = {
        (run, "test"): _write_json(tmp_path / run / "cer.json", _cer_json(run, "test", 0.1))
        for run in ("zeta", "eta", "theta")
    }
    assert best_run(files) == "eta"
    with pytest.raises(WhisperforgeError, match="split 'dev'"):
        best_run(files, split="dev")
