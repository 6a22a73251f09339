"""Transcript + wavs.tsv -> {train,dev,test}.jsonl and stats.json."""

from pathlib import Path

from _step import run_step

from whisperforge.data.aishell import Filters, build_manifests


def main(smk):
    data = smk.params.data
    build_manifests(
        smk.input.transcript,
        smk.input.index,
        Path(smk.output.stats).parent,
        filters=Filters.from_config(data),
        train_on_dev=data["train_on_dev"],
        required_splits=smk.params.required_splits,
    )


run_step(snakemake, main)  # noqa: F821
