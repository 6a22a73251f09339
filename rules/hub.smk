# Hub stage: results/hub/<run>/<artifact>/ for every run, where <artifact> is `transformers` (the
# merged model) or `ct2-<q>` (each CTranslate2 export): the model's files, hard-linked, plus a
# README.md model card carrying the run's CER (so it is built after evaluation). Base has none.
# The transformers folder carries the CER of the primary export, through which it is evaluated.
#
# The opt-in push (not in the default target) uploads one folder in one commit:
#   snakemake push --config 'hub={repo_id: <user>/<name>, run: lora, artifact: ct2-float16}'
# hub.run null pushes the run with the lowest test CER, chosen when the job runs (like the
# subtitles' `best`); the receipt, results/hub/<run or best>/<artifact>.pushed.json, is written
# only once the commit has landed.

from whisperforge.publish.hub import (
    BEST,
    TRANSFORMERS,
    artifact_quantization,
    artifacts,
    dataset_names,
    push_runs,
)

HUB = config["hub"]
HUB_ARTIFACTS = artifacts(QUANTIZATIONS)
HUB_RUN = HUB["run"] or BEST
if HUB_RUN not in [BEST, *RUNS]:
    raise WorkflowError(
        f"config hub.run: {HUB['run']!r} is not one of {', '.join(RUNS)} (null: the best run)"
    )
if HUB["artifact"] not in HUB_ARTIFACTS:
    raise WorkflowError(
        f"config hub.artifact: {HUB['artifact']!r} is not one of {', '.join(HUB_ARTIFACTS)}"
    )
# Every run's hub folder, one per artifact (part of all_targets).
HUB_TARGETS = expand("results/hub/{run}/{artifact}", run=RUNS, artifact=HUB_ARTIFACTS)
# The export whose CER an artifact carries: its own; the primary one for transformers.
hub_quantization = lambda wc: artifact_quantization(wc.artifact, QUANTIZATIONS)


rule hub_folder:
    input:
        model=lambda wc: (
            hf_model_dir(wc.run)
            if wc.artifact == TRANSFORMERS
            else ct2_dir(wc.run, hub_quantization(wc))
        ),
        # one cer.json per set, in EVAL_SETS order (params.sets): the run's, then base's
        cer=lambda wc: [
            f"{eval_dir(wc.run, hub_quantization(wc), name)}/cer.json"
            for name in EVAL_SETS
        ],
        base_cer=lambda wc: [
            f"{eval_dir('base', hub_quantization(wc), name)}/cer.json"
            for name in EVAL_SETS
        ],
        provenance="results/models/{run}/provenance.json",
        stats="results/manifests/stats.json",
        mix=lambda wc: (
            [f"results/manifests/runs/{wc.run}/mix.json"]
            if wc.run in MIXED_RUNS
            else []
        ),
        base_model=base_model_dir(),  # its card's license, when it has one
    output:
        directory("results/hub/{run}/{artifact}"),
    log:
        "logs/hub/hub_folder_{run}_{artifact}.log",
    wildcard_constraints:
        artifact="|".join(re.escape(a) for a in HUB_ARTIFACTS),
    conda:
        "../envs/train.yaml"
    params:
        sets=EVAL_SETS,
        quantization=hub_quantization,
        base=config["model"]["base"],
        revision=config["model"]["revision"],
        settings=run_params,
        license=HUB["license"],
        datasets=dataset_names(config["data"]["manifests"], TINY_BASE),
        language=config["eval"]["language"],
        general=GENERAL_SET,
        max_forgetting=config["eval"]["max_forgetting"],
        code=code_digest("hub_folder.py"),
    script:
        "../scripts/hub_folder.py"


rule push:
    input:
        # hub.run's folder, or every run's for the best; no hub.repo_id fails here, at once
        folders=lambda wc: expand(
            "results/hub/{run}/{artifact}",
            run=push_runs(HUB["repo_id"], HUB["run"], RUNS),
            artifact=HUB["artifact"],
        ),
        # best: every run's test CER of the primary export, to choose from
        cer=[
            f"{eval_dir(run, QUANTIZATIONS[0], 'test')}/cer.json"
            for run in (RUNS if HUB_RUN == BEST else [])
        ],
    output:
        f"results/hub/{HUB_RUN}/{HUB['artifact']}.pushed.json",
    log:
        "logs/hub/push.log",
    localrule: True
    conda:
        "../envs/train.yaml"
    params:
        repo_id=HUB["repo_id"],
        private=HUB["private"],
        run=HUB_RUN,
        runs=RUNS if HUB_RUN == BEST else [HUB_RUN],
        artifact=HUB["artifact"],
        code=code_digest("push_hub.py"),
    script:
        "../scripts/push_hub.py"
