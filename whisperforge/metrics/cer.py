"""Character error rate: the normalizations and corpus-level edit counts.

Reference and hypothesis go through the same normalization before scoring, and the CER is
corpus-level: the sum of edits over all utterances divided by the sum of reference characters
(what `jiwer.process_characters` computes for lists), not the mean of per-utterance CERs.

Two normalizations: the project's own `normalize` (used everywhere: scoring, training's dev-set
CER in train.py) and `normalize_whisper_finetune`, which reproduces the scoring of
Whisper-Finetune's `evaluation.py` so that a CER can be set beside its published AISHELL-1
figures. The scoring step (score.py) reports both.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import cn2an
import jiwer
import zhconv

NORMALIZATION = (
    "full-width->half-width (NFKC on U+3000 and U+FF00-U+FFEF only); traditional->simplified "
    "(zhconv zh-cn); lowercase; {numerals}remove Unicode punctuation (P*) and symbols (S*); "
    "remove all whitespace"
)
NUMERALS_STEP = "Arabic numerals->Chinese (cn2an an2cn); "
RAW_DESCRIPTION = "raw ref/hyp with only whitespace removed"


def _to_half_width(text: str) -> str:
    """Map full-width forms (and the ideographic space) to their half-width equivalents.

    NFKC is applied only to characters in the Halfwidth and Fullwidth Forms block and to U+3000:
    applied to the whole string it would also rewrite unrelated compatibility characters
    (e.g. the squared ㍿ becomes 株式会社, ½ becomes 1⁄2), which is not what a CER should do.
    """
    return "".join(
        unicodedata.normalize("NFKC", ch) if ch == "\u3000" or "\uff00" <= ch <= "\uffef" else ch
        for ch in text
    )


def _strip_punct_and_space(text: str) -> str:
    """Drop every character whose Unicode category is punctuation (P*) or symbol (S*), and all
    whitespace."""
    return "".join(
        ch for ch in text if not ch.isspace() and unicodedata.category(ch)[0] not in ("P", "S")
    )


def remove_whitespace(text: str) -> str:
    """Remove all whitespace (jiwer would otherwise count spaces as characters)."""
    return "".join(text.split())


def normalize(text: str, *, numerals_to_chinese: bool = False) -> str:
    """Normalize one transcript; the same function is applied to reference and hypothesis.

    Steps, in order: full-width -> half-width; traditional -> simplified Chinese (zhconv
    ``zh-cn``); lowercase; optionally Arabic numerals -> Chinese numerals; removal of punctuation
    and symbols (Unicode categories P* and S*, Chinese and ASCII alike); removal of all whitespace.

    ``numerals_to_chinese`` runs ``cn2an.transform(text, "an2cn")``. AISHELL-1 references write
    numbers in characters while Whisper often emits digits, so this avoids counting "3" vs "三"
    as an error. cn2an is heuristic: a number followed by 年 is read digit by digit
    ("2024年" -> "二零二四年"), other numbers as quantities ("15" -> "十五"), "%" becomes
    "百分之...". It runs before punctuation removal so that "12.5" and "50%" are read correctly.
    """
    text = _to_half_width(text)
    text = zhconv.convert(text, "zh-cn")
    text = text.lower()
    if numerals_to_chinese:
        text = cn2an.transform(text, "an2cn")
    return _strip_punct_and_space(text)


# Whisper-Finetune's evaluation.py (utils/data_utils.py `remove_punctuation`, `to_simple`; its
# metrics/cer.py with the jiwer 3 it pins). Facts, re-implemented here:
# - exactly these thirteen marks are deleted (other punctuation, quotes, brackets, symbols stay);
# - the text is stripped, then converted to simplified Chinese by zhconv ("zh-cn");
# - no lowercasing, no full-width mapping, digits stay digits;
# - spaces are NOT removed: its CER metric only collapses runs of whitespace into one space and
#   strips the ends (jiwer's RemoveMultipleSpaces + Strip), then counts every character, spaces
#   included. (Its AISHELL labels have no spaces because its data preparation joins the words.)
# - the CER is the sum over utterances of S + D + I divided by the sum of S + D + hits, i.e.
#   corpus-level, as `align` computes.
WHISPER_FINETUNE_PUNCTUATION = "!,.;:?、！，。；：？"
_WF_PUNCTUATION_RUN = re.compile(f"[{re.escape(WHISPER_FINETUNE_PUNCTUATION)}]+")
_WHITESPACE_RUN = re.compile(r"\s\s+")
WHISPER_FINETUNE_NORMALIZATION = (
    f"Whisper-Finetune evaluation.py: remove {WHISPER_FINETUNE_PUNCTUATION}; strip; "
    "traditional->simplified (zhconv zh-cn); runs of whitespace -> one space (spaces count as "
    "characters); no lowercasing, no full-width mapping, digits kept"
)


def normalize_whisper_finetune(text: str) -> str:
    """Normalize one transcript as Whisper-Finetune's evaluation does before its CER.

    Deletes the thirteen marks of WHISPER_FINETUNE_PUNCTUATION (ASCII ``!,.;:?``, Chinese
    ``、！，。；：？``), strips, converts traditional to simplified Chinese (zhconv ``zh-cn``,
    which also turns 「」 into “”), then applies its CER metric's own transform: each run of
    two or more whitespace characters becomes one space, and the ends are stripped. Everything
    else (case, full-width letters and digits, other punctuation, inner spaces) is kept and
    counted. Independent of ``numerals_to_chinese``, which belongs to `normalize` only.
    """
    text = _WF_PUNCTUATION_RUN.sub("", text).strip()
    text = zhconv.convert(text, "zh-cn")
    return _WHITESPACE_RUN.sub(" ", text).strip()


def describe_normalization(*, numerals_to_chinese: bool = False) -> str:
    """One-line description of the steps `normalize` applies with these options."""
    return NORMALIZATION.format(numerals=NUMERALS_STEP if numerals_to_chinese else "")


def _chunk_counts(chunks: list[Any]) -> dict[str, int]:
    """Count substitutions, deletions, insertions and hits in one utterance's jiwer alignment."""
    counts = {"substitutions": 0, "deletions": 0, "insertions": 0, "hits": 0}
    for chunk in chunks:
        n_ref = chunk.ref_end_idx - chunk.ref_start_idx
        n_hyp = chunk.hyp_end_idx - chunk.hyp_start_idx
        if chunk.type == "substitute":
            counts["substitutions"] += n_ref
        elif chunk.type == "delete":
            counts["deletions"] += n_ref
        elif chunk.type == "insert":
            counts["insertions"] += n_hyp
        else:
            counts["hits"] += n_ref
    return counts


def align(refs: list[str], hyps: list[str]) -> tuple[dict[str, Any], list[dict[str, int]]]:
    """Corpus totals plus per-utterance counts for pairs whose references are all non-empty."""
    if not refs:
        totals = {"substitutions": 0, "deletions": 0, "insertions": 0, "hits": 0}
        return {**totals, "cer": None, "ref_chars": 0, "n_utts": 0}, []
    out = jiwer.process_characters(refs, hyps)
    per_utt = [_chunk_counts(chunks) for chunks in out.alignments]
    ref_chars = sum(len(r) for r in out.references)
    edits = out.substitutions + out.deletions + out.insertions
    totals = {
        "cer": edits / ref_chars,
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "hits": out.hits,
        "ref_chars": ref_chars,
        "n_utts": len(refs),
    }
    return totals, per_utt


def score_pairs(refs: list[str], hyps: list[str]) -> dict[str, Any]:
    """Corpus-level CER of already-normalized reference/hypothesis pairs, computed with jiwer.

    Returns ``cer`` (sum of edits / sum of reference characters; None if no pair is scoreable),
    ``substitutions``, ``deletions``, ``insertions``, ``hits``, ``ref_chars``, ``n_utts`` (pairs
    scored) and ``empty_refs`` (pairs skipped because the reference is empty). Characters are
    compared as given, spaces included: normalize first.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    kept = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    totals, _ = align([r for r, _ in kept], [h for _, h in kept])
    return {**totals, "empty_refs": len(refs) - len(kept)}
