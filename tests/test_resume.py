"""A training killed mid-way (node loss) resumes from its last complete checkpoint on the next
call; a checkpoint torn by the kill is moved aside, not resumed from. (The whole build killed at
several moments, through the real rules: tests/test_kill.py.)"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from test_train import inputs, tiny_settings, train_tiny  # noqa: F401 (inputs: a fixture)

from whisperforge.train.checkpoints import (
    FINGERPRINT_FILE,
    changed_keys,
    checkpoint_problem,
    last_complete_checkpoint,
    prepare_checkpoint_dir,
)


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


@pytest.mark.parametrize(
    ("workers", "batch", "resume_at"),
    [(0, 2, 4), (2, 1, 2)],
    ids=["in-process data, at an epoch's end", "2 DataLoader workers, mid-epoch"],
)
def test_a_resumed_run_writes_the_adapter_an_uninterrupted_one_writes(
    inputs,  # noqa: F811
    tmp_path,
    workers,
    batch,
    resume_at,
):
    """Augmentation on (config.yaml's speed and volume draws) and LoRA dropout: the draws are
    keyed by epoch and the RNG comes back from the checkpoint, so the steps after a resume see
    the audio and the dropout masks an uninterrupted run saw, in DataLoader workers too."""
    settings = tiny_settings(
        max_steps=8,
        save_total_limit=10,
        dataloader_num_workers=workers,
        per_device_train_batch_size=batch,
    )
    assert settings["augment"]["speed_prob"] > 0 and settings["augment"]["volume_prob"] > 0
    assert settings["lora"]["dropout"] > 0
    whole = tmp_path / "whole"
    train_tiny(inputs, whole, settings)
    resumed = tmp_path / "resumed"
    shutil.copytree(whole / "checkpoints", resumed / "checkpoints")
    for step in range(resume_at + 2, 9, 2):  # killed after checkpoint-<resume_at>
        shutil.rmtree(resumed / f"checkpoints/checkpoint-{step}")
    summary = train_tiny(inputs, resumed, settings)
    assert summary["resumed_from"].endswith(f"checkpoint-{resume_at}")
    adapter = "adapter/checkpoint-final/adapter_model.safetensors"
    assert (whole / adapter).read_bytes() == (resumed / adapter).read_bytes()
    # The same losses, steps and best checkpoint (under the other folder's name).
    state = (resumed / "adapter/trainer_state.json").read_text()
    assert (
        state.replace(str(resumed), str(whole))
        == (whole / "adapter/trainer_state.json").read_text()
    )
