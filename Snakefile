# whisperforge: AISHELL-1 -> manifests -> LoRA fine-tune -> merged -> CTranslate2 -> CER report.
#   snakemake --cores all --resources gpu=1                     # the real run (config.yaml)
#   snakemake --cores all --workflow-profile profiles/demo      # offline demo on shipped tiny data


from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"


wildcard_constraints:
    run="|".join(re.escape(r) for r in RUNS),
    model="|".join(re.escape(m) for m in MODELS),
    split="|".join(re.escape(s) for s in [*SPLITS, *EXTRA_SETS, *CORPUS_SETS]),
    quantization="|".join(QUANTIZATIONS),
    corpus="aishell|base_domain",


include: "rules/data.smk"
include: "rules/corpora.smk"
include: "rules/train.smk"
include: "rules/export.smk"
include: "rules/evaluate.smk"
include: "rules/subtitles.smk"
include: "rules/hub.smk"


report: "report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
