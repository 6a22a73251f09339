"""Upload one hub folder (results/hub/<run>/<artifact>/) in one commit; write the receipt."""

import logging

from _step import run_step

from whisperforge.core.files import write_json
from whisperforge.metrics.score import best_run
from whisperforge.publish.hub import BEST, push_folder


def main(smk):
    # input.folders: one per params.runs; input.cer: each run's test CER when choosing the best.
    folders = dict(zip(smk.params.runs, smk.input.folders, strict=True))
    run = smk.params.run
    if run == BEST:
        run = best_run(
            {(r, "test"): p for r, p in zip(smk.params.runs, smk.input.cer, strict=True)}
        )
    receipt = push_folder(folders[run], smk.params.repo_id, private=smk.params.private)
    receipt |= {"run": run, "artifact": smk.params.artifact}
    write_json(smk.output[0], receipt)  # only once the commit has landed
    logging.getLogger("push").info("pushed %s to %s", folders[run], receipt["commit_url"])


run_step(snakemake, main)  # noqa: F821
