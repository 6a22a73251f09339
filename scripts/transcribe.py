"""Decode a manifest with faster-whisper on the CTranslate2 export into hyp.jsonl."""

from _step import run_step

from whisperforge.decode.transcribe import DecodeOptions, transcribe_manifest


def main(smk):
    transcribe_manifest(
        smk.input.model,
        smk.input.manifest,
        smk.output[0],
        DecodeOptions.from_config(smk.params.options),
        threads=smk.threads,
        device=smk.params.device,
    )


run_step(snakemake, main)  # noqa: F821
