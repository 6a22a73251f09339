"""Markdown tables and CER cells, shared by the summary (report.py) and its own-data sections
(report_corpora.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from whisperforge.core.files import json_number


def pct(cer: Any) -> str:
    v = json_number(cer)
    return "n/a" if v is None else f"{100 * v:.2f}"


def md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A markdown table padded so its columns line up in a terminal too."""
    cells = [[md_cell(h) for h in headers]] + [[md_cell(c) for c in row] for row in rows]
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
