"""Killed at any moment, the same command finishes the build with the same bytes.

The demo's main path (extraction, manifests, the tiny base's pretraining, a LoRA run, merge,
CTranslate2 export, decoding, CER), shortened, is built twice: once without interruption, and
once with the whole `snakemake` process group SIGKILLed at several moments, each followed by the
same command: during extraction, while the base's and then the LoRA run's checkpoint is being
written (adapter and optimizer on disk, RNG state and trainer state not yet), and during the
export. A test-only `sitecustomize` (tests/pause_at/) holds a job at the named function, so each
kill lands in the act, not by luck of timing. Then every artifact is compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, copy_workflow, cores_per_worker, snakemake

pytestmark = pytest.mark.e2e

SHORT = {
    "model": {
        "tiny": {
            "pretrain": {
                "max_steps": 12,
                "save_steps": 4,
                "eval_steps": 4,
                "logging_steps": 2,
            }
        }
    },
    "train": {"max_steps": 8, "save_steps": 4, "eval_steps": 4, "logging_steps": 4},
    "export": {"quantizations": ["float16"]},
}
ARGS = [
    "--workflow-profile",
    "profiles/demo",
    "--configfile",
    "config.yaml",
    "profiles/demo/demo.yaml",
    "profiles/demo/pretrain.yaml",  # the tiny base pretrained in the DAG, to kill it there too
    "short.yaml",
]
TARGETS = [
    "results/manifests/hf",
    "results/eval/base/test/cer.json",
    "results/eval/lora/test/cer.json",
]
# Where each kill lands: module:function:n-th call[:only calls whose arguments name this].
MOMENTS = [
    "whisperforge.data.aishell:extract_speaker_tar:2",
    "transformers.trainer:Trainer._save_rng_state:2:checkpoints/base",
    "transformers.trainer:Trainer._save_rng_state:2:checkpoints/lora",
    "whisperforge.model.export:_probe:1",
]
# Not artifacts: run facts (wall-clock times, by design: README, "A day of GPU time you can
# trust") and checkpoints (resume state, whose trainer_state.json the Trainer writes with timings).
NOT_ARTIFACTS = ("checkpoints/", "tensorboard/", "training_timings.json", "speed.json")


def workflow(tmp_path_factory, name: str) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp(name))
    (workdir / "short.yaml").write_text(yaml.safe_dump(SHORT))
    return workdir


def killed_at(workdir: Path, moment: str, timeout: float = 900) -> None:
    """Start the build, wait until a job is held at `moment`, SIGKILL the process group."""
    marker = workdir / "paused.txt"
    marker.unlink(missing_ok=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "tests/pause_at"), os.environ.get("PYTHONPATH")])
        ),
        "WF_PAUSE_AT": moment,
        "WF_PAUSE_MARKER": str(marker),
    }
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores_per_worker()), *TARGETS, *ARGS]
    with open(workdir / "killed.log", "ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert proc.poll() is None, f"the build ended before {moment}: see {log.name}"
            assert time.monotonic() < deadline, f"no job reached {moment}"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        while True:  # every member of the group gone, not only the leader
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)


def is_artifact(relative: str) -> bool:
    return not any(part in f"/{relative}" for part in (f"/{n}" for n in NOT_ARTIFACTS))


def artifacts(workdir: Path) -> dict[str, str]:
    """results/ file -> sha256, run facts and checkpoints left out."""
    results = workdir / "results"
    digests = {}
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results).as_posix()
        if path.is_file() and is_artifact(relative):
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    clean = workflow(tmp_path_factory, "clean")
    snakemake(clean, *TARGETS, *ARGS)
    killed = workflow(tmp_path_factory, "killed")
    for moment in MOMENTS:
        killed_at(killed, moment)
    rerun = snakemake(killed, *TARGETS, *ARGS)  # the same command, nothing unlocked by hand
    (killed / "rerun.log").write_text(rerun.stderr)
    return clean, killed


def test_a_build_killed_at_every_moment_ends_with_the_same_bytes(builds):
    clean, killed = builds
    expected, got = artifacts(clean), artifacts(killed)
    assert len(expected) > 200  # manifests, HF dataset, models, exports, hypotheses, CERs
    assert set(got) == set(expected), sorted(set(got) ^ set(expected))  # no leftovers either
    differ = [name for name in expected if got[name] != expected[name]]
    assert not differ, differ


def test_each_kill_was_caught_and_the_next_call_said_what_it_found(builds):
    _, killed = builds
    log = (killed / "killed.log").read_text() + (killed / "rerun.log").read_text()
    # Every rerun after a kill found the dead build's locks and removed them.
    assert log.count("lock(s) left by a killed build") == len(MOMENTS), log[-3000:]
    for run, torn_step in (("base", 8), ("lora", 8)):
        checkpoints = killed / "results/checkpoints" / run
        (torn,) = checkpoints.glob(f"torn-checkpoint-{torn_step}-*")  # kept, not deleted
        assert (torn / "optimizer.pt").is_file() and not (torn / "trainer_state.json").exists()
        log_name = "pretrain_base" if run == "base" else f"finetune_{run}"
        train_log = (killed / f"logs/train/{log_name}.log").read_text()
        assert f"checkpoint-{torn_step} is torn" in train_log, train_log[-2000:]
    facts = json.loads((killed / "results/models/lora/training_timings.json").read_text())
    assert facts["resumed_from"].endswith("checkpoints/lora/checkpoint-4"), facts
    state = json.loads((killed / "results/models/lora/adapter/trainer_state.json").read_text())
    steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert steps == [4, 8], steps  # each logged once: from the checkpoint, then anew
