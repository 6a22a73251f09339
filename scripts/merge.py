"""Merge a run's best adapter into the base model."""

from pathlib import Path

from _step import run_step

from whisperforge.model.merge import merge_adapter


def main(smk):
    merge_adapter(smk.input.base, Path(smk.input.adapter) / "checkpoint-best", smk.output[0])


run_step(snakemake, main)  # noqa: F821
