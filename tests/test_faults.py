"""A full disk, on a real small filesystem: one line naming the path, nothing partial left (the
previous output as it was), and a training refused up front when its checkpoints cannot fit.

The filesystem is a 2 MB tmpfs mounted for the test (CI runs as root, as mount needs).
"""

from __future__ import annotations

import gc
import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, SMALL_TRANSCRIPT, copy_workflow, make_archive, snakemake
from test_train import inputs, tiny_settings  # noqa: F401 (inputs: a fixture)

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import atomic_dir, free_bytes, is_full_disk, write_json, write_text
from whisperforge.data.aishell import Filters, build_manifests, extract_archive

SIZE = 2 * 1024 * 1024


@contextmanager
def tmpfs(mount_point: Path, size: int = SIZE) -> Iterator[Path]:
    """A real filesystem of `size` bytes at `mount_point` while the block runs."""
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], check=True
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "small-disk") as mount_point:
        yield mount_point


def contents(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` (None for a directory, else the bytes): what a failure left."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


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
    from whisperforge.train.finetune import finetune

    with pytest.raises(WhisperforgeError, match=message):
        finetune(base, train, dev, tmp_path / "model", checkpoints, settings, threads=1)
    assert not list(checkpoints.glob("checkpoint-*")) and not (tmp_path / "model").exists()

    # LoRA adapters of the same model fit: the same disk trains them.
    lora = tiny_settings(save_total_limit=2)
    checkpoints = small_disk / "checkpoints/lora"
    summary = finetune(base, train, dev, tmp_path / "adapter", checkpoints, lora, threads=1)
    assert summary["global_step"] == 4
    assert json.loads((checkpoints / "checkpoint-4/trainer_state.json").read_text())["global_step"]


def test_a_full_disk_is_recognized_whatever_the_library_raised(small_disk):
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    weights = {"w": torch.zeros(SIZE // 2)}  # 4 MB of float32 on a 2 MB disk
    with pytest.raises(SafetensorError) as safetensors_error:  # quotes the OSError, is none
        save_file(weights, small_disk / "model.safetensors")
    assert not isinstance(safetensors_error.value, OSError)
    assert is_full_disk(safetensors_error.value)

    try:
        torch.save(weights, small_disk / "optimizer.pt")
    except RuntimeError as e:  # the errno lost on the way (torch 2.13: "unexpected pos ...")
        torch_error = e
    else:
        raise AssertionError("torch.save filled a 2 MB disk with 4 MB")
    # The failed save's frames hold its file open (the disk would stay busy): let them go.
    for e in (torch_error, torch_error.__context__):
        if e is not None:
            e.__traceback__ = None
    gc.collect()
    assert not is_full_disk(torch_error)
    assert is_full_disk(torch_error, small_disk, needed=4 * SIZE // 2)
    # A failed write with room to spare is something else.
    (small_disk / "optimizer.pt").unlink()
    assert not is_full_disk(torch_error, small_disk, needed=free_bytes(small_disk) // 2)
    assert not is_full_disk(RuntimeError("unrelated"), small_disk, needed=10 * SIZE)


def test_a_merge_that_fills_the_disk_is_one_line_and_leaves_the_previous_model(
    tiny, small_disk, tmp_path
):
    from peft import LoraConfig, get_peft_model
    from transformers import WhisperForConditionalGeneration

    from whisperforge.model.merge import merge_adapter

    peft = get_peft_model(
        WhisperForConditionalGeneration.from_pretrained(tiny),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    peft.save_pretrained(tmp_path / "adapter")
    out_dir = small_disk / "merged"  # the tiny model's 23 MB of weights on a 2 MB disk
    out_dir.mkdir()
    (out_dir / "config.json").write_text('{"previous": true}')
    before = contents(small_disk)

    message = NO_SPACE.format(path=out_dir, what="a merged model")
    with pytest.raises(WhisperforgeError, match=message + r"free some space or move results/$"):
        merge_adapter(tiny, tmp_path / "adapter", out_dir)
    assert contents(small_disk) == before, "the previous model changed or a temp dir was left"


def test_an_export_that_fills_the_disk_is_one_line_and_leaves_the_previous_export(tiny, small_disk):
    from whisperforge.model.export import export_ct2

    out_dir = small_disk / "ct2-float16"  # 11 MB of float16 weights on a 2 MB disk
    out_dir.mkdir()
    (out_dir / "model.bin").write_bytes(b"the previous export")
    before = contents(small_disk)

    message = NO_SPACE.format(path=out_dir, what="a CTranslate2 float16 export")
    with pytest.raises(WhisperforgeError, match=message + r"free some space or move results/$"):
        export_ct2(tiny, out_dir, quantization="float16")
    assert contents(small_disk) == before, "the previous export changed or a temp dir was left"


# Two speakers, 80 s of 16 kHz 16-bit wavs: 2.6 MB extracted, a few kB compressed.
BIG_UTTERANCES = [
    (split, speaker, f"BAC009{speaker}W{i:04d}", 10.0)
    for split, speaker in (("train", "S0002"), ("dev", "S0724"))
    for i in range(4)
]


def test_an_extraction_that_fills_the_disk_is_one_line_and_leaves_nothing(small_disk, tmp_path):
    archive = make_archive(tmp_path / "data_aishell.tgz", BIG_UTTERANCES, SMALL_TRANSCRIPT)
    data = small_disk / "aishell"  # as results/data/aishell
    wav_dir = data / "wav"

    message = NO_SPACE.format(path=wav_dir, what="AISHELL wavs")
    with pytest.raises(WhisperforgeError, match=message + r"free some space or move results/$"):
        extract_archive(archive, wav_dir, data / "transcript.txt", data / "wavs.tsv", threads=2)
    assert contents(small_disk) == {"aishell": None}, "wavs, a transcript or an index was left"


def test_an_extraction_that_cannot_fit_is_refused_before_a_wav_is_written(small_disk):
    archive = ROOT / "demo/data_aishell.tgz"  # 4.5 MB of speech: ~5.4 MB of wavs on a 2 MB disk
    wav_dir = small_disk / "aishell/wav"
    message = (
        rf"^{wav_dir}: [\d.]+ MB free, but the wavs of data_aishell.tgz need about [\d.]+ MB "
        r"\(1.2 x the archive\); free space there or run in a directory on a bigger disk"
    )
    with pytest.raises(WhisperforgeError, match=message):
        extract_archive(archive, wav_dir, small_disk / "transcript.txt", small_disk / "wavs.tsv")
    assert contents(small_disk) == {}, "something was written"


def test_manifests_that_fill_the_disk_are_one_line_and_leave_the_previous_ones(
    small_disk, small_archive, tmp_path
):
    data = tmp_path / "data"
    extract_archive(small_archive, data / "wav", data / "transcript.txt", data / "wavs.tsv")
    manifests = small_disk / "manifests"
    manifests.mkdir()
    (manifests / "train.jsonl").write_text('{"previous": true}\n')
    # Fill the disk to the last block: the new manifest's first bytes do not fit.
    (small_disk / "filler").write_bytes(b"\0" * free_bytes(small_disk))
    before = contents(small_disk)

    filters = Filters(min_audio_s=0.5, max_audio_s=30.0, max_text_chars=200, bad_wav="error")
    message = NO_SPACE.format(path=manifests / "train.jsonl", what="the train manifest")
    with pytest.raises(WhisperforgeError, match=message):
        build_manifests(data / "transcript.txt", data / "wavs.tsv", manifests, filters=filters)
    assert contents(small_disk) == before, "the previous manifest changed or a temp file was left"


def test_the_extract_rule_on_a_full_disk_fails_with_one_line_and_no_outputs(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    make_archive(workdir / "big.tgz", BIG_UTTERANCES, SMALL_TRANSCRIPT)
    (workdir / "big.yaml").write_text(yaml.safe_dump({"data": {"archive": "big.tgz", "md5": None}}))
    with tmpfs(workdir / "results/data") as data:
        proc = snakemake(
            workdir,
            "results/data/aishell/wavs.tsv",
            *("--configfile", "config.yaml", "profiles/demo/demo.yaml", "big.yaml"),
            check=False,
        )
        assert proc.returncode != 0
        line = (
            "whisperforge error in rule extract_aishell: "
            + NO_SPACE.format(path="results/data/aishell/wav", what="AISHELL wavs")[1:]
            + "free some space or move results/$"
        )
        assert re.search(line, proc.stderr, re.MULTILINE), proc.stderr[-3000:]
        log = (workdir / "logs/data/extract_aishell.log").read_text()
        assert "Traceback" not in log and "writing AISHELL wavs" in log, log[-3000:]
        assert not [p for p in data.rglob("*") if not p.is_dir()], "an output was left"
        assert not (data / "aishell/wav").exists()
