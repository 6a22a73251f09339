"""Long-form measures of a corpus's held-out recordings -> longform.json.

Inputs: `model` (a CTranslate2 export), `audio` and `reference` (one each per recording, in the
order of params `recordings`; a reference is JSON `{"cues": [{"start", "end", "text"}, ...]}`);
params: `options` (config `subtitles`), `compute_type`, `numerals_to_chinese` (config `eval`'s,
as the CER table scores). Each recording's result and their combination (longform.combine).
"""

from _step import run_step

from whisperforge.core.files import write_json
from whisperforge.core.options import SubtitleOptions
from whisperforge.evaluate.longform import combine, evaluate_recording, read_reference


def main(smk):
    options = SubtitleOptions.from_config(smk.params.options)
    results = {
        name: evaluate_recording(
            smk.input.model,
            audio,
            read_reference(reference),
            options,
            compute_type=smk.params.compute_type,
            threads=smk.threads,
            numerals_to_chinese=bool(smk.params.numerals_to_chinese),
        )
        for name, audio, reference in zip(
            smk.params.recordings, smk.input.audio, smk.input.reference, strict=True
        )
    }
    write_json(smk.output[0], combine(results))


run_step(snakemake, main)  # noqa: F821
