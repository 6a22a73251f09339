"""`train.gpus: N` trains data-parallel with N processes: here two CPU processes over gloo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import copy_workflow, snakemake

from whisperforge.model.tinymodel import build_tiny_whisper

pytestmark = pytest.mark.e2e

STEPS, EVERY = 12, 2
RUNS = {"two": {"gpus": 2}}


def losses(adapter: Path) -> list[float]:
    state = json.loads((adapter / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def test_two_processes_train_the_same_schedule_and_give_a_usable_adapter(tmp_path: Path):
    workdir = copy_workflow(tmp_path / "wf")
    base = build_tiny_whisper(tmp_path / "tiny-base")  # random init: loss starts high
    overlay = {
        "model": {"base": str(base), "revision": None, "tiny": None},
        "train": {
            "max_steps": STEPS,
            "warmup_steps": 2,
            "eval_steps": STEPS // 2,
            "save_steps": STEPS // 2,
            "logging_steps": EVERY,
        },
        "runs": RUNS,
        "eval": {"splits": ["train"], "speed_utterances": 2},
    }
    (workdir / "gpus.yaml").write_text(yaml.safe_dump(overlay))
    snakemake(
        workdir,
        "results/eval/two/train/cer.json",
        "--workflow-profile",
        "profiles/demo",
        "--configfile",
        "config.yaml",
        "profiles/demo/demo.yaml",
        "gpus.yaml",
        "--resources",
        "gpu=2",  # the job asks for as many devices as processes
    )
    log = (workdir / "logs/train/finetune_two.log").read_text()
    assert "training with 2 processes" in log
    assert "rank0" in log and "rank1" in log, "both ranks ran"

    results = workdir / "results/models"
    two = json.loads((results / "two/adapter/training_summary.json").read_text())
    # config's micro-batch 8, split over the two processes: the effective batch and the number
    # of optimizer steps of one process (test_launch.py compares the two trajectories, to 1e-5).
    assert (two["processes"], two["micro_batch"], two["effective_batch"]) == (2, 4, 8)
    assert two["global_step"] == STEPS

    parallel = losses(results / "two/adapter")
    assert len(parallel) == STEPS // EVERY
    # Random init: the loss starts near ln(51,865 tokens) = 10.9 (one process: 11.4, measured)
    # and falls (one process: to 9.4 in 12 steps). The Trainer once logged N x the loss.
    assert 9.0 < parallel[0] < 13.0, parallel
    assert parallel[-1] < 0.9 * parallel[0], f"two processes: loss did not fall: {parallel}"

    # One adapter, merged, exported and decoded like any other run's.
    assert (results / "two/adapter/checkpoint-final/adapter_model.safetensors").is_file()
    assert (results / "two/merged/model.safetensors").is_file()
    cer = json.loads((workdir / "results/eval/two/train/cer.json").read_text())
    assert cer["n_utts"] > 0 and cer["cer"] is not None
