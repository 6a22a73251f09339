# Config validation, run names and the paths every stage agrees on.

import re
import sys
from dataclasses import fields
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from whisperforge.data.aishell import Filters
from whisperforge.core.code import module_digest
from whisperforge.core.config import (
    MAIN_CORPUS,
    is_default_mix,
    run_mix,
    run_settings,
    validate_config,
)
from whisperforge.data.corpora import (
    corpus_kind,
    corpus_plan,
    has_test_split,
    hf_folder,
    lhotse_manifests,
)
from whisperforge.core.basemodel import resolve_base
from whisperforge.core.options import decode_keys, subtitle_keys
from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.instances import clear_stale_locks

try:
    validate_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml")
except WhisperforgeError as e:
    raise WorkflowError(str(e)) from None

if workflow.is_main_process:  # a job's own snakemake (SLURM, groups) is not a build
    stale, doubt = clear_stale_locks(Path(".snakemake"))
    if stale:
        logger.warning(
            f".snakemake/locks: removed {len(stale)} lock(s) left by a killed build "
            "(no other build is running here)"
        )
    elif doubt:
        logger.warning(
            f".snakemake/locks: kept, {doubt}; once you know no build runs here, "
            "snakemake --unlock"
        )


RUNS = sorted(config["runs"])
MODELS = ["base", *RUNS]
SPLITS = ["train", "dev", "test"]
EVAL_SPLITS = config["eval"]["splits"]
EXTRA_SETS = list(config["eval"]["sets"])  # the user's own test sets (eval.sets)
CORPORA = config["data"]["corpora"]  # corpora beside the main one (data.corpora)
try:
    # recordings corpora: {corpus: {recording: {audio, subtitles, speaker, split}}}
    RECORDINGS = {
        name: corpus_plan(name, corpus)
        for name, corpus in CORPORA.items()
        if "recordings" in corpus
    }
    # hf corpora: {corpus: (the folder read, whether it is a hub snapshot to fetch)}
    HF_FOLDERS = {
        name: hf_folder(name, corpus["hf"])
        for name, corpus in CORPORA.items()
        if "hf" in corpus
    }
except WhisperforgeError as e:
    raise WorkflowError(str(e)) from None
# A corpus's test split is scored by every model, under the corpus's name.
CORPUS_SETS = sorted(
    name
    for name, corpus in CORPORA.items()
    if has_test_split(corpus, RECORDINGS.get(name))
)
EVAL_SETS = [
    *EVAL_SPLITS,
    *EXTRA_SETS,
    *CORPUS_SETS,
]  # everything every model is scored on
# The general-speech set forgetting is measured on (eval.general): scored by every model.
GENERAL_SET = config["eval"]["general"]
if GENERAL_SET is not None and GENERAL_SET not in EVAL_SETS:
    raise WorkflowError(
        f"config eval.general: {GENERAL_SET} is not an evaluated set "
        f"({', '.join(EVAL_SETS)}): name an eval split, an eval.sets name or a corpus"
    )
MIXES = {run: run_mix(config, run) for run in RUNS}
MIXED_RUNS = [run for run in RUNS if not is_default_mix(MIXES[run])]
QUANTIZATIONS = config["export"]["quantizations"]  # the primary first
CT2_DIR = f"ct2-{QUANTIZATIONS[0]}"  # the primary export: evaluation, subtitles, speed baseline
# model.base resolved once (whisperforge/core/basemodel.py): tiny, local, ct2 (a local faster-whisper
# folder, imported once into transformers) or hub.
BASE = resolve_base(config["model"]["base"], config["model"]["revision"])
TINY_BASE = BASE.kind == "tiny"


def code_digest(script, skip=()):
    """Digest of the whisperforge modules a step script imports, directly or through others.

    Snakemake's code trigger sees only the script itself; as a param, this reruns a step when a
    module it runs changes. Derived from the imports (whisperforge/core/code.py), so it cannot drift.
    `skip`: modules the step imports but does not run with its settings.
    """
    basedir = Path(workflow.basedir)
    return module_digest(basedir / "scripts" / script, basedir, skip)


def training_code(settings, guarded):
    """finetune.py's digest for a training job: the CER code (normalization, alignment) runs in
    training only where it computes a CER (metric_for_best: cer, or the forgetting guard), so a
    CER edit rescores every model but retrains only those."""
    computes_cer = settings["metric_for_best"] == "cer" or guarded
    return code_digest("finetune.py", skip=() if computes_cer else [CER_MODULE])


CER_MODULE = "whisperforge/metrics/cer.py"
DECODER_MODULE = "whisperforge/decode/transcribe.py"


def decode_options(*extra_keys):
    """The `eval` keys a decoding step uses: changing any other eval key reruns none of them."""
    return {key: config["eval"][key] for key in [*decode_keys(), *extra_keys]}


def subtitle_options():
    """The `subtitles` keys that shape cues: not `inputs` or `model`, which choose what is
    subtitled by which model (a change writes other files, and reruns no written one).
    """
    return {key: config["subtitles"][key] for key in subtitle_keys()}


def manifest_settings():
    """The `data` keys the manifest steps use: the filters and train_on_dev. Not the archive's
    md5 or size: extract_aishell checks those, and the base-domain manifests must not see them.
    """
    return {**data_filters(), "train_on_dev": config["data"]["train_on_dev"]}


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


def corpus_manifest(corpus, split):
    """A corpus's split: the main corpus's (results/manifests/) or a data.corpora one's."""
    if corpus == MAIN_CORPUS:
        return manifest(split)
    return f"results/manifests/corpora/{corpus}/{split}.jsonl"


def run_manifest(run, split):
    """The train or dev manifest a run trains on: the main corpus's, or its mix's."""
    if run in MIXED_RUNS:
        return f"results/manifests/runs/{run}/{split}.jsonl"
    return manifest(split)


def eval_manifest(name):
    """A split's manifest, an eval.sets manifest once checked and copied (import_eval_set), or
    a corpus's test split."""
    if name in EXTRA_SETS:
        return f"results/manifests/sets/{name}.jsonl"
    if name in CORPUS_SETS:
        return corpus_manifest(name, "test")
    return manifest(name)


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


def base_model_dir():
    """HF directory of the base model: pretrained in the DAG (tiny), imported from a local
    CTranslate2 folder, a hub snapshot, or local."""
    return BASE.hf_dir


def hf_model_dir(model):
    return base_model_dir() if model == "base" else f"results/models/{model}/merged"


def guard_settings(run):
    """The run's forgetting guard (whisperforge/train/guard.py), or None: eval.general unset or the
    run's train.forgetting_guard off."""
    settings = run_settings(config, run)
    if GENERAL_SET is None or not settings["forgetting_guard"]:
        return None
    return {
        "general_set": GENERAL_SET,
        "budget_pts": config["eval"]["max_forgetting"],
        "max_utterances": settings["guard_max_utterances"],
    }


def guard_manifest(wildcards):
    """The general set's manifest, an input of a guarded run's finetune."""
    return [eval_manifest(GENERAL_SET)] if guard_settings(wildcards.run) else []


def job_resources(run):
    """What a run's finetune job asks for. On one node: `gpu`, Snakemake's local count and the
    SLURM plugin's --gpus. Across nodes (train.nodes, profiles/slurm): one SLURM task per node,
    started by the step itself (`mpi`: the plugin then leaves the srun to the step, launch.py),
    and `gres` for the GPUs on each node (--gpus would be a total SLURM may spread unevenly).
    """
    settings = run_settings(config, run)
    gpus, nodes = settings["gpus"], settings["nodes"]
    if nodes == 1:
        return {"gpu": gpus}
    return {
        "nodes": nodes,
        "tasks": nodes,
        "mpi": "srun",
        "gres": None if settings["device"] == "cpu" else f"gpu:{gpus}",
    }


def run_params(wildcards):
    """The run's full training settings (deterministic: plain JSON-able values), with how the
    data is read (data.streaming) and its forgetting guard."""
    return {
        **run_settings(config, wildcards.run),
        "streaming": config["data"]["streaming"],
        "guard": guard_settings(wildcards.run),
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
        *expand("results/manifests/corpora/{name}/stats.json", name=CORPORA),
        *expand(
            "results/eval/{model}/{name}/longform.json",
            model=MODELS,
            name=LONGFORM_SETS,
        ),
        *SUBTITLE_TARGETS,
        *HUB_TARGETS,
    ]
    return targets


# --- own-recordings corpora (rules/corpora.smk) ---

RECORDING_CORPORA = sorted(RECORDINGS)
MANIFEST_CORPORA = sorted(
    n for n, c in CORPORA.items() if corpus_kind(c) == "manifests"
)
HF_CORPORA = sorted(HF_FOLDERS)
HUB_CORPORA = sorted(name for name, (_, hub) in HF_FOLDERS.items() if hub)
LHOTSE_CORPORA = sorted(n for n, c in CORPORA.items() if corpus_kind(c) == "lhotse")
ALL_RECORDINGS = sorted({r for plan in RECORDINGS.values() for r in plan})


def recording(wc):
    return RECORDINGS[wc.corpus_name][wc.recording]


def recording_files(corpus, kind, split=None):
    """One kind of per-recording output for each of a corpus's recordings (of one split)."""
    paths = {
        "windows": "results/manifests/corpora/{c}/recordings/{r}.jsonl",
        "report": "results/manifests/corpora/{c}/recordings/{r}.tsv",
        "info": "results/manifests/corpora/{c}/recordings/{r}.json",
        "reference": "results/manifests/corpora/{c}/recordings/{r}.reference.json",
        "wav": "results/data/corpora/{c}/{r}.wav",
        "rejected": "results/manifests/corpora/{c}/{r}.rejected.srt",
    }
    return [
        paths[kind].format(c=corpus, r=name)
        for name, facts in sorted(RECORDINGS[corpus].items())
        if split is None or facts["split"] == split
    ]


def seed_model_dir(corpus):
    """The model that checks a corpus's cues: base, a run's merged model, or a directory."""
    seed = CORPORA[corpus]["check"]["model"]
    if seed == "base":
        return base_model_dir()
    if seed in RUNS:
        if corpus in MIXES[seed]:
            raise WorkflowError(
                f"config data.corpora.{corpus}.check.model: {seed} trains on {corpus} "
                "itself (its mix): choose base or another run"
            )
        return hf_model_dir(seed)
    if not (Path(seed).expanduser() / "config.json").is_file():
        raise WorkflowError(
            f"config data.corpora.{corpus}.check.model: {seed} is not base, a run "
            f"({', '.join(RUNS)}) or a Whisper model directory"
        )
    return str(Path(seed).expanduser())


# What a recording's step uses of its corpus's settings (not the splits: moving a recording
# to another split rebuilds only the split manifests).
RECORDING_KEYS = [
    "script",
    "language",
    "max_audio_s",
    "no_speech_fraction",
    "unsubtitled_speech_s",
    "offset",
    "check",
    "split_seed",
]


def model_subtitles(corpus):
    """{recording: the model's subtitles of it} for recordings the subtitles step has written
    subtitles for (subtitles.model): the corpus's file for them is that output, corrected.
    """
    out = {}
    for name, facts in sorted(RECORDINGS[corpus].items()):
        srt = Path(
            f"results/subtitles/{config['subtitles']['model']}/{Path(facts['audio']).name}.srt"
        )
        if srt.is_file():
            out[name] = str(srt)
    return out


def hf_input(corpus):
    """What an hf corpus is read from: the files of its local folder (an edit there reimports
    it), or its hub snapshot (fetch_hf_corpus)."""
    folder, hub = HF_FOLDERS[corpus]
    if hub:
        return [folder]
    return sorted(
        str(p)
        for p in Path(folder).rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def lhotse_input(corpus):
    """The lhotse manifests a lhotse corpus reads, every split's."""
    return [
        path for paths in lhotse_manifests(CORPORA[corpus]).values() for path in paths
    ]


def data_filters():
    """The `data` keys an imported corpus's rows are filtered by, and data.bad_wav."""
    return {f.name: config["data"][f.name] for f in fields(Filters)}
