# Evaluation stage: each CT2 export x each set (eval splits, eval.sets) -> hypotheses -> CER;
# speed; summary and report.


rule import_eval_set:
    # An eval.sets manifest, every line and its audio checked, copied into the DAG.
    input:
        manifest=lambda wc: config["eval"]["sets"][wc.name],
    output:
        "results/manifests/sets/{name}.jsonl",
    log:
        "logs/eval/import_eval_set_{name}.log",
    wildcard_constraints:
        name="|".join(re.escape(s) for s in EXTRA_SETS) or "^$",
    conda:
        "../envs/evaluate.yaml"
    params:
        code=code_digest("import_eval_set.py"),
    script:
        "../scripts/import_eval_set.py"


rule transcribe:
    # {split}: an eval split or an eval.sets name; the primary export (results/eval/<model>/...).
    input:
        model=f"results/models/{{model}}/{CT2_DIR}",
        manifest=lambda wc: eval_manifest(wc.split),
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


use rule transcribe as transcribe_variant with:
    # Another export.quantizations variant: results/eval/<model>/ct2-<q>/<set>/.
    input:
        model="results/models/{model}/ct2-{quantization}",
        manifest=lambda wc: eval_manifest(wc.split),
    output:
        "results/eval/{model}/ct2-{quantization}/{split}/hyp.jsonl",
    log:
        "logs/eval/transcribe_{model}_{quantization}_{split}.log",
    benchmark:
        "benchmarks/out/transcribe_{model}_{quantization}_{split}.tsv"
    wildcard_constraints:
        quantization="|".join(QUANTIZATIONS[1:]) or "^$",


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


use rule score as score_variant with:
    input:
        "results/eval/{model}/ct2-{quantization}/{split}/hyp.jsonl",
    output:
        cer="results/eval/{model}/ct2-{quantization}/{split}/cer.json",
        per_utt=report(
            "results/eval/{model}/ct2-{quantization}/{split}/per_utt.tsv",
            category="Evaluation",
            subcategory="Per-utterance CER",
            labels={"model": "{model} ct2-{quantization}", "split": "{split}"},
            caption="../report/per_utt.rst",
        ),
    log:
        "logs/eval/score_{model}_{quantization}_{split}.log",
    wildcard_constraints:
        quantization="|".join(QUANTIZATIONS[1:]) or "^$",


rule speed:
    # transformers vs faster-whisper on every export, batched at eval.batch_size and unbatched.
    input:
        hf=lambda wc: hf_model_dir(wc.run),
        ct2=lambda wc: [ct2_dir(wc.run, q) for q in QUANTIZATIONS],
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
        quantizations=QUANTIZATIONS,
        device=config["train"]["device"],
        code=code_digest("speed.py"),
    script:
        "../scripts/speed.py"


rule summarize:
    input:
        cer=every_cer(),
        speed=expand("results/eval/{run}/speed.json", run=RUNS),
        states=expand("results/models/{run}/adapter", run=RUNS),
        corpus_stats=expand("results/manifests/corpora/{name}/stats.json", name=CORPORA),
        longform=lambda wc: expand(
            "results/eval/{model}/{name}/longform.json",
            model=MODELS,
            name=LONGFORM_SETS,
        ),
        mixes=expand("results/manifests/runs/{run}/mix.json", run=MIXED_RUNS),
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
        learning_curve=report(
            "results/learning_curve.png",
            category="Your own data",
            labels={"figure": "learning curve"},
            caption="../report/learning_curve.rst",
        ),
        forgetting=report(
            "results/forgetting.png",
            category="Summary",
            labels={"figure": "adaptation vs forgetting"},
            caption="../report/forgetting.rst",
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
        sets=EVAL_SETS,
        variants=QUANTIZATIONS,
        max_cer_delta=config["eval"]["max_cer_delta"],
        fail_on_cer_delta=config["eval"]["fail_on_cer_delta"],
        general=GENERAL_SET,
        max_forgetting=config["eval"]["max_forgetting"],
        code=code_digest("summarize.py"),
    script:
        "../scripts/summarize.py"


# Recordings corpora with held-out (test) recordings: each such recording is subtitled whole, as
# the user will use the model (VAD, the primary CT2 export, faster-whisper), and scored against
# its checked cues: CER over the recording, loops, long deletions, text where the reference has
# none, start-time error, subtitle conventions (whisperforge/evaluate/longform.py).
LONGFORM_SETS = [name for name in CORPUS_SETS if name in RECORDINGS]


rule longform:
    input:
        model=f"results/models/{{model}}/{CT2_DIR}",
        audio=lambda wc: recording_files(wc.split, "wav", "test"),
        reference=lambda wc: recording_files(wc.split, "reference", "test"),
    output:
        "results/eval/{model}/{split}/longform.json",
    log:
        "logs/eval/longform_{model}_{split}.log",
    benchmark:
        "benchmarks/out/longform_{model}_{split}.tsv"
    wildcard_constraints:
        split="|".join(re.escape(s) for s in LONGFORM_SETS) or "^$",
    conda:
        "../envs/evaluate.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        recordings=lambda wc: [
            name
            for name, facts in sorted(RECORDINGS[wc.split].items())
            if facts["split"] == "test"
        ],
        options=subtitle_options(),
        compute_type=config["eval"]["compute_type"],
        numerals_to_chinese=config["eval"]["numerals_to_chinese"],
        code=code_digest("longform.py"),
    script:
        "../scripts/longform.py"
