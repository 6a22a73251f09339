"""Build the demo's random-init tiny Whisper with the real multilingual tokenizer (offline)."""

from _step import run_step

from whisperforge.tinymodel import build_tiny_whisper


def main(smk):
    build_tiny_whisper(smk.output[0], seed=smk.params.seed, **smk.params.dims)


run_step(snakemake, main)  # noqa: F821
