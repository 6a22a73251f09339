"""lhotse manifests (data.corpora.NAME.lhotse) as Whisper-Finetune manifests."""

from pathlib import Path

from _step import run_step

from whisperforge.data.lhotsecorpus import import_lhotse_corpus


def main(smk):
    import_lhotse_corpus(
        smk.wildcards.corpus_name, smk.params.lhotse, smk.params.data, Path(smk.output.stats).parent
    )


run_step(snakemake, main)  # noqa: F821
