# Data stage: data_aishell.tgz -> wavs + index -> results/manifests/{train,dev,test}.jsonl


if not config["data"]["archive"] and not config["data"]["manifests"]:

    rule download_aishell:
        output:
            archive="resources/data_aishell.tgz",
        log:
            "logs/data/download_aishell.log",
        retries: 2
        localrule: True
        conda:
            "../envs/data.yaml"
        params:
            urls=config["data"]["urls"],
            md5=config["data"]["md5"],
            size=config["data"]["size"],
            code=code_digest("download_aishell.py"),
        script:
            "../scripts/download_aishell.py"


rule extract_aishell:
    input:
        archive=lambda wc: archive_path(wc.corpus),
    output:
        wav_dir=directory("results/data/{corpus}/wav"),
        transcript="results/data/{corpus}/transcript.txt",
        index="results/data/{corpus}/wavs.tsv",
    log:
        "logs/data/extract_{corpus}.log",
    benchmark:
        "benchmarks/out/extract_{corpus}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 8
    params:
        md5=lambda wc: archive_checks(wc.corpus)["md5"],
        size=lambda wc: archive_checks(wc.corpus)["size"],
        code=code_digest("extract_aishell.py"),
    script:
        "../scripts/extract_aishell.py"


if config["data"]["manifests"]:

    rule import_manifests:
        input:
            **config["data"]["manifests"],
        output:
            **{split: manifest(split) for split in SPLITS},
            stats="results/manifests/stats.json",
        log:
            "logs/data/import_manifests.log",
        conda:
            "../envs/data.yaml"
        params:
            code=code_digest("import_manifests.py"),
        script:
            "../scripts/import_manifests.py"

else:

    rule build_manifests:
        input:
            transcript="results/data/aishell/transcript.txt",
            index="results/data/aishell/wavs.tsv",
        output:
            **{split: manifest(split) for split in SPLITS},
            stats="results/manifests/stats.json",
        log:
            "logs/data/build_manifests.log",
        conda:
            "../envs/data.yaml"
        params:
            data=manifest_settings(),
            required_splits=SPLITS,
            code=code_digest("build_manifests.py"),
        script:
            "../scripts/build_manifests.py"


rule build_base_domain_manifests:
    input:
        transcript="results/data/base_domain/transcript.txt",
        index="results/data/base_domain/wavs.tsv",
    output:
        **{
            split: f"results/data/base_domain/manifests/{split}.jsonl"
            for split in SPLITS
        },
        stats="results/data/base_domain/manifests/stats.json",
    log:
        "logs/data/build_base_domain_manifests.log",
    conda:
        "../envs/data.yaml"
    params:
        data=manifest_settings(),
        required_splits=["train", "dev"],
        code=code_digest("build_manifests.py"),
    script:
        "../scripts/build_manifests.py"


rule manifests_hf:
    # The prepared corpus as a Hugging Face dataset (audio embedded), to share or push as is.
    input:
        **{split: manifest(split) for split in SPLITS},
    output:
        directory("results/manifests/hf"),
    log:
        "logs/data/manifests_hf.log",
    conda:
        "../envs/data.yaml"
    params:
        code=code_digest("manifests_hf.py"),
    script:
        "../scripts/manifests_hf.py"
