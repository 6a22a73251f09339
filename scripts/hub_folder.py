"""A run's merged model or CTranslate2 export -> results/hub/<run>/<artifact>/ with a model card."""

import logging

from _step import run_step

from whisperforge.publish.hub import make_hub_folder


def main(smk):
    counts = make_hub_folder(
        smk.output[0],
        smk.input.model,
        run=smk.wildcards.run,
        artifact=smk.wildcards.artifact,
        quantization=smk.params.quantization,
        # input.cer and input.base_cer list one cer.json per set, in params.sets' order.
        cer_files=dict(zip(smk.params.sets, smk.input.cer, strict=True)),
        base_cer_files=dict(zip(smk.params.sets, smk.input.base_cer, strict=True)),
        provenance=smk.input.provenance,
        stats=smk.input.stats,
        mix=smk.input.mix[0] if smk.input.mix else None,  # a mixed run's mix.json
        base=smk.params.base,
        revision=smk.params.revision,
        base_dir=smk.input.base_model,
        license=smk.params.license,
        datasets=smk.params.datasets,
        language=smk.params.language,
        settings=smk.params.settings,
        general=smk.params.general,
        max_forgetting=smk.params.max_forgetting,
    )
    logging.getLogger("hub_folder").info("%s: %s", smk.output[0], counts)


run_step(snakemake, main)  # noqa: F821
