"""Subtitles (.srt, .vtt, .txt, .review.tsv) of one recording by the chosen (or best) export."""

import logging

from _step import run_step

from whisperforge.subtitles.cues import BEST, SubtitleOptions, resolve_model, write_subtitles


def main(smk):
    candidates = [smk.wildcards.subtitle_model]
    cer_files = {}
    if smk.wildcards.subtitle_model == BEST:
        candidates = list(smk.params.runs)
        cer_files = {(run, "test"): cer for run, cer in zip(candidates, smk.input.cer, strict=True)}
    model = resolve_model(smk.wildcards.subtitle_model, cer_files)
    logging.getLogger("subtitles").info("%s: model %s", smk.input.audio, model)
    ct2_dirs = dict(zip(candidates, smk.input.ct2, strict=True))
    write_subtitles(
        ct2_dirs[model],
        smk.input.audio,
        smk.output.srt,
        smk.output.vtt,
        smk.output.txt,
        SubtitleOptions.from_config(smk.params.options),
        compute_type=smk.params.compute_type,
        threads=smk.threads,
        out_review=smk.output.review,
    )


run_step(snakemake, main)  # noqa: F821
