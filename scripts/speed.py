"""Time transformers generate vs faster-whisper (CTranslate2) on the first test utterances."""

from _step import run_step

from whisperforge.manifest import write_json
from whisperforge.speed import measure_speed


def main(smk):
    result = measure_speed(
        smk.input.hf,
        smk.input.ct2,
        smk.input.manifest,
        n_utterances=smk.params.utterances,
        language=smk.params.language,
        beam_size=smk.params.beam_size,
        compute_type=smk.params.compute_type,
        threads=smk.threads,
        device=smk.params.device,
    )
    write_json(smk.output[0], result)


run_step(snakemake, main)  # noqa: F821
