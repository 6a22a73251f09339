"""Time transformers generate vs faster-whisper on every export variant, batched and unbatched."""

from _step import run_step

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import write_json
from whisperforge.decode.transcribe import DecodeOptions
from whisperforge.evaluate.speed import measure_speed


def main(smk):
    # input.ct2: one export dir per params.quantizations entry, same order (the first is primary)
    ct2 = [smk.input.ct2] if isinstance(smk.input.ct2, str) else list(smk.input.ct2)
    quantizations = list(smk.params.quantizations)
    if len(ct2) != len(quantizations):
        raise WhisperforgeError(
            f"input.ct2 has {len(ct2)} export dirs but params.quantizations has "
            f"{len(quantizations)} ({', '.join(quantizations)}): one dir per quantization"
        )
    options = DecodeOptions.from_config(smk.params.options)
    result = measure_speed(
        smk.input.hf,
        dict(zip(quantizations, ct2, strict=True)),
        smk.input.manifest,
        options,
        n_utterances=smk.params.options["speed_utterances"],
        batch_size=options.batch_size,
        threads=smk.threads,
        device=smk.params.device,
    )
    write_json(smk.output[0], result)


run_step(snakemake, main)  # noqa: F821
