"""A full disk, on a real small filesystem: one line naming the path, nothing partial left, and a
training refused up front when its checkpoints cannot fit.

The filesystem is a 2 MB tmpfs mounted for the test (CI runs as root, as mount needs).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_train import inputs, tiny_settings  # noqa: F401 (inputs: a fixture)

from whisperforge.errors import WhisperforgeError
from whisperforge.files import atomic_dir, write_json, write_text

SIZE = 2 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


NO_SPACE = r"^{path}: no space left on the device writing {what} \([\d.]+ [kM]?B free there\); "


def test_a_write_that_fills_the_disk_is_one_line_and_leaves_the_old_file(small_disk):
    dest = small_disk / "summary.txt"
    write_text(dest, "the previous result\n")
    message = NO_SPACE.format(path=dest, what="the summary")
    with pytest.raises(WhisperforgeError, match=message + r"free some space or move results/$"):
        write_text(dest, "x" * (SIZE + 1), what="the summary")
    assert [p.name for p in small_disk.iterdir()] == ["summary.txt"], "a temp file was left"
    assert dest.read_text() == "the previous result\n"

    with pytest.raises(
        WhisperforgeError, match=NO_SPACE.format(path=small_disk / "a.json", what="it")
    ):
        write_json(small_disk / "a.json", {"rows": ["y" * 1000] * 3000})
    assert [p.name for p in small_disk.iterdir()] == ["summary.txt"]


def test_a_directory_that_fills_the_disk_is_one_line_and_leaves_nothing(small_disk):
    dest = small_disk / "merged"
    message = NO_SPACE.format(path=dest, what="a merged model")
    with (
        pytest.raises(WhisperforgeError, match=message),
        atomic_dir(dest, what="a merged model") as tmp,
    ):
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"\0" * (SIZE + 1))
    assert list(small_disk.iterdir()) == [], "a partial directory was left"


def test_a_training_whose_checkpoints_cannot_fit_is_refused_before_it_starts(
    inputs,  # noqa: F811
    small_disk,
    tmp_path,
):
    base, train, dev = inputs
    # The tiny model in full: ~1.7 M parameters, 7 MB of weights a checkpoint, on a 2 MB disk.
    settings = tiny_settings(full_finetune=True, save_total_limit=2)
    checkpoints = small_disk / "checkpoints/full"  # as results/checkpoints/<run> on that disk
    message = (
        rf"^{checkpoints}: [\d.]+ MB free, but the checkpoints need about [\d.]+ MB "
        r"\(3 x [\d.]+ MB: weights and optimizer state of [\d,]+ trainable parameters; "
        r"train.save_total_limit 2, one more while the next is written\); free space there or "
        r"lower train.save_total_limit$"
    )
    from whisperforge.train import finetune

    with pytest.raises(WhisperforgeError, match=message):
        finetune(base, train, dev, tmp_path / "model", checkpoints, settings, threads=1)
    assert not list(checkpoints.glob("checkpoint-*")) and not (tmp_path / "model").exists()

    # LoRA adapters of the same model fit: the same disk trains them.
    lora = tiny_settings(save_total_limit=2)
    checkpoints = small_disk / "checkpoints/lora"
    summary = finetune(base, train, dev, tmp_path / "adapter", checkpoints, lora, threads=1)
    assert summary["global_step"] == 4
    assert json.loads((checkpoints / "checkpoint-4/trainer_state.json").read_text())["global_step"]
