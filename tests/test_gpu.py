"""Concurrent GPU jobs get distinct devices; device and precision follow the machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from helpers import ROOT
from safetensors.torch import save_file

from whisperforge.core.errors import WhisperforgeError
from whisperforge.train.gpu import CPU_OK_PARAMETERS, parameter_count, pick_device, pick_precision

CLAIM = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from whisperforge.train.gpu import claim_gpu
    print(claim_gpu(n_devices=2, lock_dir=Path(sys.argv[1])), flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def claim(lock_dir, hold_s: float, env_extra: dict | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(env_extra or {}, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", CLAIM, str(lock_dir), str(hold_s)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_running_jobs_get_different_devices_and_release_them(tmp_path):
    first, second = claim(tmp_path, 3), None
    try:
        assert first.stdout.readline().strip() == "0"
        second = claim(tmp_path, 0)
        assert second.stdout.readline().strip() == "1"
    finally:
        first.wait()
        if second:
            second.wait()
    third = claim(tmp_path, 0)
    assert third.stdout.readline().strip() == "0", "locks are released when a job ends"
    third.wait()


def test_a_device_held_by_a_killed_job_is_free_again(tmp_path):
    job = claim(tmp_path, 600)
    try:
        assert job.stdout.readline().strip() == "0"
        busy = claim(tmp_path, 0)
        assert busy.stdout.readline().strip() == "1", "device 0 is held while the job lives"
        busy.wait()
    finally:
        job.kill()  # SIGKILL (TerminateProcess on Windows): no clean-up code of the job's runs
        job.wait()
    after = claim(tmp_path, 0)
    assert after.stdout.readline().strip() == "0", "the OS released the dead job's lock"
    after.wait()


def test_caller_chosen_devices_are_left_alone(tmp_path):
    job = claim(tmp_path, 0, {"CUDA_VISIBLE_DEVICES": "3"})
    assert job.stdout.readline().strip() == "3"
    job.wait()


def test_a_real_model_never_trains_on_the_cpu_unless_asked(tmp_path):
    big, small = tmp_path / "big", tmp_path / "small"
    for model_dir, n in ((big, CPU_OK_PARAMETERS + 1), (small, 1000)):
        model_dir.mkdir()
        save_file({"w": torch.zeros(n, dtype=torch.int8)}, model_dir / "model.safetensors")
    assert parameter_count(big) == CPU_OK_PARAMETERS + 1
    hint = "no CUDA device is visible; set train.device: cpu to train on the CPU anyway"
    with pytest.raises(WhisperforgeError, match=f"^config train.device: cuda: {hint}$"):
        pick_device("cuda", small, cuda_available=False)
    with pytest.raises(WhisperforgeError, match=f"^config train.device: auto: .* {hint}$"):
        pick_device("auto", big, cuda_available=False)
    assert pick_device("auto", small, cuda_available=False) == "cpu"  # the demo's tiny model
    assert pick_device("cpu", big, cuda_available=True) == "cpu"
    assert pick_device("auto", big, cuda_available=True) == "cuda"


@pytest.mark.parametrize(
    ("precision", "fp16", "device", "bf16", "expected"),
    [
        ("auto", "auto", "cuda", False, "fp16"),  # RTX 2080 Ti: no bf16
        ("auto", "auto", "cuda", True, "bf16"),
        ("auto", "auto", "cpu", False, "fp32"),
        ("auto", True, "cuda", True, "fp16"),  # the older key still works
        ("auto", False, "cuda", True, "fp32"),
        ("bf16", "auto", "cpu", False, "bf16"),
        ("fp32", "auto", "cuda", True, "fp32"),
    ],
)
def test_precision_follows_the_gpu(precision, fp16, device, bf16, expected):
    assert pick_precision(precision, fp16, device, bf16_supported=bf16) == expected


@pytest.mark.parametrize(
    ("precision", "fp16", "device", "key"),
    [
        ("fp16", "auto", "cpu", "train.precision"),
        ("bf16", "auto", "cuda", "train.precision"),  # a GPU without bf16
        ("bf16", True, "cuda", "train.fp16"),
    ],
)
def test_an_impossible_precision_names_the_key(precision, fp16, device, key):
    with pytest.raises(WhisperforgeError, match=f"^config {key}:"):
        pick_precision(precision, fp16, device, bf16_supported=False)


def test_a_multi_gpu_job_claims_that_many_free_devices(tmp_path):
    script = (
        "import sys; from pathlib import Path; from whisperforge.train.gpu import claim_gpu; "
        "print(claim_gpu(n_devices=3, lock_dir=Path(sys.argv[1]), count=int(sys.argv[2])), "
        "flush=True); import time; time.sleep(float(sys.argv[3]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PYTHONPATH"] = str(ROOT)

    def start(count: int, hold_s: float) -> subprocess.Popen:
        args = [sys.executable, "-c", script, str(tmp_path), str(count), str(hold_s)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)

    pair = start(2, 3)
    try:
        assert pair.stdout.readline().strip() == "0,1"
        single = start(1, 0)
        assert single.stdout.readline().strip() == "2"
        single.wait()
    finally:
        pair.wait()


def test_8bit_on_a_machine_without_cuda_is_one_line_naming_the_key(tmp_path, monkeypatch):
    from test_train import tiny_settings

    from whisperforge.train.finetune import make_plan
    from whisperforge.train.settings import TrainSettings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings = TrainSettings.from_mapping(tiny_settings(device="cpu", use_8bit=True))
    with pytest.raises(WhisperforgeError, match=r"^config train.use_8bit: needs a CUDA device"):
        make_plan(settings, tmp_path)
