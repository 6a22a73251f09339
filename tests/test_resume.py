"""A training killed mid-way (node loss) resumes from its last checkpoint on the next call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from helpers import copy_workflow, snakemake

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
