"""Character error rate (CER) scoring for Chinese ASR hypotheses.

Input is a hypotheses file, one JSON object per line::

    {"id": "BAC009S0764W0121", "ref": "...", "hyp": "...", "audio_s": 2.31, "decode_s": 0.12}

`id`, `ref` and `hyp` are required strings; `audio_s` is an optional number (seconds of audio).

Reference and hypothesis go through the same `normalize` before scoring, and the CER is
corpus-level: the sum of edits over all utterances divided by the sum of reference characters
(what `jiwer.process_characters` computes for lists), not the mean of per-utterance CERs.
Utterances whose normalized reference is empty have no defined CER; they are excluded from every
count and reported as `empty_refs`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import cn2an
import jiwer
import zhconv

from whisperforge.errors import WhisperforgeError

NORMALIZATION = (
    "full-width->half-width (NFKC on U+3000 and U+FF00-U+FFEF only); traditional->simplified "
    "(zhconv zh-cn); lowercase; {numerals}remove Unicode punctuation (P*) and symbols (S*); "
    "remove all whitespace"
)
NUMERALS_STEP = "Arabic numerals->Chinese (cn2an an2cn); "
RAW_DESCRIPTION = "raw ref/hyp with only whitespace removed"

PER_UTT_COLUMNS = ("id", "ref_norm", "hyp_norm", "edits", "ref_chars", "cer")


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


def _remove_whitespace(text: str) -> str:
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


def _align(refs: list[str], hyps: list[str]) -> tuple[dict[str, Any], list[dict[str, int]]]:
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
    totals, _ = _align([r for r, _ in kept], [h for _, h in kept])
    return {**totals, "empty_refs": len(refs) - len(kept)}


def _parse_line(line: str, where: str) -> dict[str, Any]:
    """Parse and validate one hypotheses line; ``where`` is "file:line" for error messages."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise WhisperforgeError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(rec, dict):
        raise WhisperforgeError(f"{where}: expected a JSON object")
    for key in ("id", "ref", "hyp"):
        if not isinstance(rec.get(key), str):
            raise WhisperforgeError(f"{where}: missing or non-string '{key}'")
    audio_s = rec.get("audio_s", 0.0)
    if isinstance(audio_s, bool) or not isinstance(audio_s, (int, float)) or audio_s < 0:
        raise WhisperforgeError(f"{where}: 'audio_s' must be a non-negative number")
    if not math.isfinite(audio_s):
        raise WhisperforgeError(f"{where}: 'audio_s' must be finite")
    return rec


def read_hypotheses(hyp_jsonl: Path) -> list[dict[str, Any]]:
    """Read a hypotheses JSONL file; blank lines are skipped, ids must be unique."""
    hyp_jsonl = Path(hyp_jsonl)
    try:
        text = hyp_jsonl.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise WhisperforgeError(f"{hyp_jsonl}: cannot read hypotheses file ({e})") from None
    records: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rec = _parse_line(line, f"{hyp_jsonl}:{lineno}")
        if rec["id"] in seen:
            first = seen[rec["id"]]
            raise WhisperforgeError(
                f"{hyp_jsonl}:{lineno}: duplicate id '{rec['id']}' (first on line {first})"
            )
        seen[rec["id"]] = lineno
        records.append(rec)
    if not records:
        raise WhisperforgeError(f"{hyp_jsonl}: hypotheses file is empty")
    return records


def _worst(rows: list[dict[str, Any]], records: dict[str, dict], n: int) -> list[dict[str, Any]]:
    """The ``n`` utterances with most edits, ties broken by higher CER, then by id."""
    ranked = sorted(rows, key=lambda r: (-r["edits"], -r["cer"], r["id"]))[: max(n, 0)]
    return [
        {
            "id": r["id"],
            "ref": records[r["id"]]["ref"],
            "hyp": records[r["id"]]["hyp"],
            "cer": r["cer"],
            "edits": r["edits"],
        }
        for r in ranked
    ]


def score_file(
    hyp_jsonl: Path, *, numerals_to_chinese: bool = False, worst_n: int = 20
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score a hypotheses JSONL file; returns (summary, per-utterance rows).

    Summary keys: ``cer`` (normalized, corpus-level fraction), ``cer_raw`` (the raw ref/hyp
    strings with only whitespace removed, since jiwer counts spaces as characters; same
    utterances as ``cer``), ``substitutions``, ``deletions``, ``insertions``, ``hits``,
    ``ref_chars``, ``n_utts`` (scored), ``empty_refs`` (skipped: empty normalized reference),
    ``audio_hours`` (sum of ``audio_s`` over all lines), ``normalization`` (description of the
    steps) and ``worst`` (the ``worst_n`` scored utterances by edits, then CER).

    Per-utterance rows (scored utterances only, file order): id, ref_norm, hyp_norm, edits,
    ref_chars, cer.
    """
    hyp_jsonl = Path(hyp_jsonl)
    records = read_hypotheses(hyp_jsonl)
    norm = [
        (
            rec,
            normalize(rec["ref"], numerals_to_chinese=numerals_to_chinese),
            normalize(rec["hyp"], numerals_to_chinese=numerals_to_chinese),
        )
        for rec in records
    ]
    kept = [(rec, r, h) for rec, r, h in norm if r]
    if not kept:
        raise WhisperforgeError(f"{hyp_jsonl}: no utterance has a non-empty normalized reference")
    totals, per_utt = _align([r for _, r, _ in kept], [h for _, _, h in kept])
    raw, _ = _align(
        [_remove_whitespace(rec["ref"]) for rec, _, _ in kept],
        [_remove_whitespace(rec["hyp"]) for rec, _, _ in kept],
    )
    rows = []
    for (rec, ref_norm, hyp_norm), counts in zip(kept, per_utt, strict=True):
        edits = counts["substitutions"] + counts["deletions"] + counts["insertions"]
        rows.append(
            {
                "id": rec["id"],
                "ref_norm": ref_norm,
                "hyp_norm": hyp_norm,
                "edits": edits,
                "ref_chars": len(ref_norm),
                "cer": edits / len(ref_norm),
            }
        )
    summary = {
        **totals,
        "cer_raw": raw["cer"],
        "cer_raw_definition": RAW_DESCRIPTION,
        "empty_refs": len(records) - len(kept),
        "audio_hours": sum(float(rec.get("audio_s", 0.0)) for rec in records) / 3600.0,
        "normalization": describe_normalization(numerals_to_chinese=numerals_to_chinese),
        "numerals_to_chinese": numerals_to_chinese,
        "worst": _worst(rows, {rec["id"]: rec for rec in records}, worst_n),
    }
    return summary, rows


def _atomic_write(path: Path, write: Any) -> None:
    """Write ``path`` through a temp file in the same directory and `os.replace` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_scores(
    hyp_jsonl: Path,
    cer_json: Path,
    per_utt_tsv: Path,
    *,
    numerals_to_chinese: bool = False,
    worst_n: int = 20,
) -> dict[str, Any]:
    """Score ``hyp_jsonl`` and write ``cer_json`` (pretty, sorted keys) and ``per_utt_tsv``
    (header + one row per scored utterance). Both files are written atomically; nothing is
    written if scoring fails. Returns the summary."""
    summary, rows = score_file(hyp_jsonl, numerals_to_chinese=numerals_to_chinese, worst_n=worst_n)

    def write_json(fh: Any) -> None:
        json.dump(summary, fh, ensure_ascii=False, indent=2, sort_keys=True)
        fh.write("\n")

    def write_tsv(fh: Any) -> None:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(PER_UTT_COLUMNS)
        for row in rows:
            writer.writerow(
                [row[c] if c != "cer" else f"{row['cer']:.6f}" for c in PER_UTT_COLUMNS]
            )

    _atomic_write(Path(per_utt_tsv), write_tsv)
    _atomic_write(Path(cer_json), write_json)
    return summary
