"""Verify a data_aishell.tgz and unpack it: wav tree, transcript, wavs.tsv."""

from _step import run_step

from whisperforge.data.aishell import extract_archive
from whisperforge.data.download import verify_archive


def main(smk):
    archive = smk.input.archive
    verify_archive(archive, md5=smk.params.md5, size=smk.params.size)
    extract_archive(
        archive, smk.output.wav_dir, smk.output.transcript, smk.output.index, threads=smk.threads
    )


run_step(snakemake, main)  # noqa: F821
