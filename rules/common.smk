# Config validation, run names and the paths every stage agrees on.

import re
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from whisperforge.aishell import Filters
from whisperforge.code import module_digest
from whisperforge.config import run_settings, validate_config
from whisperforge.options import decode_keys
from whisperforge.errors import WhisperforgeError

try:
    validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except WhisperforgeError as e:
    raise WorkflowError(str(e)) from None


RUNS = sorted(config["runs"])
MODELS = ["base", *RUNS]
SPLITS = ["train", "dev", "test"]
EVAL_SPLITS = config["eval"]["splits"]
EXTRA_SETS = list(config["eval"]["sets"])  # the user's own test sets (eval.sets)
EVAL_SETS = [*EVAL_SPLITS, *EXTRA_SETS]  # everything every model is scored on
QUANTIZATIONS = config["export"]["quantizations"]  # the primary first
CT2_DIR = f"ct2-{QUANTIZATIONS[0]}"  # the primary export: evaluation, subtitles, speed baseline
TINY_BASE = config["model"]["base"] == "tiny"


def code_digest(script):
    """Digest of the whisperforge modules a step script imports, directly or through others.

    Snakemake's code trigger sees only the script itself; as a param, this reruns a step when a
    module it runs changes. Derived from the imports (whisperforge/code.py), so it cannot drift.
    """
    basedir = Path(workflow.basedir)
    return module_digest(basedir / "scripts" / script, basedir)


def decode_options(*extra_keys):
    """The `eval` keys a decoding step uses: changing any other eval key reruns none of them."""
    return {key: config["eval"][key] for key in [*decode_keys(), *extra_keys]}


def manifest_settings():
    """The `data` keys the manifest steps use: the filters and train_on_dev. Not the archive's
    md5 or size: extract_aishell checks those, and the base-domain manifests must not see them.
    """
    keys = [f.name for f in fields(Filters)] + ["train_on_dev"]
    return {key: config["data"][key] for key in keys}


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


def eval_manifest(name):
    """A split's manifest, or an eval.sets manifest once checked and copied (import_eval_set)."""
    return (
        f"results/manifests/sets/{name}.jsonl" if name in EXTRA_SETS else manifest(name)
    )


def ct2_dir(model, quantization=None):
    return f"results/models/{model}/ct2-{quantization or QUANTIZATIONS[0]}"


def eval_dir(model, quantization, name):
    """Where `model`'s export `quantization` is scored on set `name`: the primary export keeps
    the paths of one-export versions (results/eval/<model>/<set>), others nest by variant.
    """
    if quantization == QUANTIZATIONS[0]:
        return f"results/eval/{model}/{name}"
    return f"results/eval/{model}/ct2-{quantization}/{name}"


def every_cer():
    """cer.json of every model, export and set."""
    return [
        f"{eval_dir(model, q, name)}/cer.json"
        for model in MODELS
        for q in QUANTIZATIONS
        for name in EVAL_SETS
    ]


def hub_model_dir():
    slug = re.sub(r"[^\w.-]+", "--", config["model"]["base"])
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
    """The run's full training settings (deterministic: plain JSON-able values), with how the
    data is read (data.streaming)."""
    return {
        **run_settings(config, wildcards.run),
        "streaming": config["data"]["streaming"],
    }


def all_targets():
    targets = [
        "results/summary.md",
        "results/manifests/stats.json",
        *every_cer(),
        *expand("results/eval/{run}/speed.json", run=RUNS),
        *expand("results/models/{run}/loss.png", run=RUNS),
        *expand("results/models/{model}/provenance.json", model=MODELS),
        "results/manifests/hf",
        *SUBTITLE_TARGETS,
        *HUB_TARGETS,
    ]
    return targets
