"""Long-form measures of one recording against its reference cues -> longform.json.

Inputs: `model` (a CTranslate2 export), `audio` (the recording), `reference` (JSON
`{"cues": [{"start", "end", "text"}, ...]}`); params: `options` (config `subtitles`),
`compute_type`, optionally `numerals_to_chinese` (config `eval`'s, as the CER table scores).
"""

from _step import run_step

from whisperforge.files import write_json
from whisperforge.longform import evaluate_recording, read_reference
from whisperforge.options import SubtitleOptions


def main(smk):
    result = evaluate_recording(
        smk.input.model,
        smk.input.audio,
        read_reference(smk.input.reference),
        SubtitleOptions.from_config(smk.params.options),
        compute_type=smk.params.compute_type,
        threads=smk.threads,
        numerals_to_chinese=bool(getattr(smk.params, "numerals_to_chinese", False)),
    )
    write_json(smk.output[0], result)


run_step(snakemake, main)  # noqa: F821
