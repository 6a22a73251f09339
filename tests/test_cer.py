"""Tests for whisperforge.metrics.cer's two normalizations, on hand-written examples.

Every expected string is written by hand from the steps each normalization documents: the
project's `normalize` (full-width -> half-width, zh-cn, lowercase, optional numerals, drop every
punctuation/symbol and all whitespace) and `normalize_whisper_finetune` (Whisper-Finetune's
evaluation.py: drop only !,.;:?、！，。；：？, strip, zh-cn, collapse runs of whitespace).
"""

from __future__ import annotations

import pytest

from whisperforge.metrics.cer import (
    WHISPER_FINETUNE_PUNCTUATION,
    normalize,
    normalize_whisper_finetune,
    score_pairs,
)

# (text, normalize(text), normalize_whisper_finetune(text))
CASES = [
    # Chinese and ASCII punctuation of Whisper-Finetune's list: both drop it; Whisper-Finetune
    # keeps the space after the ASCII comma and the case.
    ("你好，世界！Hello, world.", "你好世界helloworld", "你好世界Hello world"),
    # Marks outside that list (quotes, brackets, title marks, hyphen) stay in Whisper-Finetune's.
    ("“引号”（括号）《书名》-", "引号括号书名", "“引号”（括号）《书名》-"),
    # zhconv's zh-cn also turns 「」 into “”: only Whisper-Finetune's keeps them.
    ("它們說：「你好」。", "它们说你好", "它们说“你好”"),
    # Full-width letters and digits and the ideographic space: the project maps them to ASCII
    # (then drops the space); Whisper-Finetune keeps all three as they are.
    ("ＡＢＣ１２３\u3000ｘｙｚ", "abc123xyz", "ＡＢＣ１２３\u3000ｘｙｚ"),
    # Full-width ！？；：， are in Whisper-Finetune's list, the full-width full stop ． is not.
    ("好！？；：，", "好", "好"),
    ("好．", "好", "好．"),
    # Traditional -> simplified in both.
    ("頭髮亂了，請來這裡", "头发乱了请来这里", "头发乱了请来这里"),
    # Digits stay digits in both (numerals_to_chinese is off by default).
    ("我有3個蘋果", "我有3个苹果", "我有3个苹果"),
    # "." is in the list, so Whisper-Finetune reads 12.5% as 125%; the project drops . and %.
    ("涨了12.5%", "涨了125", "涨了125%"),
    # Whitespace: the project removes all of it; Whisper-Finetune strips the ends and collapses
    # each run of two or more into one space (a single inner space is kept and counted).
    ("  今天  天气\t\t很好 ", "今天天气很好", "今天 天气 很好"),
]


@pytest.mark.parametrize(("text", "project", "_"), CASES)
def test_project_normalization(text, project, _):
    assert normalize(text) == project


@pytest.mark.parametrize(("text", "_", "wf"), CASES)
def test_whisper_finetune_normalization(text, _, wf):
    assert normalize_whisper_finetune(text) == wf


def test_whisper_finetune_list_is_the_published_one():
    # Whisper-Finetune utils/data_utils.py remove_punctuation: '!,.;:?、！，。；：？'.
    assert WHISPER_FINETUNE_PUNCTUATION == "!,.;:?、！，。；：？"
    assert normalize_whisper_finetune(WHISPER_FINETUNE_PUNCTUATION + "好") == "好"


def test_numerals_apply_to_the_project_normalization_only():
    # cn2an: 3 -> 三; a number before 年 is read digit by digit. Whisper-Finetune has no such step.
    assert normalize("我有3个苹果", numerals_to_chinese=True) == "我有三个苹果"
    assert normalize("2024年", numerals_to_chinese=True) == "二零二四年"
    assert normalize_whisper_finetune("2024年") == "2024年"


def test_whisper_finetune_cer_counts_spaces_and_case():
    # Reference 你好，世界！ -> 你好世界 (4 chars); hypothesis "你 好 世界" keeps its two single
    # spaces -> 2 insertions, CER 2/4. The project's normalization: CER 0.
    ref, hyp = "你好，世界！", "你 好 世界"
    wf = score_pairs([normalize_whisper_finetune(ref)], [normalize_whisper_finetune(hyp)])
    assert (wf["insertions"], wf["ref_chars"], wf["cer"]) == (2, 4, pytest.approx(0.5))
    assert score_pairs([normalize(ref)], [normalize(hyp)])["cer"] == 0
    # Case: Hello vs hello is one substitution over 5 characters for Whisper-Finetune.
    wf = score_pairs([normalize_whisper_finetune("Hello")], [normalize_whisper_finetune("hello")])
    assert (wf["substitutions"], wf["cer"]) == (1, pytest.approx(0.2))
