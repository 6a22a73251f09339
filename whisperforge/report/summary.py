"""The summary stage: CER/speed tables, charts, worst utterances, run settings; loss curves.

`summarize` reads every cer.json (written by `whisperforge.metrics.score`), keyed (model, variant,
set):
the primary export variant's at `results/eval/<model>/<set>/cer.json`, another variant q's at
`results/eval/<model>/ct2-<q>/<set>/cer.json` (`eval_key` reads the key from the path); every
`results/eval/<run>/speed.json` and each run's Trainer state, and writes:

* `summary.md`  markdown tables: CER % per model, variant and set under both normalizations
  (whisperforge's and Whisper-Finetune's, the one comparable to published AISHELL-1 figures),
  the change vs base, flags (a run worse than base on a set; a variant over the CER gate), edit
  counts, the variants' CER beside their speed, speed, best checkpoints; aligned so it reads in
  a terminal too;
* `summary.tsv` the CER table, one row per (model, variant, set);
* `cer.png`     a bar chart of CER % per model and variant, grouped by set;
* `speed.tsv`   one row per (run, engine, variant, batch size) of every speed.json;
* `worst.tsv`   the worst utterances of every (model, variant, set);
* `runs.yaml`   the full settings of every run.

The CER gate: a variant whose CER on a set exceeds the primary export's (same model, same set) by
more than `max_cer_delta` points is flagged; with `fail_on_cer_delta` summarize raises instead,
before writing anything.

Everything is sorted and free of timestamps, so the same inputs give the same bytes; every file is
written atomically. The CER chart is drawn by `whisperforge.evaluate.plots`, the best run for
subtitles is picked by `whisperforge.metrics.score.best_run` (lowest test CER of the primary
variant).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import json_number, read_json_object, write_text
from whisperforge.evaluate.plots import (
    load_trainer_state,
    plot_cer,
    plot_forgetting,
    plot_learning_curve,
)
from whisperforge.metrics.forgetting import Forgetting, forgetting_of, forgetting_table, guard_line
from whisperforge.metrics.score import BASE, load_cer
from whisperforge.report import corpora as rc
from whisperforge.report.tables import md_table, pct

Key = tuple[str, str, str]  # (model, variant, set)

CANONICAL_SPLITS = ("train", "dev", "test")
OUT_KEYS = ("summary_md", "table_tsv", "chart_png", "speed_tsv", "worst_tsv", "runs_yaml")
LEARNING_CURVE_KEY = "learning_curve_png"  # optional: written when `out` names it
FORGETTING_KEY = "forgetting_png"  # optional: written when `out` names it
SPEED_KEYS = ("utterances", "audio_s")  # plus `engines`, or the older `hf` and `ct2`
ENGINE_KEYS = ("engine", "variant", "batch_size", "seconds")
VARIANT_DIR_PREFIX = "ct2-"
# Whisper-Finetune's README, AISHELL-1 test, its own normalization (see ../shared/REFERENCE.md).
PUBLISHED_AISHELL = "turbo zero-shot 8.65 %, LoRA 3.61 %"
WF_LABEL = (
    "CER % (Whisper-Finetune norm., comparable to published AISHELL-1 test figures: "
    f"{PUBLISHED_AISHELL})"
)
WHISPERFORGE_LABEL = "CER % (whisperforge norm.)"

TABLE_COLUMNS = (
    "model",
    "split",  # the evaluation set: a corpus split or a name from eval.sets
    "cer",
    "cer_pct",
    "rel_change_vs_base_pct",
    "cer_raw",
    "substitutions",
    "deletions",
    "insertions",
    "hits",
    "ref_chars",
    "n_utts",
    "empty_refs",
    "audio_hours",
    # added with variants and Whisper-Finetune's normalization (at the end: positions unchanged)
    "variant",
    "cer_whisper_finetune",
    "cer_wf_pct",
    "worse_than_base",
    "cer_delta_vs_primary_pts",
    "cer_gate",
)
WORST_COLUMNS = ("model", "split", "id", "ref", "hyp", "edits", "cer", "variant")


# --- formatting ---------------------------------------------------------------------------------


def _rel_change(cer: Any, base_cer: Any) -> float | None:
    """Relative change of `cer` vs `base_cer` in percent, or None if undefined."""
    v, b = json_number(cer), json_number(base_cer)
    if v is None or b is None or b == 0:
        return None
    return round(100 * (v - b) / b, 1) + 0.0  # + 0.0 turns -0.0 into 0.0


def _fmt_rel(rel: float | None) -> str:
    return "n/a" if rel is None else f"{rel:+.1f} %"


def _fmt_float(x: Any, digits: int) -> str:
    v = json_number(x)
    return "" if v is None else f"{v:.{digits}f}"


def _fmt_cell(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    return str(x)


def _tsv_cell(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    return _fmt_cell(x)


def _tsv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows([[_tsv_cell(c) for c in row] for row in rows])
    return buf.getvalue()


# --- keys and ordering --------------------------------------------------------------------------


def eval_key(cer_json: str | Path, primary: str) -> Key:
    """(model, variant, set) of `.../eval/<model>/<set>/cer.json` (the `primary` variant) or
    `.../eval/<model>/ct2-<q>/<set>/cer.json` (variant q)."""
    parts = Path(cer_json).parts
    if (
        len(parts) >= 5
        and parts[-5] == "eval"
        and parts[-3].startswith(VARIANT_DIR_PREFIX)
        and len(parts[-3]) > len(VARIANT_DIR_PREFIX)
    ):
        return parts[-4], parts[-3].removeprefix(VARIANT_DIR_PREFIX), parts[-2]
    if len(parts) >= 4 and parts[-4] == "eval":
        return parts[-3], primary, parts[-2]
    raise WhisperforgeError(
        f"{cer_json}: not an evaluation path (eval/<model>/[ct2-<variant>/]<set>/cer.json)"
    )


def _model_order(models: Sequence[str]) -> list[str]:
    """base first, then the runs alphabetically."""
    uniq = set(models)
    return ([BASE] if BASE in uniq else []) + sorted(uniq - {BASE})


def _set_order(sets: Sequence[str]) -> list[str]:
    """train, dev, test first (in that order), then any other set alphabetically."""
    uniq = set(sets)
    return [s for s in CANONICAL_SPLITS if s in uniq] + sorted(uniq - set(CANONICAL_SPLITS))


def _variant_order(variants: Sequence[str], present: Sequence[str]) -> list[str]:
    """The configured variants (primary first) that have results, then any other alphabetically."""
    uniq = set(present)
    return [v for v in dict.fromkeys(variants) if v in uniq] + sorted(uniq - set(variants))


# --- flags --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flags:
    """What summary.md and summary.tsv flag, per (model, variant, set)."""

    worse_than_base: dict[Key, bool]  # runs only, where base has a CER on the same variant/set
    delta_pts: dict[Key, float]  # non-primary variants: CER points vs the primary export
    gate_failed: dict[Key, bool]  # delta_pts > max_cer_delta


def _flags(cers: dict[Key, dict], primary: str, max_cer_delta: float) -> Flags:
    worse, delta, failed = {}, {}, {}
    for (model, variant, set_), res in cers.items():
        cer = json_number(res["cer"])
        if cer is None:
            continue
        base = json_number((cers.get((BASE, variant, set_)) or {}).get("cer"))
        if model != BASE and base is not None:
            worse[(model, variant, set_)] = cer > base
        ref = json_number((cers.get((model, primary, set_)) or {}).get("cer"))
        if variant != primary and ref is not None:
            # Rounded so that, e.g., 10.5 % vs 10.0 % is exactly 0.5 points, not 0.5000000001.
            pts = round(100 * (cer - ref), 9) + 0.0
            delta[(model, variant, set_)] = pts
            failed[(model, variant, set_)] = pts > max_cer_delta
    return Flags(worse, delta, failed)


def _label(model: str, variant: str, primary: str) -> str:
    """A model as the summary names it: the primary export plain, other variants in brackets."""
    return model if variant == primary else f"{model} ({variant})"


def _gate_message(key: Key, cers: dict[Key, dict], flags: Flags, primary: str, limit: float) -> str:
    """One line: model, variant, set, the two CERs, the delta and the config key."""
    model, variant, set_ = key
    return (
        f"{model}'s {variant} export has CER {pct(cers[key]['cer'])} % on {set_}, "
        f"{flags.delta_pts[key]:+.2f} points vs {primary} "
        f"({pct(cers[(model, primary, set_)]['cer'])} %), over eval.max_cer_delta {limit:g}"
    )


def _flag_lines(
    cers: dict[Key, dict], flags: Flags, order: list[Key], primary: str, max_cer_delta: float
) -> list[str]:
    lines = []
    for key in order:
        model, variant, set_ = key
        if flags.worse_than_base.get(key):
            lines.append(
                f"- ⚠ {_label(model, variant, primary)} is worse than "
                f"{_label(BASE, variant, primary)} on {set_}: {pct(cers[key]['cer'])} % vs "
                f"{pct(cers[(BASE, variant, set_)]['cer'])} %"
            )
    for key in order:
        if flags.gate_failed.get(key):
            lines.append(f"- ⚠ {_gate_message(key, cers, flags, primary, max_cer_delta)}")
    return lines


# --- CER tables ---------------------------------------------------------------------------------


def _compact_table(
    cers: dict[Key, dict], rows: list[tuple[str, str]], sets: list[str], primary: str, field: str
) -> str:
    """One row per (model, variant), one column per set: CER % of `field`, and for the
    whisperforge normalization the relative change vs base (same variant)."""
    body = []
    for model, variant in rows:
        row = [model, variant]
        for set_ in sets:
            res = cers.get((model, variant, set_))
            if res is None:
                row.append("–")
                continue
            cell = pct(res.get(field))
            base = cers.get((BASE, variant, set_))
            if field == "cer" and model != BASE and base is not None:
                cell += f" ({_fmt_rel(_rel_change(res['cer'], base['cer']))})"
            row.append(cell)
        body.append(row)
    return md_table(
        ["model", "variant", *(f"{s} CER %" for s in sets)],
        body,
        [False, False] + [True] * len(sets),
    )


def _detail_table(cers: dict[Key, dict], order: list[Key]) -> str:
    rows = []
    for model, variant, set_ in order:
        res = cers[(model, variant, set_)]
        base = cers.get((BASE, variant, set_))
        rel = (
            "" if model == BASE or base is None else _fmt_rel(_rel_change(res["cer"], base["cer"]))
        )
        rows.append(
            [
                model,
                variant,
                set_,
                pct(res["cer"]),
                rel,
                pct(res.get("cer_whisper_finetune")),
                pct(res.get("cer_raw")),
                str(res["substitutions"]),
                str(res["deletions"]),
                str(res["insertions"]),
                _fmt_cell(res.get("ref_chars")),
                str(res["n_utts"]),
                _fmt_float(res.get("audio_hours"), 2),
            ]
        )
    return md_table(
        [
            "model",
            "variant",
            "set",
            "CER % (whisperforge norm.)",
            "vs base",
            "CER % (Whisper-Finetune norm.)",
            "raw CER %",
            "sub",
            "del",
            "ins",
            "ref chars",
            "utts",
            "hours",
        ],
        rows,
        [False, False, False] + [True] * 10,
    )


def _normalization_lines(cers: dict[Key, dict], order: list[Key]) -> str:
    """How each normalization was applied; a normalization that differs between results is
    listed per result."""

    def describe(field: str, name: str, fallback: str) -> list[str]:
        descs: dict[str, list[str]] = {}
        for key in order:
            desc = cers[key].get(field) or fallback
            descs.setdefault(desc, []).append("/".join(key))
        if len(descs) == 1:
            return [f"{name}: {next(iter(descs))}."]
        lines = [f"{name} differs between results:"]
        return lines + [f"- {', '.join(where)}: {desc}" for desc, where in sorted(descs.items())]

    intro = (
        "CER is corpus-level (substitutions + deletions + insertions over reference characters), "
        "computed after the same normalization of reference and hypothesis. Raw CER only "
        "removes whitespace."
    )
    lines = [intro, ""]
    lines += describe("normalization", "whisperforge normalization", "not recorded")
    lines.append("")
    lines += describe(
        "normalization_whisper_finetune",
        "Whisper-Finetune normalization",
        "not recorded (cer.json scored before it was added)",
    )
    return "\n".join(lines)


def _table_rows(cers: dict[Key, dict], order: list[Key], flags: Flags) -> list[list[Any]]:
    """summary.tsv: one row per (model, variant, set) with a CER file, TABLE_COLUMNS."""
    table_rows = []
    for key in order:
        model, variant, set_ = key
        res = cers[key]
        base = cers.get((BASE, variant, set_))
        rel = None if model == BASE or base is None else _rel_change(res["cer"], base["cer"])
        wf = json_number(res.get("cer_whisper_finetune"))
        gate = flags.gate_failed.get(key)
        table_rows.append(
            [
                model,
                set_,
                _fmt_float(res["cer"], 6),
                _fmt_float(None if json_number(res["cer"]) is None else 100 * res["cer"], 2),
                "" if rel is None else f"{rel:.1f}",
                _fmt_float(res.get("cer_raw"), 6),
                res["substitutions"],
                res["deletions"],
                res["insertions"],
                res.get("hits"),
                res.get("ref_chars"),
                res["n_utts"],
                res.get("empty_refs"),
                _fmt_float(res.get("audio_hours"), 4),
                variant,
                _fmt_float(wf, 6),
                _fmt_float(None if wf is None else 100 * wf, 2),
                flags.worse_than_base.get(key),
                _fmt_float(flags.delta_pts.get(key), 2),
                "" if gate is None else ("fail" if gate else "pass"),
            ]
        )
    return table_rows


def _worst_rows(cers: dict[Key, dict], order: list[Key]) -> list[list[Any]]:
    """worst.tsv: every (model, variant, set)'s worst utterances, WORST_COLUMNS."""
    worst_rows = []
    for model, variant, set_ in order:
        for w in cers[(model, variant, set_)].get("worst") or []:
            worst_rows.append(
                [
                    model,
                    set_,
                    w.get("id"),
                    w.get("ref"),
                    w.get("hyp"),
                    w.get("edits"),
                    _fmt_float(w.get("cer"), 4),
                    variant,
                ]
            )
    return worst_rows


# --- speed --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedRow:
    """One (run, engine, variant, batch size) timing as speed.tsv shows it (numbers as text)."""

    run: str
    engine: str
    variant: str
    batch_size: str
    compute_type: str
    device: str
    seconds: str
    rtf: str
    speedup: str
    peak_memory_mb: str
    memory: str  # what peak_memory_mb measures: rss (the process, CPU) or cuda (the GPU)
    utterances: str
    audio_s: str
    beam_size: str


SPEED_COLUMNS = tuple(f.name for f in fields(SpeedRow))  # speed.tsv's header


def _load_speed(path: Path) -> dict[str, Any]:
    """A speed.json: `engines` (one record per engine, variant and batch size) or, written
    before those, `hf` and `ct2` (transformers vs faster-whisper, both unbatched)."""
    s = read_json_object(path, "speed file", SPEED_KEYS)
    if "engines" in s:
        engines = s["engines"]
        if not isinstance(engines, list) or not all(isinstance(e, dict) for e in engines):
            raise WhisperforgeError(f"{path}: speed file's engines must be a list of objects")
        for i, e in enumerate(engines):
            missing = [k for k in ENGINE_KEYS if k not in e]
            if missing:
                raise WhisperforgeError(
                    f"{path}: speed file's engines[{i}] lacks {', '.join(missing)}"
                )
    elif not (isinstance(s.get("hf"), dict) and isinstance(s.get("ct2"), dict)):
        raise WhisperforgeError(f"{path}: speed file lacks engines (or the older hf and ct2)")
    return s


def _engines(s: Mapping[str, Any], primary: str) -> list[dict[str, Any]]:
    """A speed.json's engine records; the older format as two unbatched records."""
    if "engines" in s:
        return [dict(e) for e in s["engines"]]
    hf, ct2 = s["hf"], s["ct2"]
    return [
        {
            "engine": "transformers",
            "variant": hf.get("dtype"),
            "compute_type": hf.get("dtype"),
            "device": hf.get("device"),
            "batch_size": 1,
            "seconds": hf.get("seconds"),
            "rtf": hf.get("rtf"),
        },
        {
            "engine": "faster-whisper",
            "variant": primary,
            "compute_type": ct2.get("compute_type"),
            "device": ct2.get("device"),
            "batch_size": 1,
            "seconds": ct2.get("seconds"),
            "rtf": ct2.get("rtf"),
            "speedup": s.get("speedup"),
        },
    ]


def _speed_rows(speeds: dict[str, dict], primary: str) -> list[SpeedRow]:
    """Runs alphabetically, each run's engines in the order its speed.json lists them."""
    rows = []
    for run in sorted(speeds):
        s = speeds[run]
        for e in _engines(s, primary):
            rows.append(
                SpeedRow(
                    run=run,
                    engine=_fmt_cell(e.get("engine")),
                    variant=_fmt_cell(e.get("variant")),
                    batch_size=_fmt_cell(e.get("batch_size")),
                    compute_type=_fmt_cell(e.get("compute_type")),
                    device=_fmt_cell(e.get("device") or s.get("device")),
                    seconds=_fmt_float(e.get("seconds"), 2),
                    rtf=_fmt_float(e.get("rtf"), 4),
                    speedup=_fmt_float(e.get("speedup"), 2),
                    peak_memory_mb=_fmt_float(e.get("peak_memory_mb"), 0),
                    memory=_fmt_cell(e.get("memory")),
                    utterances=_fmt_cell(s.get("utterances")),
                    audio_s=_fmt_float(s.get("audio_s"), 2),
                    beam_size=_fmt_cell(s.get("beam_size")),
                )
            )
    return rows


def _speed_section(speeds: dict[str, dict], rows: list[SpeedRow]) -> str:
    headline = []
    for run in sorted(speeds):
        s = speeds[run]
        if "engines" in s and json_number(s.get("speedup")) is not None:
            batch = s.get("batch_size")
            batched = "unbatched" if batch == 1 else f"batched at {_fmt_cell(batch)}"
            headline.append(
                f"- {run}: the primary export in faster-whisper is {s['speedup']:.2f}x "
                f"transformers, both {batched} with beam "
                f"{_fmt_cell(s.get('beam_size'))}, on {_fmt_cell(s.get('device'))} "
                f"({_fmt_cell(s.get('utterances'))} utterances, "
                f"{_fmt_float(s.get('audio_s'), 1)} s of audio"
                + (
                    f"; {s['hf_texts_equal_ct2']} of them with the same text as transformers)"
                    if isinstance(s.get("hf_texts_equal_ct2"), int)
                    and not isinstance(s.get("hf_texts_equal_ct2"), bool)
                    else ")"
                )
            )
    table = md_table(
        [
            "run",
            "engine",
            "variant",
            "batch",
            "seconds",
            "RTF",
            "speedup",
            "peak MB",
            "device",
            "compute type",
        ],
        [
            [
                r.run,
                r.engine,
                r.variant,
                r.batch_size,
                r.seconds,
                r.rtf,
                f"{r.speedup}x" if r.speedup else "",
                f"{r.peak_memory_mb} ({r.memory})" if r.peak_memory_mb and r.memory else "",
                r.device,
                r.compute_type,
            ]
            for r in rows
        ],
        [False, False, False, True, True, True, True, True, False, False],
    )
    explain = (
        "Same utterances and beam for every engine of a run; RTF = seconds / audio seconds; "
        "speedup: transformers seconds at the same batch size / the row's seconds; peak MB: the "
        "process's resident memory (rss) or the GPU's peak allocation (cuda)."
    )
    return "\n\n".join([*(["\n".join(headline)] if headline else []), explain, table])


def _variant_speed(speeds: dict[str, dict], model: str, variant: str, primary: str) -> dict:
    """The faster-whisper timing of `variant` in `model`'s speed.json: at the file's batch size
    where it has one, else the largest batch; {} if none."""
    s = speeds.get(model)
    if s is None:
        return {}
    fw = [
        e
        for e in _engines(s, primary)
        if e.get("engine") == "faster-whisper" and e.get("variant") == variant
    ]
    same_batch = [e for e in fw if e.get("batch_size") == s.get("batch_size")]
    candidates = same_batch or fw
    if not candidates:
        return {}
    return max(candidates, key=lambda e: json_number(e.get("batch_size")) or 0)


def _variants_section(
    cers: dict[Key, dict],
    flags: Flags,
    rows: list[tuple[str, str]],
    sets: list[str],
    speeds: dict[str, dict],
    primary: str,
    max_cer_delta: float,
) -> str:
    """Each (model, variant): CER % per set (other variants: points vs the primary and the gate)
    beside its faster-whisper speed."""
    body = []
    for model, variant in rows:
        row = [model, variant]
        for set_ in sets:
            key = (model, variant, set_)
            if key not in cers:
                row.append("–")
            elif key in flags.delta_pts:
                verdict = "over the gate ⚠" if flags.gate_failed[key] else "ok"
                row.append(f"{pct(cers[key]['cer'])} ({flags.delta_pts[key]:+.2f}, {verdict})")
            else:
                row.append(pct(cers[key]["cer"]))
        e = _variant_speed(speeds, model, variant, primary)
        row += (
            [
                _fmt_cell(e.get("batch_size")),
                _fmt_float(e.get("seconds"), 2),
                _fmt_float(e.get("rtf"), 4),
                f"{_fmt_float(e.get('speedup'), 2)}x" if json_number(e.get("speedup")) else "",
            ]
            if e
            else ["–"] * 4
        )
        body.append(row)
    table = md_table(
        ["model", "variant", *(f"{s} CER %" for s in sets), "batch", "seconds", "RTF", "speedup"],
        body,
        [False, False] + [True] * (len(sets) + 4),
    )
    intro = (
        f"CER % (whisperforge norm.) of each export variant; {primary} is the primary export. "
        f"In brackets: points vs {primary} on the same set, and the CER gate (at most "
        f"+{max_cer_delta:g} points, eval.max_cer_delta). Speed: faster-whisper on the run's "
        "speed step (the base model has none)."
    )
    return "\n\n".join([intro, table])


# --- the summary --------------------------------------------------------------------------------


def _checkpoint_section(states: dict[str, dict], runs: Mapping[str, dict]) -> str:
    rows = []
    for run in sorted(states):
        state = states[run]
        history = [e for e in state.get("log_history", []) if isinstance(e, dict)]
        train_losses = [e["loss"] for e in history if json_number(e.get("loss")) is not None]
        eval_losses = [
            e["eval_loss"] for e in history if json_number(e.get("eval_loss")) is not None
        ]
        best_ckpt = state.get("best_model_checkpoint")
        metric = (runs.get(run) or {}).get("metric_for_best", "")
        rows.append(
            [
                run,
                _fmt_cell(state.get("global_step")),
                Path(best_ckpt).name if best_ckpt else "n/a",
                f"{_fmt_float(state.get('best_metric'), 4) or 'n/a'}"
                + (f" ({metric})" if metric else ""),
                _fmt_float(train_losses[-1], 4) if train_losses else "n/a",
                _fmt_float(min(eval_losses), 4) if eval_losses else "n/a",
            ]
        )
    return md_table(
        [
            "run",
            "global step",
            "best checkpoint",
            "best metric",
            "last train loss",
            "lowest eval loss",
        ],
        rows,
        [False, True, False, True, True, True],
    )


def _runs_yaml(runs: Mapping[str, dict]) -> str:
    """runs.yaml: every run's full settings, sorted."""
    return yaml.safe_dump(
        {run: dict(runs[run] or {}) for run in sorted(runs)},
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
    )


def _summary_md(
    cers: dict[Key, dict],
    flags: Flags,
    rows: list[tuple[str, str]],
    sets: list[str],
    order: list[Key],
    speeds: dict[str, dict],
    speed_rows: list[SpeedRow],
    trainer_states: dict[str, dict],
    runs: Mapping[str, dict],
    primary: str,
    max_cer_delta: float,
    n_worst: int,
    own_data: Mapping[str, str] | None = None,
) -> str:
    """summary.md: the CER tables and flags, then variants, speed and training where there are
    any."""
    flag_lines = _flag_lines(cers, flags, order, primary, max_cer_delta)
    if own_data and "forgetting_flags" in own_data:
        flag_lines.append(own_data["forgetting_flags"])
    parts = [
        "# whisperforge results",
        f"## {WHISPERFORGE_LABEL}",
        "Lower is better; in parentheses: relative change vs the base model (same variant).",
        _compact_table(cers, rows, sets, primary, "cer"),
    ]
    if flag_lines:
        parts.append("\n".join(flag_lines))
    parts += [
        f"## {WF_LABEL}",
        "Whisper-Finetune's evaluation normalization (its punctuation list removed, traditional "
        "to simplified, nothing else). Only a real model's figure on the AISHELL-1 test split "
        "compares with the published ones.",
        _compact_table(cers, rows, sets, primary, "cer_whisper_finetune"),
        "### Details: edit counts (whisperforge norm.), both CERs, raw CER",
        _detail_table(cers, order),
        _normalization_lines(cers, order),
    ]
    own_data = own_data or {}
    if "forgetting" in own_data:
        parts += ["## Forgetting: general speech against the target set", own_data["forgetting"]]
    if "corpora" in own_data:
        parts += ["## Your own data: corpora", own_data["corpora"]]
    if "longform" in own_data:
        parts += ["## Held-out recordings, long-form", own_data["longform"]]
    if "learning_curve" in own_data:
        parts += [
            "## Learning curve: own data vs held-out long-form CER",
            own_data["learning_curve"],
        ]
    if len({variant for _, variant in rows}) > 1:
        parts += [
            "## Export variants: CER and speed",
            _variants_section(cers, flags, rows, sets, speeds, primary, max_cer_delta),
        ]
    if speed_rows:
        parts += ["## Decoding speed", _speed_section(speeds, speed_rows)]
    if trainer_states:
        parts += ["## Training", _checkpoint_section(trainer_states, runs)]
    if n_worst:
        parts.append("The worst utterances of every model, variant and set are in `worst.tsv`.")
    return "\n\n".join(parts) + "\n"


def _own_data_sections(
    corpus_stats: Mapping[str, Path],
    longform_files: Mapping[tuple[str, str], Path],
    mix_files: Mapping[str, Path],
    models: Sequence[str],
    cers: dict[Key, dict],
    primary: str,
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The summary's sections on own data (report_corpora.py) and the learning curve's points."""
    sections: dict[str, str] = {}
    curve: list[dict[str, Any]] = []
    if corpus_stats:
        stats = {c: read_json_object(p, "corpus stats") for c, p in corpus_stats.items()}
        sections["corpora"] = rc.corpora_section(stats)
    if longform_files:
        results = {k: read_json_object(p, "long-form result") for k, p in longform_files.items()}
        main_test = {m: (cers.get((m, primary, "test")) or {}).get("cer") for m in models}
        rows = rc.longform_rows(results, models, main_test)
        sections["longform"] = rc.longform_section(rows)
        mixes = {run: read_json_object(p, "mix facts") for run, p in mix_files.items()}
        runs = [m for m in models if m != "base"]
        mixes = {run: mixes.get(run, {}) for run in runs}
        curve = rc.learning_curve_rows(mixes, rows)
        sections["learning_curve"] = rc.learning_curve_section(curve)
    return sections, curve


def _forgetting(
    cers: dict[Key, dict],
    models: Sequence[str],
    sets: Sequence[str],
    primary: str,
    general: str | None,
    budget: float,
) -> list[Forgetting]:
    if general is None:
        return []
    primary_cers = {
        (m, s_): json_number(r["cer"]) for (m, v, s_), r in cers.items() if v == primary
    }
    target = "test" if "test" in sets else next((s_ for s_ in sets if s_ != general), None)
    runs = [m for m in models if m != BASE]
    return forgetting_of(primary_cers, runs, general, budget, target)


def _forgetting_sections(rows: list[Forgetting], states: Mapping[str, Path]) -> dict[str, str]:
    """The flags (top of the summary) and the forgetting section, with each guarded run's
    choice of checkpoint (its training_summary.json beside the adapter)."""
    if not rows:
        return {}
    guards = []
    for run in sorted(states):
        path = Path(states[run]) / "training_summary.json"
        outcome = (
            read_json_object(path, "training summary").get("forgetting_guard")
            if path.is_file()
            else None
        )
        if outcome:
            guards.append(guard_line(run, outcome))
    flags = [f"- {r.flag()}" for r in rows if r.over_budget]
    section = [
        "CER % of the primary export; forgetting: points lost against base on the general set "
        f"(budget {rows[0].budget_pts:g}, eval.max_forgetting); gain: points won on the target "
        "set. The plot is `forgetting.png`.",
        forgetting_table(rows),
    ]
    if guards:
        section.append("Checkpoint selection (train.forgetting_guard):\n\n" + "\n".join(guards))
    out = {"forgetting": "\n\n".join(section)}
    if flags:
        out["forgetting_flags"] = "\n".join(flags)
    return out


def _check_request(
    out: Mapping[str, Path], variants: Sequence[str], cer_files: Mapping[Key, Path]
) -> None:
    missing = [k for k in OUT_KEYS if k not in out]
    if missing:
        raise ValueError(f"summarize: out lacks {', '.join(missing)}")
    if not variants:
        raise ValueError("summarize: variants is empty (the primary export comes first)")
    if not cer_files:
        raise WhisperforgeError("summarize: no CER files given")


def _layout(
    cers: Mapping[Key, dict], models: Sequence[str], sets: Sequence[str], variants: Sequence[str]
) -> tuple[list[tuple[str, str]], list[Key]]:
    """The table's rows (model, variant) and every (model, variant, set) with a CER, in order."""
    variant_order = _variant_order(variants, [v for _, v, _ in cers])
    rows = [(m, v) for m in models for v in variant_order if any((m, v, s) in cers for s in sets)]
    return rows, [(m, v, s) for m, v in rows for s in sets if (m, v, s) in cers]


def _enforce_gate(
    cers: Mapping[Key, dict], flags: Flags, order: list[Key], primary: str, max_cer_delta: float
) -> None:
    """eval.fail_on_cer_delta: a variant past the gate fails the build before any file."""
    failed = [key for key in order if flags.gate_failed.get(key)]
    if failed:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise WhisperforgeError(
            f"CER gate: {_gate_message(failed[0], cers, flags, primary, max_cer_delta)}{more}; "
            "raise eval.max_cer_delta or set eval.fail_on_cer_delta: false to report it only"
        )


def _write_tables(
    out: Mapping[str, Path],
    table_rows: list[list[Any]],
    speed_rows: list[SpeedRow],
    worst_rows: list[list[Any]],
    runs: Mapping[str, dict],
) -> None:
    write_text(Path(out["table_tsv"]), _tsv(TABLE_COLUMNS, table_rows))
    speed = [[getattr(row, c) for c in SPEED_COLUMNS] for row in speed_rows]
    write_text(Path(out["speed_tsv"]), _tsv(SPEED_COLUMNS, speed))
    write_text(Path(out["worst_tsv"]), _tsv(WORST_COLUMNS, worst_rows))
    write_text(Path(out["runs_yaml"]), _runs_yaml(runs))


def summarize(
    cer_files: Mapping[Key, Path],
    speed_files: Mapping[str, Path],
    states: Mapping[str, Path],
    runs: Mapping[str, dict],
    out: Mapping[str, Path],
    *,
    variants: Sequence[str],
    max_cer_delta: float,
    fail_on_cer_delta: bool,
    models: Sequence[str] | None = None,
    sets: Sequence[str] | None = None,
    corpus_stats: Mapping[str, Path] | None = None,
    longform_files: Mapping[tuple[str, str], Path] | None = None,
    mix_files: Mapping[str, Path] | None = None,
    general: str | None = None,
    max_forgetting: float = 2.0,
) -> None:
    """Write the summary files named in `out` (keys: summary_md, table_tsv, chart_png, speed_tsv,
    worst_tsv, runs_yaml) from the CER files keyed by (model, variant, set) (`eval_key`), the
    speed files and adapter directories (or trainer_state.json files) keyed by run, and each
    run's full settings.

    `variants` are the export quantizations, the primary first (export.quantizations). A
    variant more than `max_cer_delta` CER points worse than the primary on a set is flagged;
    with `fail_on_cer_delta` that raises a WhisperforgeError before any file is written.
    Models are shown base first, then runs alphabetically; sets train, dev, test, then the
    others alphabetically. `models` and `sets` override that order (e.g. eval.splits followed by
    the eval.sets names); CER files of other models or sets are left out.

    The user's own data, where there is any (report_corpora.py): each corpus's stats.json,
    longform.json per (model, corpus) and each mixed run's mix.json.

    `general` (config eval.general): the general-speech set; a run more than `max_forgetting`
    CER points worse than base on it is flagged at the top, and a section puts each run's
    forgetting beside its gain on the target set (test, else the first set), with what the
    forgetting guard chose in training (forgetting.py).
    """
    _check_request(out, variants, cer_files)
    primary = variants[0]
    cers = {key: load_cer(Path(path)) for key, path in cer_files.items()}
    models = list(models) if models else _model_order([m for m, _, _ in cers])
    sets = list(sets) if sets else _set_order([s for _, _, s in cers])
    rows, order = _layout(cers, models, sets, variants)
    speeds = {run: _load_speed(Path(p)) for run, p in speed_files.items()}
    trainer_states = {run: load_trainer_state(Path(p)) for run, p in states.items()}

    flags = _flags({k: cers[k] for k in order}, primary, max_cer_delta)
    if fail_on_cer_delta:
        _enforce_gate(cers, flags, order, primary, max_cer_delta)

    own_data, curve = _own_data_sections(
        corpus_stats or {}, longform_files or {}, mix_files or {}, models, cers, primary
    )
    forgetting = _forgetting(cers, models, sets, primary, general, max_forgetting)
    own_data.update(_forgetting_sections(forgetting, states))
    table_rows = _table_rows(cers, order, flags)
    worst_rows = _worst_rows(cers, order)
    speed_rows = _speed_rows(speeds, primary)
    summary_md = _summary_md(
        cers,
        flags,
        rows,
        sets,
        order,
        speeds,
        speed_rows,
        trainer_states,
        runs,
        primary,
        max_cer_delta,
        len(worst_rows),
        own_data,
    )
    chart = {(_label(m, v, primary), s): cers[(m, v, s)] for m, v, s in order}
    plot_cer(chart, [_label(m, v, primary) for m, v in rows], sets, Path(out["chart_png"]))
    if LEARNING_CURVE_KEY in out:
        plot_learning_curve(curve, Path(out[LEARNING_CURVE_KEY]))
    if FORGETTING_KEY in out:
        plot_forgetting(forgetting, Path(out[FORGETTING_KEY]))
    _write_tables(out, table_rows, speed_rows, worst_rows, runs)
    write_text(Path(out["summary_md"]), summary_md)
