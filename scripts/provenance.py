"""Record what produced a model: data hashes, settings, software versions, git commit, GPU."""

from pathlib import Path

from _step import run_step

from whisperforge.publish.provenance import write_provenance


def main(smk):
    write_provenance(
        smk.output[0],
        smk.input.model,
        smk.input.ct2,
        list(smk.input.manifests),
        archive_md5=smk.params.archive_md5,
        base=smk.params.base,
        revision=smk.params.revision,
        settings=smk.params.settings,
        export=smk.params.export,
        # The workflow checkout (scripts/..), whatever the working directory is.
        workflow_dir=Path(smk.scriptdir).parent,
        training_summary=Path(smk.input.adapter) / "training_summary.json"
        if smk.input.get("adapter")
        else None,
    )


run_step(snakemake, main)  # noqa: F821
