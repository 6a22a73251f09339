"""An extra test set (config eval.sets): check every line and its audio, copy it into the DAG."""

from _step import run_step

from whisperforge.core.manifest import import_eval_set


def main(smk):
    import_eval_set(smk.input.manifest, smk.output[0])


run_step(snakemake, main)  # noqa: F821
