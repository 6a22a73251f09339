"""Import a local faster-whisper (CTranslate2) base model into a transformers folder, once."""

from _step import run_step

from whisperforge.model.ct2import import import_ct2_model


def main(smk):
    import_ct2_model(smk.input[0], smk.output[0])


run_step(snakemake, main)  # noqa: F821
