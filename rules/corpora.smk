# Corpora beside the main one (data.corpora) and each run's mix of corpora.
#
# A recordings corpus: one job per recording (its subtitles checked against its audio by the seed
# model, windows cut, rejected cues written), then one job per split, gathering only that split's
# recordings: correcting one training lecture's subtitles rebuilds that lecture, the train split,
# and the runs whose mix names the corpus; the test split and every other run stay as they are.
#   results/manifests/corpora/<corpus>/{train,dev,test}.jsonl, stats.json, report.tsv,
#   <recording>.rejected.srt
# A manifests corpus is checked and copied like data.manifests; an hf corpus (a Hugging Face
# dataset: a local folder, or a hub dataset fetched once) and a lhotse corpus are read with their
# own libraries into the same manifests (whisperforge/data/hfcorpus.py, lhotsecorpus.py).
# A run with a mix trains on results/manifests/runs/<run>/{train,dev}.jsonl.


rule corpus_recording:
    input:
        audio=lambda wc: recording(wc)["audio"],
        subtitles=lambda wc: recording(wc)["subtitles"],
        seed_model=lambda wc: seed_model_dir(wc.corpus_name),
    output:
        wav="results/data/corpora/{corpus_name}/{recording}.wav",
        windows="results/manifests/corpora/{corpus_name}/recordings/{recording}.jsonl",
        report="results/manifests/corpora/{corpus_name}/recordings/{recording}.tsv",
        info="results/manifests/corpora/{corpus_name}/recordings/{recording}.json",
        reference="results/manifests/corpora/{corpus_name}/recordings/{recording}.reference.json",
        rejected=report(
            "results/manifests/corpora/{corpus_name}/{recording}.rejected.srt",
            category="Your own data",
            subcategory="{corpus_name}",
            labels={"recording": "{recording}", "figure": "rejected cues"},
            caption="../report/rejected.rst",
        ),
    log:
        "logs/corpora/{corpus_name}/{recording}.log",
    benchmark:
        "benchmarks/out/corpus_recording_{corpus_name}_{recording}.tsv"
    wildcard_constraints:
        corpus_name="|".join(re.escape(c) for c in RECORDING_CORPORA) or "^$",
        recording="|".join(re.escape(r) for r in ALL_RECORDINGS) or "^$",
    conda:
        "../envs/evaluate.yaml"
    threads: 2
    resources:
        gpu=1,
    params:
        speaker=lambda wc: recording(wc)["speaker"],
        settings=lambda wc: {k: CORPORA[wc.corpus_name][k] for k in RECORDING_KEYS},
        device=config["train"]["device"],
        code=code_digest("corpus_recording.py"),
    script:
        "../scripts/corpus_recording.py"


rule corpus_split:
    input:
        lambda wc: recording_files(wc.corpus_name, "windows", wc.split),
    output:
        "results/manifests/corpora/{corpus_name}/{split}.jsonl",
    log:
        "logs/corpora/{corpus_name}/split_{split}.log",
    wildcard_constraints:
        corpus_name="|".join(re.escape(c) for c in RECORDING_CORPORA) or "^$",
        split="train|dev|test",
    conda:
        "../envs/data.yaml"
    params:
        code=code_digest("corpus_split.py"),
    script:
        "../scripts/corpus_split.py"


rule corpus_report:
    input:
        infos=lambda wc: recording_files(wc.corpus_name, "info"),
        reports=lambda wc: recording_files(wc.corpus_name, "report"),
        rejected=lambda wc: recording_files(wc.corpus_name, "rejected"),
        # not an input of training: a new best model's subtitles recount, never retrain
        model_subtitles=lambda wc: list(model_subtitles(wc.corpus_name).values()),
    output:
        report=report(
            "results/manifests/corpora/{corpus_name}/report.tsv",
            category="Your own data",
            subcategory="{corpus_name}",
            labels={"recording": "all", "figure": "every cue: kept or why not"},
            caption="../report/corpus_report.rst",
        ),
        stats="results/manifests/corpora/{corpus_name}/stats.json",
    log:
        "logs/corpora/{corpus_name}/report.log",
    wildcard_constraints:
        corpus_name="|".join(re.escape(c) for c in RECORDING_CORPORA) or "^$",
    conda:
        "../envs/evaluate.yaml"
    params:
        recordings=lambda wc: sorted(RECORDINGS[wc.corpus_name]),
        splits=lambda wc: {
            name: facts["split"] for name, facts in RECORDINGS[wc.corpus_name].items()
        },
        # From the job's own input: subtitles the same build writes appear after the DAG is
        # planned (subtitles.inputs may be the corpus's folder) and count from the next build.
        corrected=lambda wc, input: [
            name
            for name, srt in model_subtitles(wc.corpus_name).items()
            if srt in list(input.model_subtitles)
        ],
        subtitles=lambda wc: {
            name: facts["subtitles"]
            for name, facts in RECORDINGS[wc.corpus_name].items()
        },
        code=code_digest("corpus_report.py"),
    script:
        "../scripts/corpus_report.py"


rule import_corpus_manifests:
    input:
        unpack(lambda wc: CORPORA[wc.corpus_name]["manifests"]),
    output:
        **{
            split: f"results/manifests/corpora/{{corpus_name}}/{split}.jsonl"
            for split in SPLITS
        },
        stats="results/manifests/corpora/{corpus_name}/stats.json",
    log:
        "logs/corpora/{corpus_name}/import_manifests.log",
    wildcard_constraints:
        corpus_name="|".join(re.escape(c) for c in MANIFEST_CORPORA) or "^$",
    conda:
        "../envs/data.yaml"
    params:
        code=code_digest("import_manifests.py"),
    script:
        "../scripts/import_manifests.py"


rule fetch_hf_corpus:
    # A hub dataset, once (the login node has the internet): HF_ENDPOINT picks a mirror.
    output:
        directory("resources/datasets/{corpus_name}"),
    log:
        "logs/corpora/{corpus_name}/fetch_hf.log",
    wildcard_constraints:
        corpus_name="|".join(re.escape(c) for c in HUB_CORPORA) or "^$",
    retries: 2
    localrule: True
    conda:
        "../envs/data.yaml"
    params:
        hf=lambda wc: {
            key: CORPORA[wc.corpus_name]["hf"][key]
            for key in ("path", "revision", "allow_patterns")
        },
        code=code_digest("fetch_hf_corpus.py"),
    script:
        "../scripts/fetch_hf_corpus.py"


rule import_hf_corpus:
    # A Hugging Face dataset's rows as 16 kHz wavs and manifests.
    input:
        lambda wc: hf_input(wc.corpus_name),
    output:
        **{
            split: f"results/manifests/corpora/{{corpus_name}}/{split}.jsonl"
            for split in SPLITS
        },
        stats="results/manifests/corpora/{corpus_name}/stats.json",
        audio=directory("results/data/corpora/{corpus_name}"),
    log:
        "logs/corpora/{corpus_name}/import_hf.log",
    benchmark:
        "benchmarks/out/import_hf_corpus_{corpus_name}.tsv"
    wildcard_constraints:
        corpus_name="|".join(re.escape(c) for c in HF_CORPORA) or "^$",
    conda:
        "../envs/data.yaml"
    params:
        hf=lambda wc: CORPORA[wc.corpus_name]["hf"],
        folder=lambda wc: HF_FOLDERS[wc.corpus_name][0],
        data=data_filters(),
        code=code_digest("import_hf_corpus.py"),
    script:
        "../scripts/import_hf_corpus.py"


rule import_lhotse_corpus:
    # lhotse manifests' supervisions as manifest records pointing into their recordings.
    input:
        lambda wc: lhotse_input(wc.corpus_name),
    output:
        **{
            split: f"results/manifests/corpora/{{corpus_name}}/{split}.jsonl"
            for split in SPLITS
        },
        stats="results/manifests/corpora/{corpus_name}/stats.json",
    log:
        "logs/corpora/{corpus_name}/import_lhotse.log",
    wildcard_constraints:
        corpus_name="|".join(re.escape(c) for c in LHOTSE_CORPORA) or "^$",
    conda:
        "../envs/lhotse.yaml"
    params:
        lhotse=lambda wc: CORPORA[wc.corpus_name]["lhotse"],
        data=data_filters(),
        code=code_digest("import_lhotse_corpus.py"),
    script:
        "../scripts/import_lhotse_corpus.py"


rule mix_run:
    # A run's train and dev manifests from the corpora its mix names (runs.<run>.mix).
    input:
        # each corpus's train then dev manifest, in the order of params.mix
        lambda wc: [
            corpus_manifest(corpus, split)
            for corpus in MIXES[wc.run]
            for split in ("train", "dev")
        ],
    output:
        train="results/manifests/runs/{run}/train.jsonl",
        dev="results/manifests/runs/{run}/dev.jsonl",
        facts="results/manifests/runs/{run}/mix.json",
    log:
        "logs/corpora/mix_{run}.log",
    wildcard_constraints:
        run="|".join(re.escape(r) for r in MIXED_RUNS) or "^$",
    conda:
        "../envs/data.yaml"
    params:
        mix=lambda wc: MIXES[wc.run],
        seed=lambda wc: run_settings(config, wc.run)["seed"],
        code=code_digest("mix_run.py"),
    script:
        "../scripts/mix_run.py"
