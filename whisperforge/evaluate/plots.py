"""Figures: a run's train/eval loss curve (the finetune step) and the summary's CER bar chart.

Drawn on an Agg canvas (no pyplot, so no global backend state), without the version stamp that
matplotlib writes into PNG metadata, so the same inputs give the same bytes; written atomically.
matplotlib is imported where it is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import atomic_path, json_number, read_json_object

if TYPE_CHECKING:
    from whisperforge.metrics.forgetting import Forgetting

# PNG metadata matplotlib would otherwise stamp with its version: keep the bytes stable.
_PNG_METADATA = {"Software": None}


def load_trainer_state(adapter_dir: str | Path) -> dict[str, Any]:
    """The Trainer state saved in a run's adapter directory (or given directly as the file)."""
    path = Path(adapter_dir)
    if path.is_dir():
        path = path / "trainer_state.json"
    state = read_json_object(path, "trainer state")
    if not isinstance(state.get("log_history", []), list):
        raise WhisperforgeError(f"{path}: trainer state's log_history is not a list")
    return state


def _new_figure(width: float, height: float) -> Any:
    """A Figure on an Agg canvas (no pyplot, so no global backend state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig: Any, out_png: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata=_PNG_METADATA)


def plot_loss(trainer_state_json: Path, out_png: Path, title: str) -> None:
    """Train and eval loss against step from a Trainer's `log_history`; raises if there is none."""
    path = Path(trainer_state_json)
    state = load_trainer_state(path)
    train, evals = [], []
    for entry in state.get("log_history", []):
        if not isinstance(entry, dict) or json_number(entry.get("step")) is None:
            continue
        if json_number(entry.get("loss")) is not None:
            train.append((entry["step"], entry["loss"]))
        if json_number(entry.get("eval_loss")) is not None:
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


def plot_cer(
    cers: dict[tuple[str, str], dict], series: list[str], sets: list[str], out: str | Path
) -> None:
    """CER % of each series (a model, or a model's export variant) keyed (series, set): one bar
    per series, grouped by evaluation set."""
    fig = _new_figure(max(6.0, 1.2 + 0.9 * len(series) * len(sets)), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        xs, ys = [], []
        for j, set_ in enumerate(sets):
            cer = json_number(cers.get((name, set_), {}).get("cer"))
            if cer is not None:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(100 * cer)
        bars = ax.bar(xs, ys, width=width, label=name)
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=8, padding=2)
    ax.set_xticks(range(len(sets)), sets)
    ax.set_xlabel("evaluation set")
    ax.set_ylabel("CER (%), whisperforge normalization")
    ax.set_title("Character error rate by model and set (lower is better)")
    ax.margins(y=0.15)
    ax.legend(title="model (export variant)")
    _save_png(fig, out)


def plot_learning_curve(curve: list[dict[str, Any]], out: str | Path) -> None:
    """Held-out long-form CER % against hours of a corpus trained on, one line per corpus, each
    point a run (labelled); a figure saying so when no corpus has held-out recordings."""
    fig = _new_figure(6.5, 4.5)
    ax = fig.add_subplot()
    corpora = sorted({c["corpus"] for c in curve})
    for corpus in corpora:
        points = sorted(
            (c["hours"], 100 * c["longform_cer"], c["run"])
            for c in curve
            if c["corpus"] == corpus and json_number(c["longform_cer"]) is not None
        )
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=corpus)
        for hours, cer, run in points:
            ax.annotate(run, (hours, cer), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if not corpora:
        ax.text(0.5, 0.5, "no corpus with held-out recordings (data.corpora)", ha="center")
    ax.set_xlabel("hours of the corpus trained on (as each run's mix draws it)")
    ax.set_ylabel("held-out long-form CER (%)")
    ax.set_title("Learning curve: own data vs whole held-out recordings (lower is better)")
    if corpora:
        ax.legend(title="corpus")
    _save_png(fig, out)


def plot_forgetting(rows: Sequence[Forgetting], out: str | Path) -> None:
    """The trade-off: each run's target-set CER % against its general-speech CER %, base marked,
    the budget a dashed line above base; a figure saying so when there is no general set."""
    fig = _new_figure(6.5, 4.5)
    ax = fig.add_subplot()
    points = [r for r in rows if r.target_cer is not None]
    if points:
        first = points[0]
        base_x, base_y = 100 * (first.base_target_cer or 0), 100 * first.base_general_cer
        ax.scatter([base_x], [base_y], marker="s", color="black", label="base")
        ax.axhline(base_y + first.budget_pts, linestyle="--", color="gray", label="budget")
        for r in points:
            x, y = 100 * r.target_cer, 100 * r.general_cer
            ax.scatter([x], [y], color="tab:red" if r.over_budget else "tab:green")
            ax.annotate(r.model, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(f"target set CER (%): {first.target_set}")
        ax.set_ylabel(f"general speech CER (%): {first.general_set}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no general-speech set (eval.general)", ha="center")
    ax.set_title("Adaptation vs forgetting (lower-left is better)")
    _save_png(fig, out)
