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
written atomically. `plot_loss` draws a run's train/eval loss from its `trainer_state.json`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from whisperforge.errors import WhisperforgeError
from whisperforge.manifest import atomic_path

BASE = "base"
CANONICAL_SPLITS = ("train", "dev", "test")
OUT_KEYS = ("summary_md", "table_tsv", "chart_png", "speed_tsv", "worst_tsv", "runs_yaml")
CER_KEYS = ("cer", "substitutions", "deletions", "insertions", "n_utts")
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
SPEED_COLUMNS = (
    "run",
    "utterances",
    "audio_s",
    "hf_seconds",
    "hf_rtf",
    "hf_device",
    "ct2_seconds",
    "ct2_rtf",
    "ct2_device",
    "ct2_compute_type",
    "speedup",
    "hf_texts_equal_ct2",
)
WORST_COLUMNS = ("model", "split", "id", "ref", "hyp", "edits", "cer")

# PNG metadata matplotlib would otherwise stamp with its version: keep the bytes stable.
_PNG_METADATA = {"Software": None}


# --- reading ------------------------------------------------------------------------------------


def _load_json(path: Path, what: str) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WhisperforgeError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise WhisperforgeError(f"{path}: cannot read {what} ({e})") from None
    except json.JSONDecodeError as e:
        raise WhisperforgeError(f"{path}: {what} is not valid JSON ({e.msg})") from None


def _load_object(path: Path, what: str, required: Sequence[str]) -> dict[str, Any]:
    obj = _load_json(path, what)
    if not isinstance(obj, dict):
        raise WhisperforgeError(f"{path}: {what} must be a JSON object")
    missing = [k for k in required if k not in obj]
    if missing:
        raise WhisperforgeError(f"{path}: {what} lacks {', '.join(missing)}")
    return obj


def _load_cer(path: Path) -> dict[str, Any]:
    return _load_object(path, "CER file", CER_KEYS)


def _load_state(adapter_dir: Path) -> dict[str, Any]:
    """The Trainer state saved in a run's adapter directory (or given directly as the file)."""
    path = Path(adapter_dir)
    if path.is_dir():
        path = path / "trainer_state.json"
    state = _load_object(path, "trainer state", ())
    if not isinstance(state.get("log_history", []), list):
        raise WhisperforgeError(f"{path}: trainer state's log_history is not a list")
    return state


# --- formatting ---------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    """A finite float, or None for missing/non-numeric values."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


def _pct(cer: Any) -> str:
    v = _num(cer)
    return "n/a" if v is None else f"{100 * v:.2f}"


def _rel_change(cer: Any, base_cer: Any) -> float | None:
    """Relative change of `cer` vs `base_cer` in percent, or None if undefined."""
    v, b = _num(cer), _num(base_cer)
    if v is None or b is None or b == 0:
        return None
    return round(100 * (v - b) / b, 1) + 0.0  # + 0.0 turns -0.0 into 0.0


def _fmt_rel(rel: float | None) -> str:
    return "n/a" if rel is None else f"{rel:+.1f} %"


def _fmt_float(x: Any, digits: int) -> str:
    v = _num(x)
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


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(text.encode("utf-8"))


# --- ordering -----------------------------------------------------------------------------------


def _model_order(models: Sequence[str]) -> list[str]:
    """base first, then the runs alphabetically."""
    uniq = set(models)
    return ([BASE] if BASE in uniq else []) + sorted(uniq - {BASE})


def _split_order(splits: Sequence[str]) -> list[str]:
    """train, dev, test first (in that order), then any other split alphabetically."""
    uniq = set(splits)
    return [s for s in CANONICAL_SPLITS if s in uniq] + sorted(uniq - set(CANONICAL_SPLITS))


# --- best run -----------------------------------------------------------------------------------


def best_run(cer_files: Mapping[tuple[str, str], Path], split: str = "test") -> str:
    """The fine-tuned run (never "base") with the lowest CER on `split`; ties -> alphabetical."""
    scored = []
    for (model, sp), path in cer_files.items():
        if model == BASE or sp != split:
            continue
        cer = _num(_load_cer(path)["cer"])
        if cer is not None:
            scored.append((cer, model))
    if not scored:
        raise WhisperforgeError(f"no fine-tuned run has a CER on split '{split}'")
    return min(scored)[1]


# --- plots --------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Any:
    """A Figure on an Agg canvas (no pyplot, so no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Any, out_png: Path) -> None:
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=_PNG_METADATA)


def plot_loss(trainer_state_json: Path, out_png: Path, title: str) -> None:
    """Train and eval loss against step from a Trainer's `log_history`; raises if there is none."""
    path = Path(trainer_state_json)
    state = _load_state(path)
    train, evals = [], []
    for entry in state.get("log_history", []):
        if not isinstance(entry, dict) or _num(entry.get("step")) is None:
            continue
        if _num(entry.get("loss")) is not None:
            train.append((entry["step"], entry["loss"]))
        if _num(entry.get("eval_loss")) is not None:
            evals.append((entry["step"], entry["eval_loss"]))
    if not train and not evals:
        raise WhisperforgeError(
            f"{path}: log_history has no 'loss' or 'eval_loss' entries to plot "
            "(was logging_steps larger than the number of steps?)"
        )
    fig = _new_figure(8, 4.5)
    ax = fig.add_subplot()
    if train:
        ax.plot(
            [s for s, _ in train],
            [v for _, v in train],
            marker="." if len(train) < 50 else None,
            label="train loss",
        )
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], marker="o", label="eval loss")
        best_step, best_loss = min(evals, key=lambda p: (p[1], p[0]))
        ax.scatter([best_step], [best_loss], s=120, facecolors="none", edgecolors="red", zorder=3)
        ax.annotate(
            f"lowest eval loss {best_loss:.4f} @ {best_step}",
            (best_step, best_loss),
            textcoords="offset points",
            xytext=(0, 12),
            ha="right" if best_step == max(p[0] for p in evals + train) else "center",
            fontsize=8,
        )
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    _save_png(fig, out_png)


def _plot_cer(cers: dict[tuple[str, str], dict], models: list[str], splits: list[str], out: Path):
    fig = _new_figure(max(6.0, 1.2 + 0.9 * len(models) * len(splits)), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        xs, ys = [], []
        for j, split in enumerate(splits):
            cer = _num(cers.get((model, split), {}).get("cer"))
            if cer is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(100 * cer)
        bars = ax.bar(xs, ys, width=width, label=model)
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=8, padding=2)
    ax.set_xticks(range(len(splits)), splits)
    ax.set_xlabel("evaluation split")
    ax.set_ylabel("CER (%)")
    ax.set_title("Character error rate by model and split (lower is better)")
    ax.margins(y=0.15)
    ax.legend(title="model")
    _save_png(fig, out)


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


def _speed_rows(speeds: dict[str, dict]) -> list[list[Any]]:
    rows = []
    for run in sorted(speeds):
        s = speeds[run]
        hf, ct2 = s.get("hf") or {}, s.get("ct2") or {}
        rows.append(
            [
                run,
                s.get("utterances"),
                _fmt_float(s.get("audio_s"), 2),
                _fmt_float(hf.get("seconds"), 2),
                _fmt_float(hf.get("rtf"), 4),
                hf.get("device"),
                _fmt_float(ct2.get("seconds"), 2),
                _fmt_float(ct2.get("rtf"), 4),
                ct2.get("device"),
                ct2.get("compute_type"),
                _fmt_float(s.get("speedup"), 2),
                s.get("hf_texts_equal_ct2"),
            ]
        )
    return rows


def _speed_section(speed_rows: list[list[Any]]) -> str:
    rows = [
        [
            r[0],
            _fmt_cell(r[1]),
            r[2],
            r[3],
            r[6],
            f"{r[10]}x" if r[10] else "n/a",
            f"{_fmt_cell(r[5])} / {_fmt_cell(r[8])}",
            _fmt_cell(r[9]),
            _fmt_cell(r[11]),
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
        train_losses = [e["loss"] for e in history if _num(e.get("loss")) is not None]
        eval_losses = [e["eval_loss"] for e in history if _num(e.get("eval_loss")) is not None]
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
    cers = {key: _load_cer(Path(path)) for key, path in cer_files.items()}
    models = list(models) if models else _model_order([m for m, _ in cers])
    splits = list(splits) if splits else _split_order([s for _, s in cers])
    speeds = {
        run: _load_object(Path(p), "speed file", SPEED_KEYS) for run, p in speed_files.items()
    }
    trainer_states = {run: _load_state(Path(p)) for run, p in states.items()}

    # summary.tsv
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
                    _fmt_float(None if _num(res["cer"]) is None else 100 * res["cer"], 2),
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

    # worst.tsv
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

    speed_rows = _speed_rows(speeds)
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
    summary_md = "\n\n".join(parts) + "\n"

    runs_yaml = yaml.safe_dump(
        {run: dict(runs[run] or {}) for run in sorted(runs)},
        sort_keys=True,
        allow_unicode=True,
        default_flow_style=False,
    )

    _write_text(Path(out["table_tsv"]), _tsv(TABLE_COLUMNS, table_rows))
    _write_text(Path(out["speed_tsv"]), _tsv(SPEED_COLUMNS, speed_rows))
    _write_text(Path(out["worst_tsv"]), _tsv(WORST_COLUMNS, worst_rows))
    _write_text(Path(out["runs_yaml"]), runs_yaml)
    _plot_cer(cers, models, splits, Path(out["chart_png"]))
    _write_text(Path(out["summary_md"]), summary_md)
