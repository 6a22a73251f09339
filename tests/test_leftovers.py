"""What a SIGKILLed build leaves behind is cleared by the next call: Snakemake's locks (only when
the build that wrote them is dead) and the temp files and folders beside its outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

from whisperforge.files import atomic_dir, atomic_path
from whisperforge.instances import clear_stale_locks

BUILD = """
import sys, time
from pathlib import Path
from whisperforge.files import atomic_dir, atomic_path
from whisperforge.instances import clear_stale_locks
clear_stale_locks(Path(sys.argv[1]))
locks = Path(sys.argv[1]) / "locks"
locks.mkdir()
(locks / "0.output.lock").write_text("results/x\\n")  # as Snakemake's lock() writes it
print("locked", flush=True)
time.sleep(600)
"""


def test_a_live_builds_locks_stay_and_a_killed_builds_go(tmp_path: Path):
    snakemake_dir = tmp_path / ".snakemake"
    build = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(snakemake_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert build.stdout.readline().strip() == "locked"
        lock = snakemake_dir / "locks/0.output.lock"
        assert clear_stale_locks(snakemake_dir) == []  # a second build while the first runs
        assert lock.is_file()
    finally:
        build.kill()  # SIGKILL: no cleanup of its own
        build.wait()
    assert clear_stale_locks(snakemake_dir) == [lock]
    assert not lock.exists()
    instances = sorted(p.name for p in (snakemake_dir / "whisperforge-instances").iterdir())
    assert instances == [f"{os.getpid()}.lock"], instances  # the dead one's gone


WRITER = """
import sys, time
from pathlib import Path
from whisperforge.files import atomic_dir, atomic_path
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
