"""Bring-your-own data: check the user's JSONL manifests and copy them into results/manifests/."""

from pathlib import Path

from _step import run_step

from whisperforge.core.manifest import import_manifests


def main(smk):
    sources = {split: smk.input[split] for split in ("train", "dev", "test")}
    import_manifests(sources, Path(smk.output.stats).parent)


run_step(snakemake, main)  # noqa: F821
