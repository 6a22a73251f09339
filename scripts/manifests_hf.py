"""{train,dev,test}.jsonl -> results/manifests/hf/: the corpus as a Hugging Face dataset, audio
embedded (`datasets.load_from_disk` reads it back; `push_to_hub` uploads it as is)."""

import logging

from _step import run_step

from whisperforge.data.hfdata import save_hf_dataset


def main(smk):
    counts = save_hf_dataset(dict(smk.input.items()), smk.output[0])
    logging.getLogger("manifests_hf").info("rows per split: %s", counts)


run_step(snakemake, main)  # noqa: F821
