"""Character error rate (CER) scoring for Chinese ASR hypotheses.

Input is a hypotheses file, one JSON object per line::

    {"id": "BAC009S0764W0121", "ref": "...", "hyp": "...", "audio_s": 2.31}

`id`, `ref` and `hyp` are required strings; `audio_s` is an optional number (seconds of audio).

Reference and hypothesis go through cer.py's `normalize`, and the CER is corpus-level
(cer.py). Utterances whose normalized reference is empty have no defined CER; they are excluded
from every count and reported as `empty_refs`. The same utterances are also scored after
cer.py's `normalize_whisper_finetune` (`cer_whisper_finetune`), the figure comparable to
Whisper-Finetune's published CERs.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import atomic_path, json_number, read_json_object, write_json
from whisperforge.metrics.cer import (
    RAW_DESCRIPTION,
    WHISPER_FINETUNE_NORMALIZATION,
    align,
    describe_normalization,
    normalize,
    normalize_whisper_finetune,
    remove_whitespace,
)

PER_UTT_COLUMNS = ("id", "ref_norm", "hyp_norm", "edits", "ref_chars", "cer")


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

    Whisper-Finetune's scoring of the same utterances: ``cer_whisper_finetune`` (corpus-level
    fraction), ``whisper_finetune`` (its ``substitutions``, ``deletions``, ``insertions``,
    ``hits``, ``ref_chars``) and ``normalization_whisper_finetune`` (description). The numeral
    option does not apply to it (Whisper-Finetune keeps digits).

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
    totals, per_utt = align([r for _, r, _ in kept], [h for _, _, h in kept])
    raw, _ = align(
        [remove_whitespace(rec["ref"]) for rec, _, _ in kept],
        [remove_whitespace(rec["hyp"]) for rec, _, _ in kept],
    )
    # Every utterance kept has a non-empty Whisper-Finetune reference too: what that normalization
    # deletes (thirteen punctuation marks, whitespace at the ends) `normalize` deletes as well.
    wf, _ = align(
        [normalize_whisper_finetune(rec["ref"]) for rec, _, _ in kept],
        [normalize_whisper_finetune(rec["hyp"]) for rec, _, _ in kept],
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
        "cer_whisper_finetune": wf["cer"],
        "whisper_finetune": {
            key: wf[key]
            for key in ("substitutions", "deletions", "insertions", "hits", "ref_chars")
        },
        "normalization_whisper_finetune": WHISPER_FINETUNE_NORMALIZATION,
        "worst": _worst(rows, {rec["id"]: rec for rec in records}, worst_n),
    }
    return summary, rows


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

    with atomic_path(per_utt_tsv) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(PER_UTT_COLUMNS)
        for row in rows:
            writer.writerow(
                [row[c] if c != "cer" else f"{row['cer']:.6f}" for c in PER_UTT_COLUMNS]
            )
    write_json(cer_json, summary)
    return summary


# --- reading scores back ------------------------------------------------------------------------

BASE = "base"  # the model before fine-tuning; never a candidate for the best run
CER_KEYS = ("cer", "substitutions", "deletions", "insertions", "n_utts")


def load_cer(path: str | Path) -> dict[str, Any]:
    """A cer.json written by `write_scores`, with at least the CER_KEYS."""
    return read_json_object(path, "CER file", CER_KEYS)


def best_run(cer_files: Mapping[tuple[str, str], Path], split: str = "test") -> str:
    """The fine-tuned run (never "base") with the lowest CER on `split`; ties -> alphabetical."""
    scored = []
    for (model, sp), path in cer_files.items():
        if model == BASE or sp != split:
            continue
        cer = json_number(load_cer(path)["cer"])
        if cer is not None:
            scored.append((cer, model))
    if not scored:
        raise WhisperforgeError(f"no fine-tuned run has a CER on split '{split}'")
    return min(scored)[1]
