"""Hub-ready folders (whisperforge/publish/hub.py): linked model files, a model card the hub
parses with the run's CER, atomic rebuilds, and a push that fails in one line without a network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT
from huggingface_hub import ModelCard

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import write_json
from whisperforge.publish.hub import (
    BEST,
    SKIP_FILES,
    artifact_quantization,
    artifacts,
    base_license,
    dataset_names,
    make_hub_folder,
    push_folder,
    push_runs,
)

SETS = ["train", "test", "lecture"]  # two splits and one eval.sets set
RUN_CER = {
    "train": {"cer": 0.0812, "cer_whisper_finetune": 0.0734},
    "test": {"cer": 0.1234, "cer_whisper_finetune": 0.1102},
    "lecture": {"cer": 0.3013},  # cer_whisper_finetune is optional (before #14)
}
BASE_CER = {"train": {"cer": 0.25}, "test": {"cer": 0.3456}, "lecture": {"cer": 0.5}}
SETTINGS = {
    "learning_rate": 0.01,
    "warmup_steps": 10,
    "num_train_epochs": 3,
    "max_steps": 120,
    "seed": 42,
    "language": "Chinese",
    "task": "transcribe",
    "timestamps": False,
    "feature_padding": "faster-whisper",
    "use_adalora": False,
    "lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
    "augment": {"speed_prob": 0.0, "shift_prob": 0.5},
}
STATS = {
    "utterances": {"train": 50, "dev": 10, "test": 10},
    "hours": {"train": 0.05, "dev": 0.01, "test": 0.01},
    "speakers": {"train": 4, "dev": 2, "test": 2},
}
# The counts every cer.json has (score.CER_KEYS besides cer), not what these tests look at.
EDITS = {"substitutions": 1, "deletions": 0, "insertions": 0, "n_utts": 10}
PROVENANCE = {
    "model": {"base": "tiny", "training": {"device": "cpu", "global_step": 120}},
    "data": {"archive_md5": "5b906130667ff8e085ed82802b2fcaf6"},
    "workflow": {"commit": "0123abc", "dirty": False},
}


def write_scores(root: Path, scores: dict[str, dict]) -> dict[str, Path]:
    files = {}
    for name, values in scores.items():
        files[name] = root / name / "cer.json"
        write_json(
            files[name],
            {**values, **EDITS, "ref_chars": 120, "normalization": "NFKC, no punctuation"},
        )
    return files


@pytest.fixture
def inputs(tmp_path: Path) -> dict:
    write_json(tmp_path / "provenance.json", PROVENANCE)
    write_json(tmp_path / "stats.json", STATS)
    base_dir = tmp_path / "base_hf"
    base_dir.mkdir()
    return {
        "cer_files": write_scores(tmp_path / "eval/lora", RUN_CER),
        "base_cer_files": write_scores(tmp_path / "eval/base", BASE_CER),
        "provenance": tmp_path / "provenance.json",
        "stats": tmp_path / "stats.json",
        "base": "tiny",
        "revision": None,
        "base_dir": base_dir,
        "license": None,
        "datasets": dataset_names(None, demo=True),
        "language": "zh",
        "settings": SETTINGS,
    }


def build(out: Path, model_dir: Path, artifact: str, inputs: dict) -> dict[str, int]:
    q = artifact_quantization(artifact, ["float16"])
    return make_hub_folder(out, model_dir, run="lora", artifact=artifact, quantization=q, **inputs)


def model_files(folder: Path) -> set[str]:
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name not in SKIP_FILES
    }


@pytest.mark.parametrize("artifact", ["transformers", "ct2-float16"])
def test_folder_links_the_model_and_its_card_carries_the_cer(
    tmp_path, tiny, exported, inputs, artifact
):
    model_dir = tiny if artifact == "transformers" else exported[0]
    (model_dir / ".snakemake_timestamp").touch()  # what Snakemake leaves in directory outputs
    out = tmp_path / "hub/lora" / artifact
    counts = build(out, model_dir, artifact, inputs)

    # Every model file is a hard link of its source (same inode), nothing else but the card.
    assert model_files(out) == model_files(model_dir) and counts["copied"] == 0
    assert counts["linked"] == len(model_files(model_dir))
    for name in model_files(model_dir):
        assert os.stat(out / name).st_ino == os.stat(model_dir / name).st_ino, name
    assert not (out / ".snakemake_timestamp").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == [artifact]  # no temp dirs left

    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.language == "zh" and data.pipeline_tag == "automatic-speech-recognition"
    assert data.library_name == ("transformers" if artifact == "transformers" else "ctranslate2")
    assert data.base_model is None  # the demo's tiny base is no hub id: said in the body
    assert "tiny Whisper" in card.text and data.license == "other"
    assert data.datasets == ["whisperforge-demo"]
    metrics = {
        (r.dataset_split or r.dataset_name, r.metric_config): r.metric_value
        for r in data.eval_results
    }
    expected = {(name, None): round(100 * v["cer"], 2) for name, v in RUN_CER.items()}
    expected |= {
        (name, "whisper-finetune"): round(100 * v["cer_whisper_finetune"], 2)
        for name, v in RUN_CER.items()
        if "cer_whisper_finetune" in v
    }
    assert metrics == expected
    # The body's table: base vs this run on each set, and the provenance digest.
    assert "| test | 10 | 34.56 | 12.34 | -22.22 | - | 11.02 |" in card.text
    assert "| lecture | 10 | 50.00 | 30.13 | -19.87 | - | - |" in card.text
    assert "| train | 50 | 0.05 | 4 |" in card.text
    from whisperforge.core.files import sha256_file

    assert sha256_file(inputs["provenance"]) in card.text
    usage = "WhisperModel(" if artifact.startswith("ct2-") else 'pipeline("automatic-speech'
    assert usage in card.text
    if artifact.startswith("ct2-"):
        assert 'compute_type="float16"' in card.text


def test_a_mixed_runs_card_shows_each_corpus_it_trained_on(tmp_path, tiny, inputs):
    mix = {
        "aishell": {
            "weight": 1.0,
            "fraction": 1.0,
            "recordings": None,
            "utterances": 50,
            "hours": 0.05,
            "samples_per_epoch": 50,
            "dev_utterances": 10,
        },
        "lectures": {
            "weight": 2.0,
            "fraction": 1.0,
            "recordings": 2,
            "utterances": 24,
            "hours": 0.0213,
            "samples_per_epoch": 48,
            "dev_utterances": 0,
        },
    }
    write_json(tmp_path / "mix.json", mix)
    out = tmp_path / "hub/lectures/transformers"
    q = artifact_quantization("transformers", ["float16"])
    make_hub_folder(
        out,
        tiny,
        run="lectures",
        artifact="transformers",
        quantization=q,
        **inputs,
        mix=tmp_path / "mix.json",
    )
    card = ModelCard.load(out / "README.md").text
    assert "| aishell | 1 | - | 50 | 0.05 | 50 | 10 |" in card
    assert "| lectures | 2 | 2 | 24 | 0.0213 | 48 | 0 |" in card
    assert "The main corpus, whose splits are evaluated above" in card
    assert "| train | 50 | 0.05 | 4 |" in card  # the main corpus's own counts, still there
    plain = tmp_path / "hub/lora/transformers"
    build(plain, tiny, "transformers", inputs)
    assert "lectures" not in ModelCard.load(plain / "README.md").text


def test_rebuild_replaces_only_the_folder_and_a_failed_build_keeps_the_old_one(
    tmp_path, tiny, inputs
):
    out = tmp_path / "hub/lora/transformers"
    build(out, tiny, "transformers", inputs)
    sibling = out.parent / "ct2-float16.pushed.json"
    sibling.write_text("{}")
    stale = out / "stale.bin"
    stale.write_bytes(b"x")

    write_json(inputs["cer_files"]["test"], {"cer": 0.05, **EDITS})
    build(out, tiny, "transformers", inputs)
    card = ModelCard.load(out / "README.md")
    assert 5.0 in [r.metric_value for r in card.data.eval_results]
    assert not stale.exists() and sibling.read_text() == "{}"

    before = (out / "README.md").read_text()
    inputs["cer_files"]["test"].write_text("{not json")
    with pytest.raises(WhisperforgeError, match=r"cer\.json"):
        build(out, tiny, "transformers", inputs)
    assert (out / "README.md").read_text() == before
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "ct2-float16.pushed.json",
        "transformers",
    ]


def test_license_from_config_then_the_base_card_then_other(tmp_path):
    assert base_license(tmp_path, None) == "other"
    (tmp_path / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# base\n")
    assert base_license(tmp_path, None) == "mit"
    assert base_license(tmp_path, "apache-2.0") == "apache-2.0"


def test_artifacts_and_datasets():
    assert artifacts(["float16", "int8"]) == ["transformers", "ct2-float16", "ct2-int8"]
    assert artifact_quantization("transformers", ["int8", "float16"]) == "int8"
    assert artifact_quantization("ct2-float16", ["int8", "float16"]) == "float16"
    with pytest.raises(WhisperforgeError, match=r"hub\.artifact"):
        artifact_quantization("ct2-bfloat16", ["float16"])
    assert dataset_names(None, demo=False) == dict.fromkeys(["train", "dev", "test"], "AISHELL-1")
    mine = {"train": "a/mine.jsonl", "dev": "a/mine_dev.jsonl", "test": "b/exam.jsonl"}
    assert dataset_names(mine, False) == {"train": "mine", "dev": "mine_dev", "test": "exam"}


def test_a_split_is_labelled_by_its_own_manifest(tmp_path, tiny, inputs):
    inputs["datasets"] = {"train": "mine", "dev": "mine_dev", "test": "exam"}
    build(tmp_path / "hub", tiny, "transformers", inputs)
    card = ModelCard.load(tmp_path / "hub/README.md")
    assert card.data.datasets == ["mine"]
    labels = {(r.dataset_type, r.dataset_split) for r in card.data.eval_results}
    assert labels == {("mine", "train"), ("exam", "test"), ("lecture", None)}


def test_push_needs_a_repo_id_and_pushes_one_run_or_chooses_among_all(tmp_path):
    for no_repo in (None, ""):
        with pytest.raises(WhisperforgeError, match=r"hub\.repo_id: not set"):
            push_runs(no_repo, "lora", ["lora"])
        with pytest.raises(WhisperforgeError, match=r"hub\.repo_id: not set"):
            push_folder(tmp_path, no_repo, private=True)
    assert push_runs("me/x", "b", ["a", "b"]) == ["b"]
    assert push_runs("me/x", None, ["a", "b"]) == ["a", "b"]


# Runs scripts/push_hub.py as Snakemake would, with argv[1] the snakemake object's fields as JSON.
PUSH = """
import json, runpy, sys
from types import SimpleNamespace as NS
sys.path.insert(0, "scripts")
job = json.loads(sys.argv[1])
smk = NS(rule="push", log=[job["receipt"] + ".log"], output=[job["receipt"]], resources=NS(),
         input=NS(folders=job["folders"], cer=job["cer"]), params=NS(**job["params"]))
runpy.run_path("scripts/push_hub.py", init_globals={"snakemake": smk})
"""


@pytest.mark.parametrize("run", ["b", BEST])
def test_push_without_network_fails_in_one_line_naming_the_repo_and_leaves_no_receipt(
    tmp_path, tiny, inputs, run
):
    """hub.run b, or the best run (b: its test CER is the lowest): b's folder is pushed."""
    folders = {}
    for name in ("a", "b"):
        folders[name] = tmp_path / f"hub/{name}/transformers"
        build(folders[name], tiny, "transformers", inputs)
    cer = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, value in zip(cer, (0.2, 0.1), strict=True):
        write_json(
            path, {"cer": value, "substitutions": 1, "deletions": 0, "insertions": 0, "n_utts": 1}
        )
    runs = ["a", "b"] if run == BEST else ["b"]
    receipt = tmp_path / f"hub/{run}/transformers.pushed.json"
    job = {
        "receipt": str(receipt),
        "folders": [str(folders[name]) for name in runs],
        "cer": [str(path) for path in cer] if run == BEST else [],
        "params": {
            "repo_id": "someone/whisperforge-test",
            "private": True,
            "run": run,
            "runs": runs,
            "artifact": "transformers",
        },
    }
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens: the connection is refused
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_TOKEN": "hf_not_a_real_token",
    }
    proc = subprocess.run(
        [sys.executable, "-c", PUSH, json.dumps(job)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "someone/whisperforge-test" in lines[0] and "Connect" in lines[0], lines[0]
    assert str(folders["b"]) in lines[0], lines[0]
    assert not receipt.exists()
    assert "someone/whisperforge-test" in Path(f"{receipt}.log").read_text()


def test_the_card_says_whether_the_run_forgot_general_speech(tmp_path, tiny, inputs):
    # RUN_CER/BASE_CER: lecture 30.13 % vs base 50.00 %, test 12.34 % vs 34.56 %.
    out = tmp_path / "hub/lora/transformers"
    build(out, tiny, "transformers", {**inputs, "general": "lecture", "max_forgetting": 2.0})
    text = ModelCard.load(out / "README.md").text
    assert (
        "`lecture` this model's CER is 30.13 % against the base model's 50.00 % (-19.87 points)"
        in text
    )
    assert "within the budget of 2 points" in text
    forgot = write_scores(
        tmp_path / "eval/worse", {**RUN_CER, "lecture": {**RUN_CER["lecture"], "cer": 0.5301}}
    )
    build(
        out,
        tiny,
        "transformers",
        {**inputs, "cer_files": forgot, "general": "lecture", "max_forgetting": 2.0},
    )
    assert (
        "over the budget of 2 points: this model forgot general speech"
        in ModelCard.load(out / "README.md").text
    )
    build(out, tiny, "transformers", inputs)
    assert "Forgetting:" not in ModelCard.load(out / "README.md").text
