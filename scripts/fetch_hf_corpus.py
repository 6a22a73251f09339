"""Fetch a corpus's hub dataset once (HF_ENDPOINT and HF_TOKEN from the environment)."""

from _step import run_step

from whisperforge.data.hubdata import fetch_hub_dataset


def main(smk):
    fetch_hub_dataset(smk.wildcards.corpus_name, smk.params.hf, smk.output[0])


run_step(snakemake, main)  # noqa: F821
