"""A recordings corpus's split manifest from that split's recordings' windows."""

from _step import run_step

from whisperforge.data.corpora import gather_split


def main(smk):
    gather_split(smk.wildcards.split, list(smk.input), smk.output[0])


run_step(snakemake, main)  # noqa: F821
