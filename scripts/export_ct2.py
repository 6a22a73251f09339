"""Convert the HF model to CTranslate2 and prove the export loads and decodes in faster-whisper."""

from _step import run_step

from whisperforge.model.export import export_ct2


def main(smk):
    export_ct2(
        smk.input.model,
        smk.output[0],
        quantization=smk.params.quantization,
        probe_manifest=smk.input.probe,
    )


run_step(snakemake, main)  # noqa: F821
