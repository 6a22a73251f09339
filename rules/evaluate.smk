# Evaluation stage: CT2 export -> hypotheses -> CER; speed; summary and report.


rule transcribe:
    input:
        model=f"results/models/{{model}}/{CT2_DIR}",
        manifest=lambda wc: manifest(wc.split),
    output:
        "results/eval/{model}/{split}/hyp.jsonl",
    log:
        "logs/eval/transcribe_{model}_{split}.log",
    benchmark:
        "benchmarks/out/transcribe_{model}_{split}.tsv"
    conda:
        "../envs/evaluate.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        options=decode_options(),
        device=config["train"]["device"],  # cuda: stop at once where there is no GPU
        code=code_digest("transcribe.py"),
    script:
        "../scripts/transcribe.py"


rule score:
    input:
        "results/eval/{model}/{split}/hyp.jsonl",
    output:
        cer="results/eval/{model}/{split}/cer.json",
        per_utt=report(
            "results/eval/{model}/{split}/per_utt.tsv",
            category="Evaluation",
            subcategory="Per-utterance CER",
            labels={"model": "{model}", "split": "{split}"},
            caption="../report/per_utt.rst",
        ),
    log:
        "logs/eval/score_{model}_{split}.log",
    conda:
        "../envs/evaluate.yaml"
    params:
        numerals_to_chinese=config["eval"]["numerals_to_chinese"],
        code=code_digest("score.py"),
    script:
        "../scripts/score.py"


rule speed:
    input:
        hf=lambda wc: hf_model_dir(wc.run),
        ct2=f"results/models/{{run}}/{CT2_DIR}",
        manifest=manifest("test"),
    output:
        "results/eval/{run}/speed.json",
    log:
        "logs/eval/speed_{run}.log",
    benchmark:
        "benchmarks/out/speed_{run}.tsv"
    conda:
        "../envs/evaluate.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        options=decode_options("speed_utterances"),
        device=config["train"]["device"],
        code=code_digest("speed.py"),
    script:
        "../scripts/speed.py"


rule summarize:
    input:
        cer=expand(
            "results/eval/{model}/{split}/cer.json", model=MODELS, split=EVAL_SPLITS
        ),
        speed=expand("results/eval/{run}/speed.json", run=RUNS),
        states=expand("results/models/{run}/adapter", run=RUNS),
    output:
        summary=report(
            "results/summary.md",
            category="Summary",
            labels={"figure": "CER table"},
            caption="../report/summary.rst",
        ),
        table=report(
            "results/summary.tsv",
            category="Summary",
            labels={"figure": "CER table (TSV)"},
            caption="../report/summary.rst",
        ),
        chart=report(
            "results/cer.png",
            category="Summary",
            labels={"figure": "CER bar chart"},
            caption="../report/cer_chart.rst",
        ),
        speed=report(
            "results/speed.tsv",
            category="Speed",
            labels={"figure": "speed table"},
            caption="../report/speed.rst",
        ),
        worst=report(
            "results/worst.tsv",
            category="Evaluation",
            labels={"figure": "worst utterances"},
            caption="../report/worst.rst",
        ),
        config=report(
            "results/runs.yaml",
            category="Configuration",
            labels={"figure": "run settings"},
            caption="../report/runs.rst",
        ),
    log:
        "logs/eval/summarize.log",
    conda:
        "../envs/evaluate.yaml"
    params:
        models=MODELS,
        runs={run: run_settings(config, run) for run in RUNS},
        splits=EVAL_SPLITS,
        code=code_digest("summarize.py"),
    script:
        "../scripts/summarize.py"
