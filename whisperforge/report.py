"""The summary stage: CER/speed tables, charts, worst utterances, run settings; loss curves.

`summarize` reads every `results/eval/<model>/<split>/cer.json` (written by `whisperforge.score`),
every `results/eval/<run>/speed.json` and each run's Trainer state, and writes:

* `summary.md`  markdown tables (CER % per model and split with the change vs base, edit counts,
  speed, best checkpoints) plus how CER is normalized; aligned so it reads in a terminal too;
* `summary.tsv` the CER table, one row per (model, split);
* `cer.png`     a bar chart of CER % per model, grouped by split;
* `speed.tsv`   the CT2-vs-transformers timings per run;
* `worst.tsv`   the worst utterances of every (model, split);
* `runs.yaml`   the full settings of every run.

Everything is sorted and free of timestamps, so the same inputs give the same bytes; every file is
written atomically. The CER chart is drawn by `whisperforge.plots`, the best run for subtitles is
picked by `whisperforge.score.best_run`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from whisperforge.errors import WhisperforgeError
from whisperforge.files import json_number, read_json_object, write_text
from whisperforge.plots import load_trainer_state, plot_cer
from whisperforge.score import BASE, load_cer

CANONICAL_SPLITS = ("train", "dev", "test")
OUT_KEYS = ("summary_md", "table_tsv", "chart_png", "speed_tsv", "worst_tsv", "runs_yaml")
SPEED_KEYS = ("utterances", "audio_s", "hf", "ct2", "speedup")

TABLE_COLUMNS = (
    "model",
    "split",
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
)
WORST_COLUMNS = ("model", "split", "id", "ref", "hyp", "edits", "cer")


# --- formatting ---------------------------------------------------------------------------------


def _pct(cer: Any) -> str:
    v = json_number(cer)
    return "n/a" if v is None else f"{100 * v:.2f}"


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


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A markdown table padded so its columns line up in a terminal too."""
    cells = [[_md_cell(h) for h in headers]] + [[_md_cell(c) for c in row] for row in rows]
    widths = [max(3, *(len(r[i]) for r in cells)) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if r else ("-" * (w + 2))
            for w, r in zip(widths, right, strict=True)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


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


# --- ordering -----------------------------------------------------------------------------------


def _model_order(models: Sequence[str]) -> list[str]:
    """base first, then the runs alphabetically."""
    uniq = set(models)
    return ([BASE] if BASE in uniq else []) + sorted(uniq - {BASE})


def _split_order(splits: Sequence[str]) -> list[str]:
    """train, dev, test first (in that order), then any other split alphabetically."""
    uniq = set(splits)
    return [s for s in CANONICAL_SPLITS if s in uniq] + sorted(uniq - set(CANONICAL_SPLITS))


# --- summary ------------------------------------------------------------------------------------


def _cer_sections(
    cers: dict[tuple[str, str], dict], models: list[str], splits: list[str]
) -> tuple[str, str]:
    """The compact CER table (model x split) and the detailed one (one row per model/split)."""
    compact_rows, detail_rows = [], []
    for model in models:
        row = [model]
        for split in splits:
            res = cers.get((model, split))
            if res is None:
                row.append("–")
                continue
            cell = _pct(res["cer"])
            if model != BASE and (BASE, split) in cers:
                cell += f" ({_fmt_rel(_rel_change(res['cer'], cers[(BASE, split)]['cer']))})"
            row.append(cell)
            base_res = cers.get((BASE, split))
            rel = (
                ""
                if model == BASE or base_res is None
                else _fmt_rel(_rel_change(res["cer"], base_res["cer"]))
            )
            detail_rows.append(
                [
                    model,
                    split,
                    _pct(res["cer"]),
                    rel,
                    _pct(res.get("cer_raw")),
                    str(res["substitutions"]),
                    str(res["deletions"]),
                    str(res["insertions"]),
                    _fmt_cell(res.get("ref_chars")),
                    str(res["n_utts"]),
                    _fmt_float(res.get("audio_hours"), 2),
                ]
            )
        compact_rows.append(row)
    compact = _md_table(
        ["model", *(f"{s} CER %" for s in splits)], compact_rows, [False] + [True] * len(splits)
    )
    detail = _md_table(
        [
            "model",
            "split",
            "CER %",
            "vs base",
            "raw CER %",
            "sub",
            "del",
            "ins",
            "ref chars",
            "utts",
            "hours",
        ],
        detail_rows,
        [False, False] + [True] * 9,
    )
    return compact, detail


@dataclass(frozen=True)
class SpeedRow:
    """One run's speed.json as speed.tsv and the summary show it (numbers formatted as text)."""

    run: str
    utterances: Any
    audio_s: str
    hf_seconds: str
    hf_rtf: str
    hf_device: Any
    ct2_seconds: str
    ct2_rtf: str
    ct2_device: Any
    ct2_compute_type: Any
    speedup: str
    hf_texts_equal_ct2: Any

    @classmethod
    def from_speed(cls, run: str, s: Mapping[str, Any]) -> SpeedRow:
        hf, ct2 = s.get("hf") or {}, s.get("ct2") or {}
        return cls(
            run=run,
            utterances=s.get("utterances"),
            audio_s=_fmt_float(s.get("audio_s"), 2),
            hf_seconds=_fmt_float(hf.get("seconds"), 2),
            hf_rtf=_fmt_float(hf.get("rtf"), 4),
            hf_device=hf.get("device"),
            ct2_seconds=_fmt_float(ct2.get("seconds"), 2),
            ct2_rtf=_fmt_float(ct2.get("rtf"), 4),
            ct2_device=ct2.get("device"),
            ct2_compute_type=ct2.get("compute_type"),
            speedup=_fmt_float(s.get("speedup"), 2),
            hf_texts_equal_ct2=s.get("hf_texts_equal_ct2"),
        )


SPEED_COLUMNS = tuple(f.name for f in fields(SpeedRow))  # speed.tsv's header


def _speed_rows(speeds: dict[str, dict]) -> list[SpeedRow]:
    return [SpeedRow.from_speed(run, speeds[run]) for run in sorted(speeds)]


def _speed_section(speed_rows: list[SpeedRow]) -> str:
    rows = [
        [
            r.run,
            _fmt_cell(r.utterances),
            r.audio_s,
            r.hf_seconds,
            r.ct2_seconds,
            f"{r.speedup}x" if r.speedup else "n/a",
            f"{_fmt_cell(r.hf_device)} / {_fmt_cell(r.ct2_device)}",
            _fmt_cell(r.ct2_compute_type),
            _fmt_cell(r.hf_texts_equal_ct2),
        ]
        for r in speed_rows
    ]
    return _md_table(
        [
            "run",
            "utts",
            "audio s",
            "hf s",
            "ct2 s",
            "speedup",
            "devices (hf / ct2)",
            "ct2 compute type",
            "same text",
        ],
        rows,
        [False, True, True, True, True, True, False, False, False],
    )


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
    return _md_table(
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


def _normalization_line(cers: dict[tuple[str, str], dict], models, splits) -> str:
    descs = {}
    for model in models:
        for split in splits:
            if (model, split) in cers:
                desc = cers[(model, split)].get("normalization") or "not recorded"
                descs.setdefault(desc, []).append(f"{model}/{split}")
    intro = (
        "CER is corpus-level (substitutions + deletions + insertions over reference characters), "
        "computed after the same normalization of reference and hypothesis"
    )
    if len(descs) == 1:
        return f"{intro}: {next(iter(descs))}. Raw CER only removes whitespace."
    lines = [f"{intro}; the normalization differs between results:"]
    lines += [f"- {', '.join(where)}: {desc}" for desc, where in sorted(descs.items())]
    return "\n".join(lines)


def _table_rows(
    cers: dict[tuple[str, str], dict], models: list[str], splits: list[str]
) -> list[list[Any]]:
    """summary.tsv: one row per (model, split) with a CER file, TABLE_COLUMNS."""
    table_rows = []
    for model in models:
        for split in splits:
            res = cers.get((model, split))
            if res is None:
                continue
            base_res = cers.get((BASE, split))
            rel = (
                None
                if model == BASE or base_res is None
                else _rel_change(res["cer"], base_res["cer"])
            )
            table_rows.append(
                [
                    model,
                    split,
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
                ]
            )
    return table_rows


def _worst_rows(
    cers: dict[tuple[str, str], dict], models: list[str], splits: list[str]
) -> list[list[Any]]:
    """worst.tsv: every (model, split)'s worst utterances, WORST_COLUMNS."""
    worst_rows = []
    for model in models:
        for split in splits:
            for w in (cers.get((model, split)) or {}).get("worst") or []:
                worst_rows.append(
                    [
                        model,
                        split,
                        w.get("id"),
                        w.get("ref"),
                        w.get("hyp"),
                        w.get("edits"),
                        _fmt_float(w.get("cer"), 4),
                    ]
                )
    return worst_rows


def _summary_md(
    cers: dict[tuple[str, str], dict],
    models: list[str],
    splits: list[str],
    speed_rows: list[SpeedRow],
    trainer_states: dict[str, dict],
    runs: Mapping[str, dict],
    worst_rows: list[list[Any]],
) -> str:
    """summary.md: the CER tables, then speed and training where there are any."""
    compact, detail = _cer_sections(cers, models, splits)
    parts = [
        "# whisperforge results",
        "## Character error rate (%)",
        "Lower is better; in parentheses: relative change vs the base model.",
        compact,
        "### Edit counts",
        detail,
        _normalization_line(cers, models, splits),
    ]
    if speed_rows:
        parts += [
            "## Decoding speed (CTranslate2 vs transformers)",
            "Same utterances decoded by both; speedup = hf seconds / ct2 seconds.",
            _speed_section(speed_rows),
        ]
    if trainer_states:
        parts += ["## Training", _checkpoint_section(trainer_states, runs)]
    if worst_rows:
        parts.append("The worst utterances of every model and split are in `worst.tsv`.")
    return "\n\n".join(parts) + "\n"


def _runs_yaml(runs: Mapping[str, dict]) -> str:
    """runs.yaml: every run's full settings, sorted."""
    return yaml.safe_dump(
        {run: dict(runs[run] or {}) for run in sorted(runs)},
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
    )


def summarize(
    cer_files: Mapping[tuple[str, str], Path],
    speed_files: Mapping[str, Path],
    states: Mapping[str, Path],
    runs: Mapping[str, dict],
    out: Mapping[str, Path],
    *,
    models: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
) -> None:
    """Write the summary files named in `out` (keys: summary_md, table_tsv, chart_png, speed_tsv,
    worst_tsv, runs_yaml) from the CER files keyed by (model, split), the speed files and adapter
    directories (or trainer_state.json files) keyed by run, and each run's full settings.

    Models are shown base first, then runs alphabetically; splits train, dev, test. `models` and
    `splits` override that order (their items must be among the CER files' keys).
    """
    missing = [k for k in OUT_KEYS if k not in out]
    if missing:
        raise ValueError(f"summarize: out lacks {', '.join(missing)}")
    if not cer_files:
        raise WhisperforgeError("summarize: no CER files given")
    cers = {key: load_cer(Path(path)) for key, path in cer_files.items()}
    models = list(models) if models else _model_order([m for m, _ in cers])
    splits = list(splits) if splits else _split_order([s for _, s in cers])
    speeds = {
        run: read_json_object(Path(p), "speed file", SPEED_KEYS) for run, p in speed_files.items()
    }
    trainer_states = {run: load_trainer_state(Path(p)) for run, p in states.items()}

    table_rows = _table_rows(cers, models, splits)
    worst_rows = _worst_rows(cers, models, splits)
    speed_rows = _speed_rows(speeds)
    summary_md = _summary_md(cers, models, splits, speed_rows, trainer_states, runs, worst_rows)

    write_text(Path(out["table_tsv"]), _tsv(TABLE_COLUMNS, table_rows))
    write_text(
        Path(out["speed_tsv"]),
        _tsv(SPEED_COLUMNS, [[getattr(row, c) for c in SPEED_COLUMNS] for row in speed_rows]),
    )
    write_text(Path(out["worst_tsv"]), _tsv(WORST_COLUMNS, worst_rows))
    write_text(Path(out["runs_yaml"]), _runs_yaml(runs))
    plot_cer(cers, models, splits, Path(out["chart_png"]))
    write_text(Path(out["summary_md"]), summary_md)
