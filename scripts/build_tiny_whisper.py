"""Build the demo's random-init tiny Whisper with the real multilingual tokenizer (offline)."""

from inspect import signature

from _step import run_step

from whisperforge.model.tinymodel import build_tiny_whisper


def main(smk):
    # config `model.tiny` holds the dimensions (and more): pass the keys the builder names.
    builder_keys = signature(build_tiny_whisper).parameters
    dims = {k: v for k, v in smk.params.tiny.items() if k in builder_keys and k != "seed"}
    build_tiny_whisper(smk.output[0], seed=smk.params.seed, **dims)


run_step(snakemake, main)  # noqa: F821
