"""`train.nodes`: one fine-tune across nodes, one torchrun agent per node meeting at a c10d
rendezvous (whisperforge/train/launch.py).

The commands are checked as text; then two agents on this machine stand for two nodes: `srun`
is tests/fake_slurm/srun (one task per "node", all here), everything else is the real path
(SLURM's variables, the rendezvous on this host, gloo between the processes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT
from test_train import inputs, tiny_settings  # noqa: F401 (a fixture)

from whisperforge.core.errors import WhisperforgeError
from whisperforge.train.launch import (
    RENDEZVOUS_PORT,
    Rendezvous,
    agent_command,
    slurm_rendezvous,
    srun_command,
)

FAKE_SLURM = ROOT / "tests/fake_slurm"


def test_a_two_node_run_is_one_srun_task_per_node_each_a_torchrun_agent_at_the_rendezvous():
    rendezvous = Rendezvous(nodes=2, endpoint="gpu-node-07:29400", run_id="81234")
    agent = agent_command(Path("ckpt/whisperforge-job.json"), 4, rendezvous)
    line = " ".join(srun_command(2, agent))
    assert line == (
        "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1 "
        f"{sys.executable} -m torch.distributed.run --nnodes=2 --rdzv-backend=c10d "
        "--rdzv-endpoint=gpu-node-07:29400 --rdzv-id=81234 --max-restarts=0 "
        "--nproc-per-node=4 -m whisperforge.train.finetune ckpt/whisperforge-job.json"
    )


def test_one_node_is_a_standalone_agent():
    command = agent_command(Path("job.json"), 2, None)
    assert command[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "whisperforge.train.finetune",
        "job.json",
    ]


def test_the_rendezvous_is_on_this_node_and_named_after_the_slurm_job(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "gpu-node-07")
    rendezvous = slurm_rendezvous(2, {"SLURM_JOB_ID": "81234", "SLURM_JOB_NUM_NODES": "2"})
    assert rendezvous == Rendezvous(2, f"gpu-node-07:{RENDEZVOUS_PORT}", "81234")


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({}, "this step is not in a SLURM job"),
        ({"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "1"}, "SLURM job 7 holds 1 node(s)"),
    ],
)
def test_several_nodes_outside_a_big_enough_slurm_job_is_a_one_line_error(environ, says):
    with pytest.raises(WhisperforgeError, match=r"^config train\.nodes: 2") as error:
        slurm_rendezvous(2, environ)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_a_step_without_the_node_count_asks_squeue(monkeypatch):
    # The Snakemake SLURM executor passes a job step SLURM_JOB_ID only.
    asked = []

    def squeue(command, **kwargs):
        asked.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="1\n", stderr="")

    monkeypatch.setattr("whisperforge.train.launch.subprocess.run", squeue)
    with pytest.raises(WhisperforgeError, match=r"SLURM job 7 holds 1 node\(s\)$"):
        slurm_rendezvous(2, {"SLURM_JOB_ID": "7"})
    assert asked == [["squeue", "--noheader", "--jobs=7", "--format=%D"]]


def adapter_weights(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(adapter / "checkpoint-final/adapter_model.safetensors")


def train(inputs, root: Path, **changes) -> dict:  # noqa: F811 (the fixture's value)
    from whisperforge.train.finetune import finetune

    base, train_manifest, dev = inputs
    settings = tiny_settings(max_steps=6, per_device_train_batch_size=4, **changes)
    return finetune(base, train_manifest, dev, root / "adapter", root / "ckpt", settings, threads=2)


@pytest.fixture
def slurm_job(monkeypatch, tmp_path) -> Path:
    """This process as the first node of a two-node SLURM job; the srun calls are logged."""
    monkeypatch.setenv("PATH", f"{FAKE_SLURM}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    monkeypatch.setenv("FAKE_SRUN_LOG", str(tmp_path / "srun.log"))
    return tmp_path / "srun.log"


def losses(run: Path) -> list[float]:
    state = json.loads((run / "adapter/trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def test_two_agents_as_two_nodes_take_the_optimizer_steps_of_one_process(
    inputs,  # noqa: F811
    slurm_job,
    tmp_path,
):
    # One process on the whole batch of 4 against two agents of one process each, meeting at the
    # SLURM job's rendezvous, on 2 samples each. Dropout off: each process draws its own masks.
    # Augmentation stays on: it is drawn per sample, wherever the sample is read (dataset.py).
    no_dropout = {"lora": {**tiny_settings()["lora"], "dropout": 0.0}}
    one = train(inputs, tmp_path / "one", **no_dropout)
    two_nodes = train(inputs, tmp_path / "two-nodes", nodes=2, **no_dropout)

    assert "--nnodes=2 --rdzv-backend=c10d --rdzv-endpoint=" in slurm_job.read_text()
    assert (one["processes"], one["micro_batch"], one["effective_batch"]) == (1, 4, 4)
    assert (two_nodes["processes"], two_nodes["micro_batch"]) == (2, 2)
    assert one["global_step"] == two_nodes["global_step"] == 6
    # The loss is the token mean over the whole step's batch (train/loss.py), whichever process
    # read which sample: before, two processes averaged their own batches' means (first loss
    # 11.376 against one process's 11.365, lora_B up to 48 % of its norm apart after 6 steps).
    assert losses(tmp_path / "two-nodes") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    reference = adapter_weights(tmp_path / "one/adapter")
    trained = adapter_weights(tmp_path / "two-nodes/adapter")
    assert reference.keys() == trained.keys()
    for name, weight in reference.items():
        apart = ((trained[name] - weight).norm() / weight.norm()).item()
        assert apart < 1e-4, (name, apart)

    # Merged, exported and decoded as any run's adapter is (the export's probe decodes a clip
    # with faster-whisper).
    from whisperforge.model.export import export_ct2
    from whisperforge.model.merge import merge_adapter

    merged = merge_adapter(
        inputs[0], tmp_path / "two-nodes/adapter/checkpoint-final", tmp_path / "merged"
    )
    facts = export_ct2(merged, tmp_path / "ct2", probe_manifest=inputs[2])
    assert (tmp_path / "ct2/model.bin").is_file()
    assert isinstance(facts["probe_text"], str) and facts["probe_id"]


def test_a_node_lost_mid_run_ends_the_step_with_one_line_and_the_rerun_resumes(
    inputs,  # noqa: F811
    slurm_job,
    tmp_path,
    monkeypatch,
):
    checkpoint = tmp_path / "run/ckpt/checkpoint-2"
    monkeypatch.setenv("FAKE_SRUN_LOSE_TASK", "1")
    monkeypatch.setenv("FAKE_SRUN_LOSE_WHEN", str(checkpoint / "trainer_state.json"))
    failed = r"^config train\.nodes: 2: a training process failed \(exit \d+\); [^\n]*$"
    with pytest.raises(WhisperforgeError, match=failed):
        train(inputs, tmp_path / "run", nodes=2)
    assert checkpoint.is_dir(), "the node was lost after the first checkpoint"
    assert not (tmp_path / "run/adapter/checkpoint-final").exists()

    monkeypatch.delenv("FAKE_SRUN_LOSE_TASK")
    summary = train(inputs, tmp_path / "run", nodes=2)
    assert summary["global_step"] == 6 and summary["processes"] == 2
    timings = json.loads((tmp_path / "run/training_timings.json").read_text())
    assert Path(timings["resumed_from"]).name in ("checkpoint-2", "checkpoint-4")


def test_a_streamed_set_trains_across_two_nodes_each_on_its_share(
    inputs,  # noqa: F811
    slurm_job,
    tmp_path,
):
    # Each rank streams every 2nd line (dataset.rank_share; test_dataset.py checks the shares)
    # and makes its own batches (no dispatch from rank 0): the steps are those of one process.
    summary = train(inputs, tmp_path / "run", nodes=2, streaming=True)
    assert (summary["processes"], summary["global_step"], summary["streaming"]) == (2, 6, True)
    log = (tmp_path / "run/adapter/trainer_state.json").read_text()
    assert json.loads(log)["global_step"] == 6
