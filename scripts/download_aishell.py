"""Download data_aishell.tgz from the first mirror that works (resumable, md5-checked)."""

from _step import run_step

from whisperforge.data.download import download_archive


def main(smk):
    download_archive(smk.params.urls, smk.output.archive, md5=smk.params.md5, size=smk.params.size)


run_step(snakemake, main)  # noqa: F821
