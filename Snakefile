# whisperforge: AISHELL-1 -> manifests -> LoRA fine-tune -> merged -> CTranslate2 -> CER report.
#   snakemake --cores all --resources gpu=1                     # the real run (config.yaml)
#   snakemake --cores all --workflow-profile profiles/demo      # offline demo on shipped tiny data


from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/export.smk"
include: "rules/evaluate.smk"


report: "report/workflow.rst"


rule all:
    input:
        all_targets(),
    default_target: True
