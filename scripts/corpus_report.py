"""A recordings corpus's report.tsv (one row per cue) and stats.json (per recording, per split)."""

from _step import run_step

from whisperforge.corpora import gather_report


def main(smk):
    names = list(smk.params.recordings)
    gather_report(
        smk.params.splits,
        dict(zip(names, smk.input.infos, strict=True)),
        list(smk.input.reports),
        dict(zip(names, smk.input.rejected, strict=True)),
        smk.output.report,
        smk.output.stats,
    )


run_step(snakemake, main)  # noqa: F821
