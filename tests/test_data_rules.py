"""The data stage through the real rules: demo archive -> manifests, reruns, bad archives."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from helpers import copy_workflow, jobs_planned, snakemake

from whisperforge.data.download import md5sum

TARGET = "results/manifests/stats.json"


def data_args(*configs: str) -> list[str]:
    """The module's workdir reads its archive at ODD_ARCHIVE (odd.yaml)."""
    return [TARGET, "--configfile", "config.yaml", "profiles/demo/demo.yaml", "odd.yaml", *configs]


def demo_args(*configs: str) -> list[str]:
    """A fresh workflow copy, its archive where the demo keeps it."""
    return [TARGET, "--configfile", "config.yaml", "profiles/demo/demo.yaml", *configs]


# An archive where users keep theirs, under a name no shell would pass unquoted.
ODD_ARCHIVE = "我的 数据 (v2)/data_aishell [1] & $x; 100%.tgz"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("data"))
    (workdir / ODD_ARCHIVE).parent.mkdir()
    shutil.move(workdir / "demo/data_aishell.tgz", workdir / ODD_ARCHIVE)
    (workdir / "odd.yaml").write_text(
        yaml.safe_dump({"data": {"archive": ODD_ARCHIVE}}, allow_unicode=True), encoding="utf-8"
    )
    snakemake(workdir, *data_args())
    return workdir


def test_manifest_counts_per_split(workdir):
    stats = json.loads((workdir / TARGET).read_text())
    assert stats["utterances"] == {"train": 50, "dev": 6, "test": 14}
    assert stats["skipped"] == {"no_transcript": 2}
    lines = (workdir / "results/manifests/test.jsonl").read_text().splitlines()
    assert len(lines) == 14
    assert {json.loads(line)["id"][6:11] for line in lines} == {"S0764", "S0765"}


def test_second_run_has_nothing_to_do(workdir):
    assert jobs_planned(workdir, *data_args()) == {}


def test_transcript_edit_rebuilds_manifests_only(workdir):
    transcript = workdir / "results/data/aishell/transcript.txt"
    original = transcript.read_text(encoding="utf-8")
    transcript.touch()  # same bytes: Snakemake 9 compares checksums, nothing to redo
    assert jobs_planned(workdir, *data_args()) == {}
    try:
        transcript.write_text(original.replace("楼市", "楼 市", 1), encoding="utf-8")
        assert jobs_planned(workdir, *data_args()) == {"build_manifests": 1}
    finally:
        transcript.write_text(original, encoding="utf-8")


def test_filter_change_does_not_reextract(workdir):
    (workdir / "short.yaml").write_text(yaml.safe_dump({"data": {"max_audio_s": 2.5}}))
    assert jobs_planned(workdir, *data_args("short.yaml")) == {"build_manifests": 1}


def test_md5_mismatch_is_one_line_and_leaves_no_output(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"data": {"md5": "0" * 32}}))
    proc = snakemake(workdir, *demo_args("bad.yaml"), check=False)
    assert proc.returncode != 0
    actual = md5sum(workdir / "demo/data_aishell.tgz")
    expected_line = f"demo/data_aishell.tgz: md5 mismatch: expected {'0' * 32}, got {actual}"
    assert expected_line in proc.stderr, proc.stderr[-2000:]
    assert not (workdir / "results/data/aishell/wav").exists()
    assert not (workdir / "results/data/aishell/wavs.tsv").exists()
    assert (workdir / "demo/data_aishell.tgz").is_file(), "the user's archive must survive"


def test_truncated_archive_fails_cleanly(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    data = (workdir / "demo/data_aishell.tgz").read_bytes()
    cut = "cut (part 1) & $y; 50%.tgz"
    (workdir / cut).write_bytes(data[: len(data) // 3])
    (workdir / "cut.yaml").write_text(yaml.safe_dump({"data": {"archive": cut, "md5": None}}))
    proc = snakemake(workdir, *demo_args("cut.yaml"), check=False)
    assert proc.returncode != 0
    assert f"{cut}: corrupt or truncated archive" in proc.stderr, proc.stderr[-2000:]
    assert not (workdir / "results/data/aishell/wav").exists()


class _ArchiveHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def test_download_rule_fetches_verifies_and_builds(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    served = tmp_path / "mirror"
    served.mkdir()
    shutil.copy(workdir / "demo/data_aishell.tgz", served / "data_aishell.tgz")
    handler = functools.partial(_ArchiveHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/data_aishell.tgz"
        dead = "http://127.0.0.1:9/data_aishell.tgz"
        md5 = hashlib.md5((served / "data_aishell.tgz").read_bytes()).hexdigest()
        (workdir / "net.yaml").write_text(
            yaml.safe_dump({"data": {"archive": None, "urls": [dead, url], "md5": md5}})
        )
        snakemake(workdir, *demo_args("net.yaml"))
    finally:
        server.shutdown()
    assert md5sum(workdir / "resources/data_aishell.tgz") == md5
    assert not list((workdir / "resources").glob("*.part"))
    stats = json.loads((workdir / TARGET).read_text())
    assert stats["utterances"]["test"] == 14
