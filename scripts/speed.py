"""Time transformers generate vs faster-whisper (CTranslate2) on the first test utterances."""

from _step import run_step

from whisperforge.files import write_json
from whisperforge.speed import measure_speed
from whisperforge.transcribe import DecodeOptions


def main(smk):
    result = measure_speed(
        smk.input.hf,
        smk.input.ct2,
        smk.input.manifest,
        DecodeOptions.from_config(smk.params.options),
        n_utterances=smk.params.options["speed_utterances"],
        threads=smk.threads,
        device=smk.params.device,
    )
    write_json(smk.output[0], result)


run_step(snakemake, main)  # noqa: F821
