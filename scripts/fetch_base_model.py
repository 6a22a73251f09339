"""Fetch the pinned base model from the hub once (token from the environment, never logged)."""

from _step import run_step

from whisperforge.model.fetch import fetch_hub_model


def main(smk):
    fetch_hub_model(smk.params.repo_id, smk.params.revision, smk.output[0])


run_step(snakemake, main)  # noqa: F821
