"""A Hugging Face dataset (data.corpora.NAME.hf) as 16 kHz wavs and Whisper-Finetune manifests."""

from pathlib import Path

from _step import run_step

from whisperforge.data.hfcorpus import import_hf_corpus


def main(smk):
    import_hf_corpus(
        smk.wildcards.corpus_name,
        smk.params.hf,
        smk.params.folder,
        smk.params.data,
        smk.output.audio,
        Path(smk.output.stats).parent,
    )


run_step(snakemake, main)  # noqa: F821
