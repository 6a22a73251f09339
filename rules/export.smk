# Export stage: HF model -> CTranslate2 exports (each checked by loading it in faster-whisper),
# provenance.


rule export_ct2:
    # One export per export.quantizations entry: results/models/<model>/ct2-<q>/.
    input:
        model=lambda wc: hf_model_dir(wc.model),
        probe=manifest("test"),
    output:
        directory("results/models/{model}/ct2-{quantization}"),
    log:
        "logs/export/export_ct2_{model}_{quantization}.log",
    benchmark:
        "benchmarks/out/export_ct2_{model}_{quantization}.tsv"
    conda:
        "../envs/export.yaml"
    params:
        quantization=lambda wc: wc.quantization,
        # The export decodes one utterance to prove it loads: the decoding runtime checks the
        # export, it does not make it, so a decoder edit reruns decoding and no export.
        code=code_digest("export_ct2.py", skip=[DECODER_MODULE]),
    script:
        "../scripts/export_ct2.py"


rule provenance:
    input:
        model=lambda wc: hf_model_dir(wc.model),
        ct2=f"results/models/{{model}}/{CT2_DIR}",
        manifests=lambda wc: [
            *(manifest(split) for split in SPLITS),
            *(
                [run_manifest(wc.model, s) for s in ("train", "dev")]
                if wc.model in MIXED_RUNS
                else []
            ),
        ],
        adapter=lambda wc: (
            [] if wc.model == "base" else f"results/models/{wc.model}/adapter"
        ),
    output:
        report(
            "results/models/{model}/provenance.json",
            category="Provenance",
            labels={"model": "{model}"},
            caption="../report/provenance.rst",
        ),
    log:
        "logs/export/provenance_{model}.log",
    conda:
        "../envs/export.yaml"
    params:
        archive_md5=config["data"]["md5"],
        base=config["model"]["base"],
        revision=config["model"]["revision"],
        settings=lambda wc: (
            {}
            if wc.model == "base"
            else {**run_settings(config, wc.model), "mix": MIXES[wc.model]}
        ),
        export=config["export"],
        code=code_digest("provenance.py"),
    script:
        "../scripts/provenance.py"
