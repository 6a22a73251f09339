# Config validation, run names and the paths every stage agrees on.

import hashlib
import re
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from whisperforge.config import run_settings, validate_config
from whisperforge.errors import WhisperforgeError

try:
    validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except WhisperforgeError as e:
    raise WorkflowError(str(e)) from None


RUNS = sorted(config["runs"])
MODELS = ["base", *RUNS]
SPLITS = ["train", "dev", "test"]
EVAL_SPLITS = config["eval"]["splits"]
CT2_DIR = f"ct2-{config['export']['quantization']}"
TINY_BASE = config["model"]["base"] == "tiny"


wildcard_constraints:
    run="|".join(re.escape(r) for r in RUNS),
    model="|".join(re.escape(m) for m in MODELS),
    split="train|dev|test",
    corpus="aishell|base_domain",


def source_digest(*modules):
    """A digest of the stage modules a rule runs: Snakemake's code trigger sees only the script."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update((Path(workflow.basedir) / "whisperforge" / module).read_bytes())
    return digest.hexdigest()[:16]


def archive_path(corpus="aishell"):
    """The tgz a corpus is read from: the user's own file in place, or the download target."""
    if corpus == "base_domain":
        return config["model"]["tiny"]["archive"]
    return config["data"]["archive"] or "resources/data_aishell.tgz"


def archive_checks(corpus="aishell"):
    section = config["model"]["tiny"] if corpus == "base_domain" else config["data"]
    return {"md5": section.get("md5"), "size": section.get("size")}


def manifest(split):
    return f"results/manifests/{split}.jsonl"


def hub_model_dir():
    slug = config["model"]["base"].replace("/", "--")
    return f"resources/models/{slug}@{config['model']['revision'] or 'main'}"


def base_model_dir():
    """HF directory of the base model: pretrained in the DAG (tiny), a hub snapshot, or local."""
    base = config["model"]["base"]
    if TINY_BASE:
        return "results/models/base/hf"
    if Path(base).is_dir():
        return base
    return hub_model_dir()


def hf_model_dir(model):
    return base_model_dir() if model == "base" else f"results/models/{model}/merged"


def run_params(wildcards):
    """The run's full training settings (deterministic: plain JSON-able values)."""
    return run_settings(config, wildcards.run)


def all_targets():
    targets = [
        "results/summary.md",
        "results/manifests/stats.json",
        *expand("results/eval/{model}/{split}/cer.json", model=MODELS, split=EVAL_SPLITS),
        *expand("results/eval/{run}/speed.json", run=RUNS),
        *expand("results/models/{run}/loss.png", run=RUNS),
        *expand("results/models/{model}/provenance.json", model=MODELS),
    ]
    return targets
