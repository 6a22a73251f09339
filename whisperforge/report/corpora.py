"""The summary's sections on the user's own data: corpora (hours in and kept, what was dropped and
where to see it), long-form measures on held-out recordings, and the learning curve.

- Corpora: per corpus and split, recordings, cues, hours in and kept, cues dropped by reason,
  and the path of each recording's `<recording>.rejected.srt` (open it beside the video).
- Long-form: every model on each corpus's held-out recordings, subtitled whole: CER over the
  recordings, loops, long deletions, characters where the reference has none, the median
  start-time error, and the share of cues within the subtitle conventions, beside the CER of the
  main corpus's test split, so that gain and forgetting show side by side. A run worse than base
  on any long-form measure is flagged (longform.worse_than).
- Learning curve: each run's hours of own data (per corpus, as its mix draws it) beside its
  held-out long-form CER; runs with more corrected lectures (or a `fraction` of them) form it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from whisperforge.evaluate.longform import worse_than
from whisperforge.report.tables import md_table, pct

LONGFORM_COLUMNS = (
    "model",
    "set",
    "cer",
    "loops",
    "long_deletions",
    "no_reference_chars",
    "start_error_s",
    "conventions_met",
    "main_test_cer",
    "worse_than_base",
)


def imported_rows(corpus: str, s: Mapping[str, Any]) -> list[list[str]]:
    """A manifests, hf or lhotse corpus's rows: hours and (hf, lhotse) utterances, speakers and
    the rows skipped, by reason, per split."""
    rows = []
    for split in ("train", "dev", "test"):
        utterances = s.get("utterances", {}).get(split)
        if s.get("kind") in ("hf", "lhotse") and not utterances:
            continue  # a split the corpus does not have
        skipped = (s.get("skipped") or {}).get(split) or {}
        speakers = (s.get("speakers") or {}).get(split)
        hours = f"{s['hours'][split]:.3f}"
        rows.append(
            [
                f"{corpus} ({s['kind']})" if "kind" in s else corpus,
                split,
                "",
                "" if speakers is None else str(speakers),
                "",
                hours,
                hours if "kind" in s else "",
                "" if utterances is None else str(utterances),
                ", ".join(f"{reason}: {n}" for reason, n in skipped.items()) or "-",
            ]
        )
    return rows


def corpora_section(stats: Mapping[str, Mapping[str, Any]]) -> str:
    rows, rejected = [], []
    for corpus, s in sorted(stats.items()):
        if s.get("kind") != "recordings":  # manifests, hf, lhotse: hours, utterances, skips
            rows += imported_rows(corpus, s)
            continue
        for split, t in s["splits"].items():
            if not t["recordings"]:
                continue
            dropped = ", ".join(f"{reason}: {n}" for reason, n in t["dropped"].items()) or "-"
            rows.append(
                [
                    corpus,
                    split,
                    str(t["recordings"]),
                    str(t["speakers"]),
                    f"{t['cues_kept']}/{t['cues']}",
                    f"{t['hours_in']:.3f}",
                    f"{t['hours_kept']:.3f}",
                    str(t["windows"]),
                    dropped,
                ]
            )
        for name, r in sorted(s["recordings"].items()):
            if r["cues_kept"] < r["cues"]:
                rejected.append(
                    f"- {corpus}/{name} ({r['split']}): {r['cues'] - r['cues_kept']} cues "
                    f"dropped, offset {r['offset_s']:+.2f} s: `{r['rejected_srt']}`"
                )
    table = md_table(
        [
            "corpus",
            "split",
            "recordings",
            "speakers",
            "cues kept",
            "hours in",
            "hours kept",
            "windows / utterances",
            "dropped",
        ],
        rows,
        [False, False, True, True, True, True, True, True, False],
    )
    parts = [
        "Each recordings corpus's `report.tsv` (results/manifests/corpora/<corpus>/) has one row "
        "per cue: kept, or why not; an hf or lhotse corpus counts its skipped rows by reason "
        "(data.bad_wav: skip, and the data filters) in its stats.json.",
        table,
    ]
    if rejected:
        parts.append("Dropped cues, with the reason in the cue text, to open beside the video:")
        parts.append("\n".join(rejected))
    return "\n\n".join(parts)


def _measures(result: Mapping[str, Any]) -> dict[str, Any]:
    lf = result["longform"]
    return {
        "cer": lf["cer"],
        "loops": lf["loops"]["count"],
        "long_deletions": lf["long_deletions"]["count"],
        "no_reference_chars": lf["no_reference"]["chars"],
        "start_error_s": lf["start_error"]["median_s"],
        "conventions_met": result["conventions"].get("share_meeting_all"),
    }


def longform_rows(
    longform: Mapping[tuple[str, str], Mapping[str, Any]],
    models: Sequence[str],
    main_test_cer: Mapping[str, float | None],
) -> list[dict[str, Any]]:
    """One row per (model, corpus); `worse_than_base` names the measures a run lost on."""
    rows = []
    for corpus in sorted({c for _, c in longform}):
        base = longform.get(("base", corpus))
        for model in models:
            result = longform.get((model, corpus))
            if result is None:
                continue
            worse = worse_than(base, result) if base is not None and model != "base" else []
            rows.append(
                {
                    "model": model,
                    "set": corpus,
                    **_measures(result),
                    "main_test_cer": main_test_cer.get(model),
                    "worse_than_base": ", ".join(worse),
                }
            )
    return rows


def _num(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def longform_section(rows: Sequence[Mapping[str, Any]]) -> str:
    table = md_table(
        [
            "model",
            "held-out set",
            "long-form CER %",
            "loops",
            "long deletions",
            "chars without reference",
            "start error s",
            "cues within conventions",
            "main test CER %",
            "worse than base on",
        ],
        [
            [
                r["model"],
                r["set"],
                pct(r["cer"]),
                str(r["loops"]),
                str(r["long_deletions"]),
                str(r["no_reference_chars"]),
                _num(r["start_error_s"]),
                _num(r["conventions_met"]),
                pct(r["main_test_cer"]),
                r["worse_than_base"] or "-",
            ]
            for r in rows
        ],
        [False, False, True, True, True, True, True, True, True, False],
    )
    return (
        "Each held-out recording subtitled whole (VAD, the primary export, faster-whisper) and "
        "scored against its checked subtitles (`results/eval/<model>/<set>/longform.json`).\n\n"
        + table
    )


def learning_curve_rows(
    mixes: Mapping[str, Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Per run and held-out corpus: hours of that corpus's training data and the long-form CER."""
    cer = {(r["model"], r["set"]): r["cer"] for r in rows}
    out = []
    for run, facts in sorted(mixes.items()):
        for corpus in sorted({c for _, c in cer}):
            hours = facts.get(corpus, {}).get("hours", 0.0)
            out.append(
                {
                    "run": run,
                    "corpus": corpus,
                    "hours": hours,
                    "longform_cer": cer.get((run, corpus)),
                }
            )
    return out


def learning_curve_section(curve: Sequence[Mapping[str, Any]]) -> str:
    return md_table(
        ["run", "corpus", "hours of it trained on", "held-out long-form CER %"],
        [[c["run"], c["corpus"], f"{c['hours']:.3f}", pct(c["longform_cer"])] for c in curve],
        [False, False, True, True],
    )
