# Model stage: base model -> LoRA fine-tune per run -> merged model.


if TINY_BASE:

    rule build_tiny_whisper:
        output:
            directory("results/models/base/init"),
        log:
            "logs/train/build_tiny_whisper.log",
        conda:
            "../envs/train.yaml"
        params:
            tiny=config["model"]["tiny"],  # the builder takes the dims it names
            seed=config["model"]["tiny"]["pretrain"]["seed"],
            code=code_digest("build_tiny_whisper.py"),
        script:
            "../scripts/build_tiny_whisper.py"

    rule pretrain_base:
        # Demo only: a random-init model learns nothing from a few LoRA steps, so the tiny base
        # model is first trained in full on the base-domain voices.
        input:
            base="results/models/base/init",
            train="results/data/base_domain/manifests/train.jsonl",
            dev="results/data/base_domain/manifests/dev.jsonl",
        output:
            model=directory("results/models/base/hf"),
        log:
            "logs/train/pretrain_base.log",
        benchmark:
            "benchmarks/out/pretrain_base.tsv"
        conda:
            "../envs/train.yaml"
        threads: 2
        resources:
            gpu=1,
        params:
            settings={
                **config["model"]["tiny"]["pretrain"],
                "full_finetune": True,
                "streaming": config["data"]["streaming"],
            },
            checkpoints="results/checkpoints/base",
            code=training_code(config["model"]["tiny"]["pretrain"], guarded=False),
        script:
            "../scripts/finetune.py"

elif BASE.kind == "ct2":

    rule import_base_model:
        # Training and merging need transformers weights: the folder is imported once, exactly.
        input:
            str(BASE.path),
        output:
            directory("results/models/base/hf"),
        log:
            "logs/train/import_base_model.log",
        localrule: True
        conda:
            "../envs/train.yaml"
        params:
            code=code_digest("import_base_model.py"),
        script:
            "../scripts/import_base_model.py"

elif BASE.kind == "hub":

    rule fetch_base_model:
        output:
            directory(BASE.hub_dir),
        log:
            "logs/train/fetch_base_model.log",
        retries: 2
        localrule: True
        conda:
            "../envs/train.yaml"
        params:
            repo_id=config["model"]["base"],
            revision=config["model"]["revision"],
            code=code_digest("fetch_base_model.py"),
        script:
            "../scripts/fetch_base_model.py"


rule finetune:
    input:
        base=base_model_dir(),
        # the main corpus's manifests, or the run's mix of corpora (rules/corpora.smk)
        train=lambda wc: run_manifest(wc.run, "train"),
        dev=lambda wc: run_manifest(wc.run, "dev"),
        general=guard_manifest,  # eval.general's manifest when the run is guarded
    output:
        model=directory("results/models/{run}/adapter"),
        loss_plot=report(
            "results/models/{run}/loss.png",
            category="Training",
            labels={"run": "{run}", "figure": "loss curve"},
            caption="../report/loss.rst",
        ),
    log:
        "logs/train/finetune_{run}.log",
    benchmark:
        "benchmarks/out/finetune_{run}.tsv"
    conda:
        "../envs/train.yaml"
    threads: 4
    resources:
        # None leaves a resource out: `gpu` on one node, the SLURM job's shape across nodes.
        gpu=lambda wc: job_resources(wc.run).get("gpu"),
        nodes=lambda wc: job_resources(wc.run).get("nodes"),
        tasks=lambda wc: job_resources(wc.run).get("tasks"),
        mpi=lambda wc: job_resources(wc.run).get("mpi"),
        gres=lambda wc: job_resources(wc.run).get("gres"),
    params:
        settings=run_params,
        # Intermediate checkpoints live outside the declared output, which Snakemake deletes
        # when a job fails: a killed run resumes from them on the next call.
        checkpoints="results/checkpoints/{run}",
        code=lambda wc: training_code(
            run_settings(config, wc.run), guarded=guard_settings(wc.run) is not None
        ),
    script:
        "../scripts/finetune.py"


rule merge:
    input:
        base=base_model_dir(),
        adapter="results/models/{run}/adapter",
    output:
        directory("results/models/{run}/merged"),
    log:
        "logs/train/merge_{run}.log",
    benchmark:
        "benchmarks/out/merge_{run}.tsv"
    conda:
        "../envs/train.yaml"
    params:
        code=code_digest("merge.py"),
    script:
        "../scripts/merge.py"
