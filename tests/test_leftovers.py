"""What a SIGKILLed build leaves behind is cleared by the next call: Snakemake's locks (only when
the build that wrote them is dead) and the temp files and folders beside its outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

from whisperforge.core.files import atomic_dir, atomic_path
from whisperforge.core.instances import clear_stale_locks

BUILD = """
import sys, time
from pathlib import Path
from whisperforge.core.instances import clear_stale_locks, hold_instance_lock
if sys.argv[2] == "build":
    clear_stale_locks(Path(sys.argv[1]))
    locks = Path(sys.argv[1]) / "locks"
    locks.mkdir()
    (locks / "0.output.lock").write_text("results/x\\n")  # as Snakemake's lock() writes it
else:  # one of its jobs (scripts/_step.py)
    hold_instance_lock(Path(sys.argv[1]))
print("running", flush=True)
time.sleep(600)
"""


def start(snakemake_dir: Path, role: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(snakemake_dir), role],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "running"
    return process


def sigkill(process: subprocess.Popen) -> None:
    process.kill()  # no clean-up of its own
    process.wait()


def test_a_live_builds_locks_stay_and_a_killed_builds_go(tmp_path: Path):
    snakemake_dir = tmp_path / ".snakemake"
    build = start(snakemake_dir, "build")
    job = start(snakemake_dir, "job")
    lock = snakemake_dir / "locks/0.output.lock"
    try:
        assert clear_stale_locks(snakemake_dir) == ([], None)  # a second build meanwhile
        sigkill(build)  # the build alone: its job runs on, an orphan
        assert clear_stale_locks(snakemake_dir) == ([], None)
        assert lock.is_file()
    finally:
        sigkill(build)
        sigkill(job)
    assert clear_stale_locks(snakemake_dir) == ([lock], None)
    assert not lock.exists()
    instances = [p.name for p in (snakemake_dir / "whisperforge-instances").iterdir()]
    assert len(instances) == 1 and f"-{os.getpid()}-" in instances[0], instances  # the dead gone


def test_locks_stay_while_a_killed_builds_cluster_jobs_may_run(tmp_path: Path):
    snakemake_dir = tmp_path / ".snakemake"
    (snakemake_dir / "locks").mkdir(parents=True)
    (snakemake_dir / "locks/0.input.lock").write_text("results/x\n")
    (snakemake_dir / "incomplete").mkdir()
    (snakemake_dir / "incomplete/cmVzdWx0cy94").write_text('{"external_jobid": "4242"}')
    assert clear_stale_locks(snakemake_dir) == (
        [],
        "cluster jobs 4242 of a killed build may still be running",
    )
    (snakemake_dir / "incomplete/cmVzdWx0cy94").unlink()
    other_host = snakemake_dir / "whisperforge-instances/node17-99-0a1b2c3d.lock"
    other_host.write_text("")  # a job on a compute node: flock may not reach it from here
    assert clear_stale_locks(snakemake_dir) == (
        [],
        f"cannot tell whether {other_host.name} is alive",
    )
    assert (snakemake_dir / "locks/0.input.lock").is_file()


WRITER = """
import sys, time
from pathlib import Path
from whisperforge.core.files import atomic_dir, atomic_path
out = Path(sys.argv[1])
with atomic_path(out / "it's a&b [v2].json") as tmp, atomic_dir(out / "merged") as folder:
    tmp.write_text("{")
    (folder / "model.safetensors").write_bytes(bytes(1000))
    print("writing", flush=True)
    time.sleep(600)
"""


def test_a_killed_writers_temp_files_are_removed_by_the_next_write(tmp_path: Path):
    out = tmp_path / "results"
    out.mkdir()
    neighbour = out / ".it's a&b [v2].json.review.tmp"  # another output's name, not a temp file
    neighbour.write_text("kept")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    writer.kill()
    writer.wait()
    left = sorted(p.name for p in out.iterdir() if p != neighbour)
    assert len(left) == 2 and all(name.endswith(".tmp") for name in left), left

    with atomic_path(out / "it's a&b [v2].json") as tmp:
        tmp.write_text("{}")
    with atomic_dir(out / "merged") as folder:
        (folder / "config.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [neighbour.name, "it's a&b [v2].json", "merged"]
    )
