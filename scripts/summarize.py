"""Summarize every evaluation: CER/speed tables, CER chart, worst utterances, run settings."""

from pathlib import Path

from _step import run_step

from whisperforge.report import summarize

OUT = {"summary_md": "summary", "table_tsv": "table", "chart_png": "chart"}
OUT |= {"speed_tsv": "speed", "worst_tsv": "worst", "runs_yaml": "config"}


def main(smk):
    # Keys from the paths (results/eval/<model>/<split>/cer.json, results/eval/<run>/speed.json,
    # results/models/<run>/adapter), not from the order of the lists.
    cer = {(Path(p).parent.parent.name, Path(p).parent.name): p for p in smk.input.cer}
    speed = {Path(p).parent.name: p for p in smk.input.speed}
    states = {Path(p).parent.name: p for p in smk.input.states}
    out = {key: getattr(smk.output, name) for key, name in OUT.items()}
    p = smk.params
    summarize(cer, speed, states, dict(p.runs), out, models=p.models, splits=p.splits)


run_step(snakemake, main)  # noqa: F821
