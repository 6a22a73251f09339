"""A training killed mid-way (node loss) resumes from its last complete checkpoint on the next
call; a checkpoint torn by the kill is moved aside, not resumed from."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import copy_workflow, snakemake
from test_train import inputs, tiny_settings, train_tiny  # noqa: F401 (inputs: a fixture)

from whisperforge.checkpoints import (
    FINGERPRINT_FILE,
    changed_keys,
    checkpoint_problem,
    last_complete_checkpoint,
    prepare_checkpoint_dir,
)
from whisperforge.tinymodel import build_tiny_whisper

RUN = "resume-test"


def test_killed_finetune_resumes_from_last_checkpoint(tmp_path: Path):
    workdir = copy_workflow(tmp_path / "wf")
    base = build_tiny_whisper(tmp_path / "tiny-base")  # a local base model dir, used in place
    overlay = {
        "model": {"base": str(base), "revision": None, "tiny": None},
        "train": {
            "max_steps": 8,
            "eval_steps": 2,
            "save_steps": 2,
            "logging_steps": 1,
            "save_total_limit": 5,
        },
        "runs": {RUN: {}},
    }
    (workdir / "resume.yaml").write_text(yaml.safe_dump(overlay))
    args = [
        f"results/models/{RUN}/adapter",
        "--workflow-profile",
        "profiles/demo",
        "--configfile",
        "config.yaml",
        "profiles/demo/demo.yaml",
        "resume.yaml",
    ]
    snakemake(workdir, *args, "--until", "build_manifests")

    checkpoints = workdir / "results/checkpoints" / RUN
    job = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 300
    while not (checkpoints / "checkpoint-4").is_dir():
        assert job.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline, "no checkpoint-4 within 5 minutes"
        time.sleep(0.5)
    time.sleep(1)  # let the checkpoint finish writing: a half one is also a real-world case
    os.killpg(job.pid, signal.SIGKILL)  # node loss: no clean-up of any kind
    job.wait()
    assert not (workdir / f"results/models/{RUN}/adapter/trainer_state.json").exists()

    # As after a real node loss: the dead run's lock is released, then the same command again.
    snakemake(workdir, "--unlock", *args)
    snakemake(workdir, *args)
    log = (workdir / f"logs/train/finetune_{RUN}.log").read_text()
    assert "resuming from" in log and "checkpoint-" in log
    adapter = workdir / f"results/models/{RUN}/adapter"
    summary = json.loads((adapter / "training_summary.json").read_text())
    assert summary["resumed_from"] is not None
    resumed_step = int(Path(summary["resumed_from"]).name.split("-")[1])
    assert resumed_step >= 4
    state = json.loads((adapter / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    # The steps before the resume point come from the checkpoint, not from a second training.
    logged_steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert logged_steps == sorted(set(logged_steps)), logged_steps


@pytest.fixture(scope="module")
def trained(inputs, tmp_path_factory) -> Path:  # noqa: F811
    """A finished 4-step run: checkpoint-2 and checkpoint-4, both complete."""
    root = tmp_path_factory.mktemp("trained")
    train_tiny(inputs, root, tiny_settings())
    return root


def truncate(path: Path, keep: float = 0.5) -> None:
    """What a kill mid-write leaves: the file's first part."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


TEARS = {
    "adapter cut short": lambda c: truncate(c / "adapter_model.safetensors"),
    "adapter header only": lambda c: truncate(c / "adapter_model.safetensors", keep=0.02),
    "no trainer state": lambda c: (c / "trainer_state.json").unlink(),
    "optimizer cut short": lambda c: truncate(c / "optimizer.pt", keep=0.9),
    "no scheduler": lambda c: (c / "scheduler.pt").unlink(),
    "rng state cut short": lambda c: truncate(c / "rng_state.pth"),
}


@pytest.mark.parametrize("tear", TEARS)
def test_a_torn_checkpoint_is_moved_aside_and_the_previous_one_resumed(trained, tmp_path, tear):
    checkpoints = shutil.copytree(trained / "checkpoints", tmp_path / "checkpoints")
    assert checkpoint_problem(checkpoints / "checkpoint-4") is None
    TEARS[tear](checkpoints / "checkpoint-4")
    assert checkpoint_problem(checkpoints / "checkpoint-4") is not None
    assert last_complete_checkpoint(checkpoints) == str(checkpoints / "checkpoint-2")
    torn = list(checkpoints.glob("torn-checkpoint-4-*"))
    assert len(torn) == 1 and torn[0].is_dir(), "the torn checkpoint is kept, not deleted"
    assert not (checkpoints / "checkpoint-4").exists()


def test_a_torn_checkpoint_resumes_through_finetune_from_the_previous_one(
    inputs,  # noqa: F811
    trained,
    tmp_path,
    caplog,
):
    shutil.copytree(trained / "checkpoints", tmp_path / "checkpoints")
    last = tmp_path / "checkpoints/checkpoint-4"
    truncate(last / "adapter_model.safetensors")  # the SafetensorError: incomplete metadata case
    (last / "trainer_state.json").unlink()
    caplog.set_level(logging.INFO)
    summary = train_tiny(inputs, tmp_path, tiny_settings())
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["global_step"] == 4
    torn = [r.getMessage() for r in caplog.records if "is torn" in r.getMessage()]
    assert len(torn) == 1 and "checkpoint-4 is torn" in torn[0], torn
    assert "adapter_model.safetensors" in torn[0] or "trainer_state.json" in torn[0]
    (aside,) = (tmp_path / "checkpoints").glob("torn-checkpoint-4-*")
    assert (aside / "optimizer.pt").is_file()  # moved whole
    assert checkpoint_problem(tmp_path / "checkpoints/checkpoint-4") is None  # written anew


def test_checkpoints_from_before_the_divergence_keys_existed_are_resumed(trained, tmp_path, caplog):
    """An upgrade adds train.divergence: checkpoints whose fingerprint lacks it still resume."""
    checkpoints = shutil.copytree(trained / "checkpoints", tmp_path / "checkpoints")
    marker = checkpoints / FINGERPRINT_FILE
    current = json.loads(marker.read_text())
    assert set(current["settings"]["divergence"]) == {"patience", "max_loss_factor"}
    old = json.loads(marker.read_text())
    del old["settings"]["divergence"]  # as the previous release wrote it
    marker.write_text(json.dumps(old))
    assert changed_keys(old, current) == ["divergence.max_loss_factor", "divergence.patience"]
    caplog.set_level(logging.INFO)
    assert prepare_checkpoint_dir(checkpoints, current) == str(checkpoints / "checkpoint-4")
    assert "without effect on the weights: divergence.max_loss_factor" in caplog.text
    assert json.loads(marker.read_text()) == current  # recorded: the next call has nothing new
    assert not list(tmp_path.glob("checkpoints.replaced-*"))
