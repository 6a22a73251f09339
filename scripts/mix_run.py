"""A run's train and dev manifests from the corpora of its mix, weighted; mix.json its facts."""

from _step import run_step

from whisperforge.core.files import write_json
from whisperforge.core.manifest import write_jsonl
from whisperforge.data.corpora import mix_manifests


def main(smk):
    mix = smk.params.mix
    paths = iter(smk.input)  # each corpus's train then dev manifest, in the mix's order
    sources = {corpus: {"train": next(paths), "dev": next(paths)} for corpus in mix}
    records, facts = mix_manifests(sources, mix, smk.params.seed)
    write_jsonl(smk.output.train, records["train"])
    write_jsonl(smk.output.dev, records["dev"])
    write_json(smk.output.facts, facts)


run_step(snakemake, main)  # noqa: F821
