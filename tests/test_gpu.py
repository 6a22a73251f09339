"""Concurrent GPU jobs get distinct devices; a device list set by the caller is kept."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT

CLAIM = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from whisperforge.gpu import claim_gpu
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


def test_caller_chosen_devices_are_left_alone(tmp_path):
    job = claim(tmp_path, 0, {"CUDA_VISIBLE_DEVICES": "3"})
    assert job.stdout.readline().strip() == "3"
    job.wait()
