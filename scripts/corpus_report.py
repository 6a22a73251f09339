"""A recordings corpus's report.tsv (one row per cue) and stats.json (per recording, per split),
with how much a person corrected the model's subtitles where a recording's subtitle file started
as the workflow's own output (results/subtitles/<model>/<file>.srt)."""

from _step import run_step

from whisperforge.data.corpora import gather_report
from whisperforge.evaluate.longform import correction_of_files


def main(smk):
    names = list(smk.params.recordings)
    model_srts = dict(zip(smk.params.corrected, smk.input.model_subtitles, strict=True))
    corrections = {
        name: correction_of_files(model_srts[name], smk.params.subtitles[name])
        for name in model_srts
    }
    gather_report(
        smk.params.splits,
        dict(zip(names, smk.input.infos, strict=True)),
        list(smk.input.reports),
        dict(zip(names, smk.input.rejected, strict=True)),
        smk.output.report,
        smk.output.stats,
        corrections,
    )


run_step(snakemake, main)  # noqa: F821
