"""Forgetting: how much worse a run is than base on general speech (`eval.general`), against
the budget `eval.max_forgetting` (CER points), beside what it gained on its target set.

Read by the summary (a table, flags, a trade-off plot) and by the hub folders' model cards, from
the same cer.json files, so both say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Forgetting:
    """One run on the general set and its target set, each beside base (CERs as fractions)."""

    model: str
    general_set: str
    general_cer: float
    base_general_cer: float
    budget_pts: float
    target_set: str | None = None
    target_cer: float | None = None
    base_target_cer: float | None = None

    @property
    def points(self) -> float:
        """General-speech CER points lost against base (negative: gained)."""
        return round(100 * (self.general_cer - self.base_general_cer), 2) + 0.0

    @property
    def over_budget(self) -> bool:
        return self.points > self.budget_pts

    @property
    def target_gain_pts(self) -> float | None:
        if self.target_cer is None or self.base_target_cer is None:
            return None
        return round(100 * (self.base_target_cer - self.target_cer), 2) + 0.0

    def flag(self) -> str:
        """One line: the run, both CERs, the points and the budget."""
        return (
            f"⚠ {self.model} forgot general speech ({self.general_set}): CER "
            f"{100 * self.general_cer:.2f} % vs base {100 * self.base_general_cer:.2f} %, "
            f"{self.points:+.2f} points, over eval.max_forgetting {self.budget_pts:g}"
        )


def forgetting_of(
    cers: Mapping[tuple[str, str], float | None],
    runs: Sequence[str],
    general_set: str,
    budget_pts: float,
    target_set: str | None,
) -> list[Forgetting]:
    """Each run's forgetting from `cers` {(model, set): CER} (the primary export's); runs or a
    base without a CER on the general set are left out."""
    base_general = cers.get(("base", general_set))
    if base_general is None:
        return []
    out = []
    for run in runs:
        general = cers.get((run, general_set))
        if general is None:
            continue
        target = (
            {}
            if target_set is None or target_set == general_set
            else {
                "target_set": target_set,
                "target_cer": cers.get((run, target_set)),
                "base_target_cer": cers.get(("base", target_set)),
            }
        )
        out.append(Forgetting(run, general_set, general, base_general, budget_pts, **target))
    return out


def _pct(cer: float | None) -> str:
    return "-" if cer is None else f"{100 * cer:.2f}"


def forgetting_table(rows: Sequence[Forgetting]) -> str:
    """Markdown: per run, the target set's CER and gain beside the general set's CER and loss."""
    head = [
        "model",
        "target set",
        "target CER %",
        "gain (points)",
        "general set",
        "general CER %",
        "forgetting (points)",
        "within budget",
    ]
    lines = [
        "| " + " | ".join(head) + " |",
        "| --- | --- |" + " ---: |" * 2 + " --- |" + " ---: |" * 2 + " --- |",
    ]
    if rows:
        first = rows[0]
        lines.append(
            f"| base | {first.target_set or '-'} | {_pct(first.base_target_cer)} | - | "
            f"{first.general_set} | {_pct(first.base_general_cer)} | - | - |"
        )
    for r in rows:
        gain = r.target_gain_pts
        lines.append(
            f"| {r.model} | {r.target_set or '-'} | {_pct(r.target_cer)} | "
            f"{'-' if gain is None else f'{gain:+.2f}'} | {r.general_set} | "
            f"{_pct(r.general_cer)} | {r.points:+.2f} | "
            f"{'no ⚠' if r.over_budget else 'yes'} |"
        )
    return "\n".join(lines)


def guard_line(run: str, outcome: Mapping[str, Any]) -> str:
    """What a guarded run's training chose (training_summary.json's `forgetting_guard`)."""
    budget = outcome.get("budget_pts")
    if outcome.get("within_budget") is False:
        return (
            f"- ⚠ {run}: no checkpoint was within {budget:g} points on "
            f"{outcome.get('general_set')}; checkpoint-best is the one that forgot least "
            f"({outcome.get('best_forgetting_pts'):+.2f} points in training's greedy decoding)"
        )
    if outcome.get("within_budget"):
        return (
            f"- {run}: checkpoint-best is the best in-domain checkpoint within {budget:g} points "
            f"on {outcome.get('general_set')} ({outcome.get('best_forgetting_pts'):+.2f} points "
            "in training's greedy decoding)"
        )
    return f"- {run}: the forgetting guard made no evaluation"
