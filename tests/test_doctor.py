"""`python -m whisperforge doctor`: the real command in a copy of the workflow, and each check with
the machine replaced (a GPU, a full disk, an unreachable hub) through `Probes`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ctranslate2
import pytest
import torch
from helpers import ROOT, copy_workflow

from whisperforge.tools import doctor
from whisperforge.tools.doctor import GB, Ct2Cuda, Finding, Probes, TorchCuda

AISHELL_BYTES = 15_582_913_665
NO_CUDA = TorchCuda("2.13.0+cpu", None)
H200 = ("NVIDIA H200", 150_000_000_000)


def run_doctor(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "whisperforge", "doctor", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(workdir)},
    )


def findings_of(stdout: str) -> dict[str, str]:
    """check name -> its whole line, for the finding lines of the output."""
    lines = [line for line in stdout.splitlines() if line.split()[0] in ("ok", "warn", "FAIL")]
    return {line[6:].split(":")[0]: line for line in lines}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("doctor") / "wf")


def fake_probes(**overrides) -> Probes:
    """A CPU-only machine with plenty of disk and RAM and a reachable hub, unless overridden."""
    probes = {
        "torch_cuda": lambda: NO_CUDA,
        "ct2_cuda": lambda: Ct2Cuda(0),
        "disk_free": lambda path: 1000 * GB,
        "mem_available": lambda: 64 * GB,
        "hub": lambda repo_id, revision: None,
        "hub_cache": lambda repo_id, revision: None,
    }
    return Probes(**{**probes, **overrides})


def real_config(**data) -> dict:
    config = doctor.load_config(ROOT)
    config["data"].update(data)
    return config


def demo_config() -> dict:
    return doctor.load_config(ROOT, [ROOT / "profiles" / "demo" / "demo.yaml"])


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


# --- the command -------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="names the missing GPU of a CPU machine")
def test_real_config_on_this_cpu_machine_names_cuda_and_base_model(workflow: Path):
    proc = run_doctor(workflow)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = findings_of(proc.stdout)
    assert found["torch CUDA"].startswith("FAIL  torch CUDA: no CUDA device is visible")
    assert "set train.device: cpu to train on the CPU anyway" in found["torch CUDA"]
    assert found["base model"] == (
        "FAIL  base model: cannot reach the hub for openai/whisper-large-v3-turbo: "
        "HF_HUB_OFFLINE is set; download it elsewhere and set model.base to its directory"
    )
    assert set(found) == {
        "torch CUDA",
        "CTranslate2 CUDA",
        "disk",
        "memory",
        "base model",
        "data",
        "corpora",
    }
    fails = sum(line.startswith("FAIL") for line in found.values())
    assert proc.stdout.splitlines()[-1] == (
        f"doctor: {fails} problems; the configured run cannot work here"
    )


def test_demo_profile_on_the_cpu_is_ready(workflow: Path):
    (workflow / "cpu.yaml").write_text("train:\n  device: cpu\n")
    shipped = "ok    base model: faster-whisper (CTranslate2) model demo/base_model (11.5 MB)"
    for configfiles, base in (
        (["profiles/demo/demo.yaml"], shipped),  # 5.7 M parameters, counted in model.bin
        (["profiles/demo/demo.yaml", "cpu.yaml"], shipped),
        (["profiles/demo/demo.yaml", "profiles/demo/pretrain.yaml"], "ok    base model: tiny"),
    ):
        proc = run_doctor(workflow, "--configfile", "config.yaml", *configfiles)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found = findings_of(proc.stdout)
        assert len(found) == 7
        assert found["corpora"] == "ok    corpora: lectures: recordings"
        assert not [line for line in found.values() if line.startswith("FAIL")]
        assert found["base model"].startswith(base), found["base model"]
        assert proc.stdout.splitlines()[-1].startswith("doctor: ready")


def test_bad_config_key_is_one_line_and_exit_2(workflow: Path):
    (workflow / "bad.yaml").write_text("train:\n  learning_rat: 0.1\n")
    proc = run_doctor(workflow, "--configfile", "bad.yaml")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == ["config train: unknown key ('learning_rat' was unexpected)"]


# --- disk --------------------------------------------------------------------------------------


def test_aishell_needs_over_40_gb_when_downloaded_less_in_place(tmp_path: Path):
    base_bytes = doctor.base_weight_bytes(real_config(), tmp_path)
    downloaded = doctor.disk_needed(real_config(), tmp_path, base_bytes)
    in_place = doctor.disk_needed(
        real_config(archive="/data/data_aishell.tgz"), tmp_path, base_bytes
    )
    assert downloaded["archive"] == AISHELL_BYTES
    assert sum(downloaded.values()) > 40 * GB
    assert in_place["archive"] == 0
    # the extracted wavs, and as much again in the prepared corpus (results/manifests/hf)
    assert in_place["wavs"] == downloaded["wavs"] > 2.2 * AISHELL_BYTES
    assert sum(in_place.values()) == sum(downloaded.values()) - AISHELL_BYTES
    own_manifests = real_config(manifests={"train": "a", "dev": "b", "test": "c"})
    assert doctor.disk_needed(own_manifests, tmp_path, base_bytes)["wavs"] == 0
    (tmp_path / "results/manifests/hf").mkdir(parents=True)
    prepared = doctor.disk_needed(real_config(), tmp_path, base_bytes)
    assert prepared["wavs"] * 2 == downloaded["wavs"]


def test_disk_fails_when_free_space_is_short(tmp_path: Path):
    short = doctor.run_checks(real_config(), tmp_path, fake_probes(disk_free=lambda p: 10 * GB))
    disk = by_check(short)["disk"]
    assert disk.status == "FAIL"
    assert disk.message.startswith(f"10.0 GB free at {tmp_path.resolve()}; the run needs about 6")
    assert "data.archive" in disk.message
    plenty = doctor.run_checks(real_config(), tmp_path, fake_probes())
    assert by_check(plenty)["disk"].status == "ok"


# --- CUDA --------------------------------------------------------------------------------------


def test_gpus_as_torch_sees_them(tmp_path: Path):
    config = real_config()
    two = TorchCuda("2.13.0+cu128", "12.8", (H200, H200), bf16=True)
    ok = doctor.check_torch_cuda(config, tmp_path, two)
    assert ok == Finding(
        "ok",
        "torch CUDA",
        "2 x NVIDIA H200 (140 GiB), bf16 supported (torch 2.13.0+cu128, CUDA 12.8)",
    )
    config["runs"]["big"] = {"gpus": 4, "precision": "bf16"}
    old_gpu = TorchCuda("2.13.0+cu128", "12.8", (("Tesla T4", 16 * GB),), bf16=False)
    fail = doctor.check_torch_cuda(config, tmp_path, old_gpu)
    assert fail.status == "FAIL"
    assert "runs.big: train.precision bf16 is not supported by this GPU" in fail.message
    assert "runs.big: train.gpus 4 but torch sees 1 GPU(s)" in fail.message
    assert "runs.lora" not in fail.message


def test_cpu_only_torch_on_a_gpu_machine_says_so(tmp_path: Path):
    cpu_build = TorchCuda("2.13.0+cpu", None, driver_gpus=1)
    fail = doctor.check_torch_cuda(real_config(), tmp_path, cpu_build)
    assert fail.status == "FAIL"
    assert "nvidia-smi lists 1 GPU(s): install torch's CUDA build" in fail.message
    demo = doctor.check_torch_cuda(demo_config(), ROOT, cpu_build)  # its base: 5.7 M parameters
    assert demo.status == "ok"


def test_missing_cublas_is_named_with_its_fix(monkeypatch, capsys, tmp_path: Path):
    def no_cublas(*args, **kwargs):
        raise RuntimeError("Library libcublas.so.12 is not found or cannot be loaded")

    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    monkeypatch.setattr(ctranslate2, "get_supported_compute_types", lambda device: {"float16"})
    monkeypatch.setattr(ctranslate2, "Encoder", no_cublas)
    doctor.ct2_gpu_probe()
    result = json.loads(capsys.readouterr().out)
    assert (
        result["error"] == "RuntimeError: Library libcublas.so.12 is not found or cannot be loaded"
    )
    ct2 = Ct2Cuda(**{**result, "compute_types": ("float16",), "cpu_types": ("int8",)})
    finding = doctor.check_ct2_cuda(real_config(), tmp_path, ct2, NO_CUDA)
    assert finding.status == "FAIL"
    assert "libcublas.so.12 is not found" in finding.message
    assert "pip install nvidia-cublas-cu12 nvidia-cudnn-cu12==9.*" in finding.message
    assert "LD_LIBRARY_PATH" in finding.message


def test_ct2_probe_model_runs_and_the_probe_process_reports(tmp_path: Path):
    doctor.tiny_ct2_encoder(str(tmp_path))
    out = ctranslate2.Encoder(str(tmp_path), device="cpu").forward_batch([["a", "a"]])
    assert list(out.last_hidden_state.shape) == [1, 2, 8]
    probed = doctor.probe_ct2_cuda()
    assert probed.error is None
    assert probed.count == ctranslate2.get_cuda_device_count()
    assert "float32" in probed.cpu_types


def test_ct2_without_gpu_while_torch_has_one_fails(tmp_path: Path):
    gpu = TorchCuda("2.13.0+cu128", "12.8", (H200,), bf16=True)
    finding = doctor.check_ct2_cuda(real_config(), tmp_path, Ct2Cuda(0, why_no_gpu="old"), gpu)
    assert finding.status == "FAIL"
    assert "although torch sees 1 GPU(s) (old)" in finding.message
    config = real_config()
    config["eval"]["compute_type"] = "float16"
    cpu = doctor.check_ct2_cuda(config, tmp_path, Ct2Cuda(0), NO_CUDA)
    assert cpu.status == "FAIL"
    assert "eval.compute_type float16 is not supported" in cpu.message


# --- base model, data, memory ------------------------------------------------------------------


def test_base_model_fetched_cached_or_unreachable(tmp_path: Path):
    config = real_config()

    def unreachable(repo_id, revision):
        raise OSError("Name or service not known")

    cache = tmp_path / "hf-cache" / "snapshots" / "41f01f3"
    finding = doctor.check_base_model(
        config, tmp_path, fake_probes(hub=unreachable, hub_cache=lambda r, v: cache)
    )
    assert finding.status == "FAIL"
    assert finding.message == (
        "cannot reach the hub for openai/whisper-large-v3-turbo: OSError: Name or service not "
        f"known; it is in the Hugging Face cache: set model.base to {cache}"
    )
    fetched = tmp_path / doctor.base_of(config["model"], tmp_path).hub_dir
    fetched.mkdir(parents=True)
    (fetched / "config.json").write_text("{}")
    finding = doctor.check_base_model(config, tmp_path, fake_probes(hub=unreachable))
    assert finding.status == "ok"
    assert "already fetched into resources/models/openai--whisper-large-v3-turbo@41f01f3" in (
        finding.message
    )


def test_archive_of_the_wrong_size_fails(tmp_path: Path):
    (tmp_path / "data_aishell.tgz").write_bytes(b"x" * 100)
    finding = doctor.check_data(real_config(archive="data_aishell.tgz"), tmp_path)
    assert finding.status == "FAIL"
    assert f"has 100 bytes, data.size says {AISHELL_BYTES}" in finding.message
    assert doctor.check_data(real_config(archive="nope.tgz"), tmp_path).status == "FAIL"
    assert doctor.check_data(real_config(), tmp_path).status == "ok"


def test_little_ram_warns_for_the_real_model_only(tmp_path: Path):
    assert doctor.check_memory(real_config(), tmp_path, 8 * GB).status == "warn"
    assert doctor.check_memory(real_config(), tmp_path, 32 * GB).status == "ok"
    assert doctor.check_memory(demo_config(), ROOT, 8 * GB).status == "ok"  # the shipped base


@pytest.mark.realmodel
def test_a_faster_whisper_base_is_checked_as_the_dag_will_import_it(tmp_path, faster_whisper_base):
    config = real_config()
    config["model"]["base"] = str(faster_whisper_base)
    finding = doctor.check_base_model(config, tmp_path, fake_probes())
    assert finding.status == "ok", finding.message
    assert "faster-whisper (CTranslate2) model" in finding.message
    assert "imported once by the DAG" in finding.message
    torn = tmp_path / "torn"
    shutil.copytree(faster_whisper_base, torn)
    with (torn / "model.bin").open("r+b") as f:
        f.truncate(1_000_000)
    config["model"]["base"] = str(torn)
    finding = doctor.check_base_model(config, tmp_path, fake_probes())
    assert finding.status == "FAIL" and str(torn / "model.bin") in finding.message


# --- corpora -----------------------------------------------------------------------------------


def corpora_config(tmp_path: Path) -> dict:
    (tmp_path / "af" / "train").mkdir(parents=True)
    (tmp_path / "af" / "train" / "a.mp3").write_bytes(b"x" * 1000)
    (tmp_path / "af" / "train" / "b.wav").write_bytes(b"x" * 500)
    config = real_config()
    config["data"]["corpora"] = {
        "af": {"hf": {"path": "af", "revision": None}},
        "cv": {"hf": {"path": "someone/cv-zh", "revision": "v1"}},
    }
    return config


def test_each_corpus_counts_in_the_disk_estimate_a_hub_one_by_the_hubs_size(tmp_path: Path):
    config = corpora_config(tmp_path)
    need = doctor.disk_needed(config, tmp_path, 0, {"cv": 10**6})
    assert need["corpora"] == 4 * 1000 + 500 + 10**6 * (1 + 4)  # mp3 decodes to ~4x
    (tmp_path / "results/manifests/corpora/af").mkdir(parents=True)
    (tmp_path / "results/manifests/corpora/af/stats.json").write_text("{}")
    (tmp_path / "resources/datasets/cv").mkdir(parents=True)  # fetched: its wavs still to come
    assert doctor.disk_needed(config, tmp_path, 0)["corpora"] == 0


def test_a_hub_corpus_is_reachable_or_fetched_and_the_endpoint_is_named(tmp_path, monkeypatch):
    config = corpora_config(tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com")

    def unreachable(repo_id, revision):
        raise ConnectionError("timed out")

    findings = by_check(doctor.run_checks(config, tmp_path, fake_probes(hub_dataset=unreachable)))
    assert findings["corpora"].status == "FAIL"
    assert (
        "cv: cannot reach https://hf-mirror.com for dataset someone/cv-zh@v1 "
        "(ConnectionError: timed out)" in (findings["corpora"].message)
    )
    reachable = fake_probes(hub_dataset=lambda repo_id, revision: 2 * 10**9)
    found = by_check(doctor.run_checks(config, tmp_path, reachable))["corpora"]
    assert found.status == "ok" and "af: local folder af" in found.message
    assert "someone/cv-zh@v1 on https://hf-mirror.com (2.0 GB)" in found.message


def test_several_nodes_need_a_partition_with_that_many_gpu_nodes(tmp_path: Path):
    config = real_config()
    assert doctor.check_slurm(config, lambda: pytest.fail("probed")) is None  # one node: no line
    config["runs"]["wide"] = {"nodes": 2, "gpus": 4}
    cluster = [
        ("gpu*", "g1", "gpu:a100:4(S:0-1)"),
        ("gpu*", "g2", "gpu:4"),
        ("gpu*", "g3", "gpu:2"),
        ("cpu", "c1", "(null)"),
        ("cpu", "c2", "(null)"),
        ("cpu", "c3", "(null)"),
    ]
    ok = doctor.check_slurm(config, lambda: cluster)
    assert ok == Finding(
        "ok", "SLURM", "runs.wide: 2 nodes with 4 GPU(s) each; partition gpu has 2"
    )
    config["runs"]["wide"]["nodes"] = 3
    fail = doctor.check_slurm(config, lambda: cluster)
    assert fail.status == "FAIL"
    assert "runs.wide: train.nodes needs 3 nodes with 4 GPU(s) each; partition gpu has 2" in (
        fail.message
    )
    config["runs"]["wide"]["device"] = "cpu"  # CPU processes: any 3 nodes of a partition
    assert doctor.check_slurm(config, lambda: cluster).message == (
        "runs.wide: 3 nodes; partition gpu has 3"
    )
    unreachable = doctor.check_slurm(config, lambda: None)
    assert unreachable.status == "FAIL" and "sinfo does not answer" in unreachable.message
