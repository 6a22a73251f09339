"""Transcript + wavs.tsv -> {train,dev,test}.jsonl and stats.json."""

from pathlib import Path

from _step import run_step

from whisperforge.aishell import Filters, build_manifests


def main(smk):
    p = smk.params
    build_manifests(
        smk.input.transcript,
        smk.input.index,
        Path(smk.output.stats).parent,
        filters=Filters(p.min_audio_s, p.max_audio_s, p.max_text_chars, p.bad_wav),
        train_on_dev=p.train_on_dev,
        required_splits=p.required_splits,
    )


run_step(snakemake, main)  # noqa: F821
