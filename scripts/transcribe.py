"""Decode a manifest with faster-whisper on the CTranslate2 export into hyp.jsonl."""

from _step import run_step

from whisperforge.transcribe import transcribe_manifest


def main(smk):
    transcribe_manifest(
        smk.input.model,
        smk.input.manifest,
        smk.output[0],
        language=smk.params.language,
        task=smk.params.task,
        beam_size=smk.params.beam_size,
        batch_size=smk.params.batch_size,
        compute_type=smk.params.compute_type,
        vad_filter=smk.params.vad_filter,
        threads=smk.threads,
        device=smk.params.device,
    )


run_step(snakemake, main)  # noqa: F821
