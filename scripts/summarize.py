"""Summarize every evaluation: CER/speed tables, CER chart, worst utterances, run settings."""

from pathlib import Path

from _step import run_step

from whisperforge.report.summary import eval_key, summarize

OUT = {"summary_md": "summary", "table_tsv": "table", "chart_png": "chart"}
OUT |= {"speed_tsv": "speed", "worst_tsv": "worst", "runs_yaml": "config"}
OUT |= {"learning_curve_png": "learning_curve", "forgetting_png": "forgetting"}


def main(smk):
    p = smk.params
    variants = list(p.variants)  # export.quantizations, the primary first
    # Keys from the paths (results/eval/<model>/[ct2-<variant>/]<set>/cer.json,
    # results/eval/<run>/speed.json, results/models/<run>/adapter), not from the lists' order.
    cer = {eval_key(path, variants[0]): path for path in smk.input.cer}
    speed = {Path(path).parent.name: path for path in smk.input.speed}
    states = {Path(path).parent.name: path for path in smk.input.states}
    # results/manifests/corpora/<corpus>/stats.json, results/eval/<model>/<corpus>/longform.json,
    # results/manifests/runs/<run>/mix.json
    corpus_stats = {Path(path).parent.name: path for path in smk.input.corpus_stats}
    longform = {(Path(p).parent.parent.name, Path(p).parent.name): p for p in smk.input.longform}
    mixes = {Path(path).parent.name: path for path in smk.input.mixes}
    out = {key: getattr(smk.output, name) for key, name in OUT.items()}
    summarize(
        cer,
        speed,
        states,
        dict(p.runs),
        out,
        variants=variants,
        max_cer_delta=p.max_cer_delta,
        fail_on_cer_delta=p.fail_on_cer_delta,
        models=p.models,
        sets=p.sets,
        corpus_stats=corpus_stats,
        longform_files=longform,
        mix_files=mixes,
        general=p.general,
        max_forgetting=p.max_forgetting,
    )


run_step(snakemake, main)  # noqa: F821
