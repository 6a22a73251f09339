"""whisperforge.publish.provenance: what produced a model, byte-stable, on hand-made inputs."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import socket
import subprocess
from pathlib import Path

import pytest

from whisperforge.core.errors import WhisperforgeError
from whisperforge.publish.provenance import collect_provenance, write_provenance

SETTINGS = {"learning_rate": 0.001, "lora": {"r": 32}, "metric_for_best": "loss"}


@pytest.fixture
def model_dirs(tmp_path: Path):
    manifests = []
    for split in ("train", "dev", "test"):
        p = tmp_path / "manifests" / f"{split}.jsonl"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"id": split, "sentence": "你好"}) + "\n", encoding="utf-8")
        manifests.append(p)
    ct2 = tmp_path / "ct2"
    ct2.mkdir()
    (ct2 / "model.bin").write_bytes(b"\x00\x01weights" * 1000)
    hf = tmp_path / "merged"
    hf.mkdir()
    return hf, ct2, manifests


def _provenance(model_dirs, **kw):
    hf, ct2, manifests = model_dirs
    args = {
        "archive_md5": "2f494334227864a8a8fec932999db9d8",
        "base": "openai/whisper-large-v3-turbo",
        "revision": "41f01f3fe87f28c78e2fbf8b568835947dd65ed9",
        "settings": SETTINGS,
        "export": {"quantization": "float16"},
        **kw,
    }
    return collect_provenance(hf, ct2, manifests, **args)


def test_provenance_hashes_settings_versions(model_dirs):
    _, ct2, manifests = model_dirs
    prov = _provenance(model_dirs)
    assert prov["data"]["manifests_sha256"] == {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in manifests
    }
    assert (
        prov["export"]["model_bin_sha256"]
        == hashlib.sha256((ct2 / "model.bin").read_bytes()).hexdigest()
    )
    assert prov["model"]["base"] == "openai/whisper-large-v3-turbo"
    assert prov["model"]["revision"] == "41f01f3fe87f28c78e2fbf8b568835947dd65ed9"
    assert prov["model"]["settings"] == SETTINGS
    assert prov["export"]["settings"] == {"quantization": "float16"}
    assert prov["data"]["archive_md5"] == "2f494334227864a8a8fec932999db9d8"
    assert set(prov["packages"]) >= {"torch", "transformers", "peft", "ctranslate2", "whisperforge"}
    assert prov["packages"]["jiwer"] == importlib.metadata.version("jiwer")
    assert prov["packages"]["snakemake"] == importlib.metadata.version("snakemake")
    assert prov["environment"]["python"] == platform.python_version()


def test_provenance_missing_package_is_null(model_dirs, monkeypatch):
    real = importlib.metadata.version

    def fake(name):
        if name == "peft":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", fake)
    prov = _provenance(model_dirs)
    assert prov["packages"]["peft"] is None
    assert prov["packages"]["jiwer"] == real("jiwer")


def test_provenance_has_no_hostname_and_is_stable(model_dirs, tmp_path):
    hf, ct2, manifests = model_dirs
    kw = {
        "archive_md5": None,
        "base": "tiny",
        "revision": None,
        "settings": {},
        "export": {"quantization": "int8"},
    }
    a, b = tmp_path / "a" / "provenance.json", tmp_path / "b" / "provenance.json"
    write_provenance(a, hf, ct2, manifests, **kw)
    write_provenance(b, hf, ct2, manifests, **kw)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert socket.gethostname() not in text
    assert platform.node() not in text
    assert json.loads(text)["model"]["settings"] == {}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_provenance_git_state(model_dirs, tmp_path):
    repo = tmp_path / "workflow"
    repo.mkdir()
    (repo / "Snakefile").write_text("rule all:\n", encoding="utf-8")
    _git(repo, "init", "-q")
    _git(repo, "add", "Snakefile")
    _git(repo, "commit", "-q", "-m", "init")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert _provenance(model_dirs, workflow_dir=repo)["workflow"] == {
        "commit": head,
        "dirty": False,
    }
    (repo / "results.txt").write_text("untracked output\n", encoding="utf-8")
    assert _provenance(model_dirs, workflow_dir=repo)["workflow"]["dirty"] is False
    (repo / "Snakefile").write_text("rule all:\n    input: []\n", encoding="utf-8")
    assert _provenance(model_dirs, workflow_dir=repo)["workflow"] == {"commit": head, "dirty": True}
    # Outside a git checkout: both null.
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert _provenance(model_dirs, workflow_dir=outside)["workflow"] == {
        "commit": None,
        "dirty": None,
    }


def test_provenance_missing_model_bin_names_it(model_dirs):
    ct2 = model_dirs[1]
    (ct2 / "model.bin").unlink()
    with pytest.raises(WhisperforgeError, match=r"model\.bin"):
        _provenance(model_dirs)


def test_a_runs_provenance_says_how_it_trained_without_timings(model_dirs, tmp_path):
    summary = tmp_path / "training_summary.json"
    summary.write_text(
        json.dumps(
            {
                "device": "NVIDIA GeForce RTX 2080 Ti",
                "precision": "fp16",
                "processes": 1,
                "micro_batch": 4,
                "gradient_accumulation": 2,
                "effective_batch": 8,
                "gradient_checkpointing": False,
                "global_step": 3000,
                "train_runtime_s": 12345.6,
            }
        )
    )
    training = _provenance(model_dirs, training_summary=summary)["model"]["training"]
    assert (training["micro_batch"], training["gradient_accumulation"]) == (4, 2)
    assert training["precision"] == "fp16" and "train_runtime_s" not in training
    assert _provenance(model_dirs)["model"]["training"] is None  # the base model
