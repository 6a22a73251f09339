"""`python -m whisperforge doctor`: can the configured run work on this machine?

Run it before a long run. It loads config.yaml overlaid by --configfile files (as Snakemake does),
then checks what the run will need: CUDA as torch sees it (training), CUDA as CTranslate2 sees it
(evaluation, through a tiny model on the GPU in a fresh process, as the transcribe jobs run it),
free disk, free RAM, the base model and the data. One line per finding:

    ok    disk: 83.6 GB free at /work/main; the run needs about 44.5 GB (archive 15.6 GB + ...)
    FAIL  torch CUDA: no CUDA device is visible (...); set train.device: cpu to train on the CPU ...
    doctor: 2 problems; the configured run cannot work here

Exit status 0 when nothing FAILs, 1 otherwise, 2 for a bad config (its one-line message).
The machine is read through `Probes`, which tests replace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from whisperforge.core.basemodel import BaseModel, resolve_base
from whisperforge.core.config import deep_merge, run_settings, validate_config
from whisperforge.core.errors import WhisperforgeError, first_line, one_line
from whisperforge.core.snapshot import hub_endpoint
from whisperforge.data.aishell import WAVS_PER_ARCHIVE_BYTE
from whisperforge.data.corpora import AUDIO_EXTENSIONS, corpus_kind, hf_folder
from whisperforge.model.ct2import import read_whisper
from whisperforge.train.gpu import CPU_OK_PARAMETERS, parameter_count

GB = 10**9
GIB = 2**30

AISHELL_BYTES = 15_582_913_665  # data_aishell.tgz
# Weights of a hub model not fetched yet: the default base's float16 safetensors, else the
# largest Whisper's (large-v3, float16). Any other model is measured on disk.
HUB_WEIGHT_BYTES = {"openai/whisper-large-v3-turbo": 1_620_000_000}
DEFAULT_HUB_WEIGHT_BYTES = 3_090_000_000
TINY_WEIGHT_BYTES = 30_000_000
# A LoRA checkpoint per rank, as a share of the float16 base weights: turbo's r32 adapter on all
# six projections is 28 M parameters, 111 MB in fp32 (7 % of 1.62 GB), and a checkpoint holds it
# and Adam's two moments.
LORA_CHECKPOINT_SHARE_PER_RANK = 3 * 0.07 / 32
CT2_BYTES_PER_WEIGHT_BYTE = {"float32": 2.0, "int8": 0.5, "int8_float32": 0.5, "int8_float16": 0.5}

# Merging loads the base in float32 on the host.
RAM_WANTED_BYTES = 16 * GB

CUDA_LIBS_FIX = (
    "pip install nvidia-cublas-cu12 nvidia-cudnn-cu12==9.* and, as faster-whisper's README says, "
    "export LD_LIBRARY_PATH=`python3 -c 'import os; import nvidia.cublas.lib; "
    'import nvidia.cudnn.lib; print(os.path.dirname(nvidia.cublas.lib.__file__) + ":" + '
    "os.path.dirname(nvidia.cudnn.lib.__file__))'`"
)


@dataclass(frozen=True)
class Finding:
    status: str  # "ok", "warn" or "FAIL"
    check: str
    message: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.check}: {self.message}"


@dataclass(frozen=True)
class TorchCuda:
    """CUDA as torch sees it."""

    torch: str  # torch.__version__
    cuda: str | None  # torch.version.cuda; None for a CPU-only build
    devices: tuple[tuple[str, int], ...] = ()  # (name, total memory in bytes)
    bf16: bool = False
    why_not: str | None = None  # torch's own reason when CUDA is unavailable
    driver_gpus: int = 0  # GPUs nvidia-smi lists


@dataclass(frozen=True)
class Ct2Cuda:
    """CUDA as CTranslate2 sees it."""

    count: int  # GPUs
    compute_types: tuple[str, ...] = ()  # supported on cuda:0
    cpu_types: tuple[str, ...] = ("float32", "int8", "int8_float32")  # supported on the CPU
    error: str | None = None  # the probe, or its tiny model on cuda:0, failed
    why_no_gpu: str | None = None  # CTranslate2's reason for seeing no GPU


# --- probes of the machine (replaced in tests) ---------------------------------------------------


def probe_torch_cuda() -> TorchCuda:
    import torch

    from whisperforge.train.gpu import visible_gpu_count

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    why_not = next((first_line(str(w.message)) for w in caught), None)
    devices: tuple[tuple[str, int], ...] = ()
    bf16 = False
    if available:
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
        devices = tuple((p.name, p.total_memory) for p in props)
        bf16 = torch.cuda.is_bf16_supported()
    return TorchCuda(
        torch.__version__, torch.version.cuda, devices, bf16, why_not, visible_gpu_count()
    )


def ct2_gpu_probe() -> None:
    """In a fresh process: CT2's GPU count, then a tiny model run on cuda:0 (that loads cuBLAS).

    Prints one JSON line of Ct2Cuda's fields.
    """
    import tempfile

    import ctranslate2

    result: dict[str, Any] = {
        "count": ctranslate2.get_cuda_device_count(),
        "cpu_types": sorted(ctranslate2.get_supported_compute_types("cpu")),
    }
    if not result["count"]:
        try:
            ctranslate2.get_supported_compute_types("cuda")
        except Exception as e:
            result["why_no_gpu"] = first_line(str(e))
    try:
        if result["count"]:
            types = sorted(ctranslate2.get_supported_compute_types("cuda"))
            result["compute_types"] = types
            with tempfile.TemporaryDirectory() as tmp:
                tiny_ct2_encoder(tmp)
                ctype = "float16" if "float16" in types else "default"
                encoder = ctranslate2.Encoder(tmp, device="cuda", compute_type=ctype)
                encoder.forward_batch([["a", "a", "a"]])
    except Exception as e:
        result["error"] = one_line(e)
    print(json.dumps(result), flush=True)


def tiny_ct2_encoder(out_dir: str) -> None:
    """A one-layer, 8-wide Transformer encoder in CTranslate2's format (zeros: only runs matter)."""
    import numpy as np
    from ctranslate2 import specs

    d, ff = 8, 16
    spec = specs.TransformerEncoderModelSpec(specs.TransformerEncoderSpec(1, 1))
    encoder = spec.encoder
    layer = encoder.layer[0]
    encoder.embeddings[0].weight = np.zeros((4, d), np.float32)
    for norm in (encoder.layer_norm, layer.self_attention.layer_norm, layer.ffn.layer_norm):
        norm.gamma, norm.beta = np.ones(d, np.float32), np.zeros(d, np.float32)
    layer.self_attention.linear[0].weight = np.zeros((3 * d, d), np.float32)
    layer.self_attention.linear[1].weight = np.zeros((d, d), np.float32)
    layer.ffn.linear_0.weight = np.zeros((ff, d), np.float32)
    layer.ffn.linear_1.weight = np.zeros((d, ff), np.float32)
    spec.register_vocabulary(["<unk>", "<s>", "</s>", "a"])
    spec.validate()
    spec.optimize(quantization="float32")
    spec.save(out_dir)


def probe_ct2_cuda(timeout_s: float = 180) -> Ct2Cuda:
    """Run `ct2_gpu_probe` in a fresh interpreter: no torch loaded, as in the transcribe jobs
    (torch would have loaded its own cuBLAS, hiding a missing one)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    code = "from whisperforge.tools.doctor import ct2_gpu_probe; ct2_gpu_probe()"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s, env=env
        )
    except subprocess.TimeoutExpired:
        return Ct2Cuda(0, error=f"the CTranslate2 probe hung for {timeout_s:.0f} s")
    lines = proc.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return Ct2Cuda(0, error=f"the CTranslate2 probe crashed: {first_line(tail)}")
    for key in ("compute_types", "cpu_types"):
        result[key] = tuple(result.get(key, ()))
    return Ct2Cuda(**result)


def probe_disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def probe_mem_available() -> int | None:
    """MemAvailable from /proc/meminfo, else free physical pages; None when unknown."""
    try:
        for row in Path("/proc/meminfo").read_text().splitlines():
            if row.startswith("MemAvailable:"):
                return int(row.split()[1]) * 1024
    except OSError:
        pass
    import psutil  # os.sysconf does not exist on Windows

    return psutil.virtual_memory().available


def probe_hub(repo_id: str, revision: str | None) -> None:
    """Raise when the hub cannot serve repo_id@revision (no download)."""
    from huggingface_hub import HfApi

    HfApi().model_info(repo_id, revision=revision, timeout=10)


def probe_hub_cache(repo_id: str, revision: str | None) -> Path | None:
    """The snapshot directory of repo_id@revision in the Hugging Face cache, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def probe_hub_dataset(repo_id: str, revision: str | None) -> int:
    """Bytes of a hub dataset's files at revision; raises when the hub cannot serve it."""
    from huggingface_hub import HfApi

    info = HfApi().dataset_info(repo_id, revision=revision, files_metadata=True, timeout=10)
    return sum(s.size or 0 for s in info.siblings or [])


def probe_slurm_nodes() -> list[tuple[str, str, str]] | None:
    """(partition, node, gres) of every node SLURM lists, or None where `sinfo` does not answer
    (not installed, no controller reachable)."""
    if shutil.which("sinfo") is None:
        return None
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%P %N %G"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return None
    return [tuple(line.split(maxsplit=2)) for line in proc.stdout.splitlines() if line.strip()]


@dataclass
class Probes:
    torch_cuda: Callable[[], TorchCuda] = probe_torch_cuda
    ct2_cuda: Callable[[], Ct2Cuda] = probe_ct2_cuda
    disk_free: Callable[[Path], int] = probe_disk_free
    mem_available: Callable[[], int | None] = probe_mem_available
    hub: Callable[[str, str | None], None] = probe_hub
    hub_cache: Callable[[str, str | None], Path | None] = probe_hub_cache
    hub_dataset: Callable[[str, str | None], int] = probe_hub_dataset
    slurm_nodes: Callable[[], list[tuple[str, str, str]] | None] = probe_slurm_nodes


# --- what the config asks for -------------------------------------------------------------------


def human(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB / 10 else f"{n / 10**6:.1f} MB"


def base_of(model: dict[str, Any], workdir: Path) -> BaseModel:
    """model.base resolved as the workflow resolves it, from `workdir`."""
    return resolve_base(model["base"], model["revision"], workdir)


LOCAL_KINDS = ("local", "ct2")


def weights_bytes(model_dir: Path) -> int:
    return sum(
        f.stat().st_size for pattern in ("*.safetensors", "*.bin") for f in model_dir.glob(pattern)
    )


def base_weight_bytes(config: dict[str, Any], workdir: Path) -> int:
    """Size of the base model's weights: measured when on disk, else estimated."""
    base = base_of(config["model"], workdir)
    if base.kind == "tiny":
        return TINY_WEIGHT_BYTES
    model_dir = workdir / (base.path if base.kind in LOCAL_KINDS else base.hub_dir)
    measured = weights_bytes(model_dir) if model_dir.is_dir() else 0
    return measured or HUB_WEIGHT_BYTES.get(base.name, DEFAULT_HUB_WEIGHT_BYTES)


def cpu_ok_model(config: dict[str, Any], workdir: Path) -> bool:
    """Whether `train.device: auto` may train this base on the CPU (a tiny model only)."""
    base = base_of(config["model"], workdir)
    if base.kind == "tiny":
        return True
    if base.kind == "ct2":  # counted in model.bin, as the import will read it
        try:
            count = read_whisper(workdir / base.path)[0].parameter_count()
        except WhisperforgeError:  # the base-model check names what is wrong with it
            return False
        return 0 < count <= CPU_OK_PARAMETERS
    if base.kind == "local":
        return 0 < parameter_count(workdir / base.path) <= CPU_OK_PARAMETERS
    return False


def training_jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each training job's settings: every run, and the tiny base's pretraining."""
    jobs = {f"runs.{run}": run_settings(config, run) for run in sorted(config["runs"])}
    if config["model"]["base"] == "tiny":
        jobs["model.tiny.pretrain"] = config["model"]["tiny"]["pretrain"]
    return jobs


# 16-bit 16 kHz wav bytes per byte of compressed audio (mp3/m4a/opus/parquet of them; a
# generous guess: Common Voice's 64 kb/s mp3 decodes to 4x, a video's audio to less).
WAV_PER_COMPRESSED_BYTE = 4


def audio_bytes(folder: Path) -> int:
    """The 16 kHz wavs a folder of audio (or parquet) decodes to, roughly."""
    total = 0
    for path in folder.rglob("*"):
        suffix = path.suffix.lower().lstrip(".")
        if path.is_file() and (suffix in AUDIO_EXTENSIONS or suffix in ("parquet", "arrow")):
            factor = 1 if suffix == "wav" else WAV_PER_COMPRESSED_BYTE
            total += factor * path.stat().st_size
    return total


def corpus_bytes(name: str, corpus: dict[str, Any], workdir: Path, hub_bytes: int) -> int:
    """What a data.corpora corpus still writes: its recordings or rows decoded to 16 kHz wavs
    (and a hub dataset's snapshot, `hub_bytes`); nothing once imported, or for manifests and
    lhotse corpora (they point at audio in place)."""
    if (workdir / f"results/manifests/corpora/{name}/stats.json").is_file():
        return 0
    kind = corpus_kind(corpus)
    if kind == "recordings":
        return audio_bytes(workdir / Path(corpus["recordings"]).expanduser())
    if kind != "hf":
        return 0
    folder, hub = hf_folder(name, corpus["hf"], workdir)
    if hub and not (workdir / folder).is_dir():
        return hub_bytes * (1 + WAV_PER_COMPRESSED_BYTE)
    return audio_bytes(workdir / folder)


def disk_needed(
    config: dict[str, Any],
    workdir: Path,
    base_bytes: int,
    hub_corpora: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Bytes the run will still write under workdir, by part (a rough, generous estimate).

    archive: data_aishell.tgz, when downloaded (data.archive null) and not there yet.
    wavs: the extracted wavs, ~1.2x the archive, unless extracted already or data.manifests given;
    as much again for the prepared corpus as a Hugging Face dataset (results/manifests/hf/, the
    audio embedded) unless written already.
    models: the base snapshot (a hub model not fetched yet), the CTranslate2 exports (each
    export.quantizations entry, per model: base and each run), and per run the merged model plus
    save_total_limit + 1 checkpoints (a LoRA one: the adapter and Adam's moments; a full
    fine-tune's: fp32 weights and Adam's moments, 6x the float16 weights).
    corpora: each data.corpora corpus not imported yet (corpus_bytes; `hub_corpora`: the size
    of each hub dataset not fetched yet, as the hub reports it).
    """
    data = config["data"]
    need = {"archive": 0, "wavs": 0, "models": 0, "corpora": 0}
    for name, corpus in data["corpora"].items():
        hub_bytes = (hub_corpora or {}).get(name)
        hub_bytes = hub_bytes if isinstance(hub_bytes, int) else 0  # unreachable: unknown
        need["corpora"] += corpus_bytes(name, corpus, workdir, hub_bytes)
    if not data["manifests"]:
        if data["archive"]:
            archive = workdir / Path(data["archive"]).expanduser()
            archive_bytes = archive.stat().st_size if archive.is_file() else data["size"] or 0
        else:
            archive_bytes = data["size"] or AISHELL_BYTES
            target = workdir / "resources" / "data_aishell.tgz"
            have = target.stat().st_size if target.is_file() else 0
            need["archive"] = max(0, archive_bytes - have)
        wav_bytes = round(archive_bytes * WAVS_PER_ARCHIVE_BYTE)
        if not (workdir / "results" / "data" / "aishell" / "wavs.tsv").is_file():
            need["wavs"] += wav_bytes
        if not (workdir / "results" / "manifests" / "hf").is_dir():
            need["wavs"] += wav_bytes
    base = base_of(config["model"], workdir)
    if base.kind == "hub" and not (workdir / base.hub_dir / "config.json").is_file():
        need["models"] += base_bytes
    runs = training_jobs(config)
    runs.pop("model.tiny.pretrain", None)
    ct2 = sum(CT2_BYTES_PER_WEIGHT_BYTE.get(q, 1.0) for q in config["export"]["quantizations"])
    need["models"] += round(ct2 * base_bytes * (1 + len(runs)))
    for settings in runs.values():
        if settings.get("full_finetune"):
            checkpoint = 6 * base_bytes
        else:
            checkpoint = LORA_CHECKPOINT_SHARE_PER_RANK * settings["lora"]["r"] * base_bytes
        need["models"] += base_bytes + round((settings["save_total_limit"] + 1) * checkpoint)
    return need


# --- the checks ---------------------------------------------------------------------------------


def check_torch_cuda(config: dict[str, Any], workdir: Path, cuda: TorchCuda) -> Finding:
    name = "torch CUDA"
    tiny_ok = cpu_ok_model(config, workdir)
    needs: list[str] = []  # why training needs CUDA
    problems: list[str] = []  # settings CUDA cannot serve
    for job, settings in training_jobs(config).items():
        device = settings.get("device", "auto")
        precision = settings.get("precision", "auto")
        if device == "cuda":
            needs.append(f"{job}: train.device cuda")
        elif device == "auto" and not tiny_ok:
            needs.append(f"{job}: train.device auto with {config['model']['base']}")
        if device != "cpu" and precision == "bf16" and cuda.devices and not cuda.bf16:
            problems.append(f"{job}: train.precision bf16 is not supported by this GPU; use fp16")
        on_cpu = device == "cpu" or not cuda.devices
        if on_cpu and (settings.get("fp16") is True or precision == "fp16"):
            problems.append(f"{job}: fp16 needs a CUDA device; use precision auto or fp32")
        gpus = settings.get("gpus", 1)
        if device != "cpu" and cuda.devices and gpus > len(cuda.devices):
            problems.append(f"{job}: train.gpus {gpus} but torch sees {len(cuda.devices)} GPU(s)")
        if settings.get("use_8bit") and not cuda.devices:
            problems.append(f"{job}: train.use_8bit needs a CUDA device (bitsandbytes)")

    if cuda.devices:
        names: dict[str, int] = {}
        for device_name, memory in cuda.devices:
            label = f"{device_name} ({memory / GIB:.0f} GiB)"
            names[label] = names.get(label, 0) + 1
        found = ", ".join(f"{n} x {label}" for label, n in names.items())
        found += f", bf16 {'supported' if cuda.bf16 else 'not supported'}"
        found += f" (torch {cuda.torch}, CUDA {cuda.cuda})"
        if problems:
            return Finding("FAIL", name, f"{found}; but {'; '.join(problems)}")
        return Finding("ok", name, found)

    why = "no CUDA device is visible"
    if cuda.cuda is None:
        why += f" (torch {cuda.torch} is a CPU-only build"
        if cuda.driver_gpus:
            why += f" but nvidia-smi lists {cuda.driver_gpus} GPU(s): install torch's CUDA build"
        why += ")"
    elif cuda.why_not:
        why += f" ({cuda.why_not})"
    elif cuda.driver_gpus:
        why += f" (nvidia-smi lists {cuda.driver_gpus}; check CUDA_VISIBLE_DEVICES)"
    if needs:
        return Finding(
            "FAIL",
            name,
            f"{why} but training needs one ({'; '.join(needs)}); "
            "set train.device: cpu to train on the CPU anyway",
        )
    if problems:
        return Finding("FAIL", name, f"{why}; {'; '.join(problems)}")
    if not tiny_ok:
        return Finding(
            "warn", name, f"{why}; training {config['model']['base']} on the CPU takes days"
        )
    return Finding("ok", name, f"{why}; training {config['model']['base']} on the CPU")


def check_ct2_cuda(config: dict[str, Any], workdir: Path, ct2: Ct2Cuda, cuda: TorchCuda) -> Finding:
    """Evaluation and subtitles decode with CTranslate2: on its first GPU, else on the CPU."""
    name = "CTranslate2 CUDA"
    compute_type = config["eval"]["compute_type"]
    if ct2.error and not ct2.count:
        return Finding(
            "FAIL",
            name,
            f"CTranslate2 does not run here: {ct2.error}; "
            "reinstall it (pip install ctranslate2 faster-whisper)",
        )
    if ct2.error:
        fix = "check the NVIDIA driver (nvidia-smi)"
        if re.search(r"libcu(blas|dnn)", ct2.error):
            fix = CUDA_LIBS_FIX
        return Finding(
            "FAIL",
            name,
            f"{ct2.count} GPU(s), but a tiny model failed on cuda:0: {ct2.error}; {fix}",
        )
    if ct2.count:
        types = ", ".join(ct2.compute_types)
        found = f"{ct2.count} GPU(s), a tiny model ran on cuda:0; compute types {types}"
        if compute_type not in ("auto", "default") and compute_type not in ct2.compute_types:
            return Finding(
                "FAIL", name, f"{found}; eval.compute_type {compute_type} is not among them"
            )
        return Finding("ok", name, found)

    found = "no GPU: evaluation and subtitles decode on the CPU"
    if compute_type not in ("auto", "default") and compute_type not in ct2.cpu_types:
        return Finding(
            "FAIL",
            name,
            f"{found}, where eval.compute_type {compute_type} is not supported "
            f"({', '.join(ct2.cpu_types)}); use auto",
        )
    if cuda.devices:
        why = f" ({ct2.why_no_gpu})" if ct2.why_no_gpu else ""
        wants_gpu = any(s.get("device", "auto") != "cpu" for s in training_jobs(config).values())
        return Finding(
            "FAIL" if wants_gpu else "warn",
            name,
            f"{found}, although torch sees {len(cuda.devices)} GPU(s){why}; ctranslate2 needs "
            "its CUDA 12 build (the Linux x86_64 wheel) and a driver for CUDA 12 (nvidia-smi)",
        )
    if cpu_ok_model(config, workdir):
        return Finding("ok", name, found)
    return Finding("warn", name, f"{found}, slowly for {config['model']['base']}")


def check_disk(
    config: dict[str, Any],
    workdir: Path,
    free: int,
    base_bytes: int,
    hub_corpora: dict[str, Any] | None = None,
) -> Finding:
    need = disk_needed(config, workdir, base_bytes, hub_corpora)
    total = sum(need.values())
    parts = " + ".join(f"{part} {human(need[part])}" for part in need if need[part])
    found = f"{human(free)} free at {workdir}; the run needs about {human(total)}"
    found += f" ({parts})" if parts else ""
    if free >= total:
        return Finding("ok", "disk", found)
    fix = "free some space or run in a directory on a bigger disk (snakemake --directory)"
    if need["archive"]:
        fix += "; data.archive (a copy you have, read in place) saves the download"
    return Finding("FAIL", "disk", f"{found}; {fix}")


def check_memory(config: dict[str, Any], workdir: Path, available: int | None) -> Finding:
    if available is None:
        return Finding("warn", "memory", "cannot tell how much RAM is available")
    found = f"{human(available)} RAM available"
    if cpu_ok_model(config, workdir) or available >= RAM_WANTED_BYTES:
        return Finding("ok", "memory", found)
    return Finding(
        "warn",
        "memory",
        f"{found}; merging loads {config['model']['base']} in float32 on the host: "
        f"{human(RAM_WANTED_BYTES)} or more is safer (close other programs)",
    )


def check_ct2_base(base: str, model_dir: Path) -> Finding:
    """A faster-whisper (CTranslate2) folder as the base: readable, a Whisper, not quantized."""
    try:
        model, _ = read_whisper(model_dir)
    except WhisperforgeError as e:
        return Finding("FAIL", "base model", str(e))
    size = model.path.stat().st_size
    return Finding(
        "ok",
        "base model",
        f"faster-whisper (CTranslate2) model {base} ({human(size)}): imported once by the DAG "
        "into results/models/base/hf",
    )


def check_base_model(config: dict[str, Any], workdir: Path, probes: Probes) -> Finding:
    model = config["model"]
    base, revision = model["base"], model["revision"]
    name = "base model"
    resolved = base_of(model, workdir)
    if resolved.kind == "tiny":
        archive = workdir / Path(model["tiny"]["archive"]).expanduser()
        if not archive.is_file():
            return Finding("FAIL", name, f"tiny: model.tiny.archive {archive} does not exist")
        return Finding(
            "ok", name, f"tiny: built and pretrained in the DAG from {model['tiny']['archive']}"
        )
    if resolved.kind == "ct2":
        return check_ct2_base(base, workdir / resolved.path)
    if resolved.kind == "local":
        model_dir = workdir / resolved.path
        if not (model_dir / "config.json").is_file():
            return Finding("FAIL", name, f"{base}: no config.json (not a Whisper model directory)")
        size = weights_bytes(model_dir)
        if not size:
            return Finding("FAIL", name, f"{base}: no *.safetensors or *.bin weights")
        return Finding("ok", name, f"local directory {base} ({human(size)} of weights)")
    fetched = resolved.hub_dir
    if (workdir / fetched / "config.json").is_file():
        return Finding("ok", name, f"{base}@{revision or 'main'} already fetched into {fetched}")
    from huggingface_hub.errors import (
        GatedRepoError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        probes.hub(base, revision)
    except GatedRepoError:
        return Finding(
            "FAIL", name, f"{base} is gated: accept its terms on the hub and set HF_TOKEN"
        )
    except RevisionNotFoundError:
        return Finding("FAIL", name, f"{base} has no revision {revision}; fix model.revision")
    except RepositoryNotFoundError:
        return Finding(
            "FAIL", name, f"no model {base} on the hub (private? set HF_TOKEN); fix model.base"
        )
    except Exception as e:
        cause = "HF_HUB_OFFLINE is set" if isinstance(e, OfflineModeIsEnabled) else one_line(e)
        cached = probes.hub_cache(base, revision)
        fix = (
            f"it is in the Hugging Face cache: set model.base to {cached}"
            if cached
            else "download it elsewhere and set model.base to its directory"
        )
        return Finding("FAIL", name, f"cannot reach the hub for {base}: {cause}; {fix}")
    return Finding(
        "ok", name, f"{base}@{revision or 'main'} is on the hub; fetched once into {fetched}"
    )


def check_data(config: dict[str, Any], workdir: Path) -> Finding:
    data = config["data"]
    if data["manifests"]:
        missing = [
            f"{split}: {path}"
            for split, path in data["manifests"].items()
            if not (workdir / Path(path).expanduser()).is_file()
        ]
        if missing:
            return Finding("FAIL", "data", f"data.manifests: no such file ({', '.join(missing)})")
        return Finding("ok", "data", "your own manifests (data.manifests)")
    if data["archive"]:
        archive = workdir / Path(data["archive"]).expanduser()
        if not archive.is_file():
            return Finding("FAIL", "data", f"data.archive {data['archive']} does not exist")
        size = archive.stat().st_size
        if data["size"] and size != data["size"]:
            return Finding(
                "FAIL",
                "data",
                f"data.archive {data['archive']} has {size} bytes, data.size says "
                f"{data['size']}: an incomplete copy? copy it again or fix data.size",
            )
        checked = "size matches data.size; " if data["size"] else ""
        return Finding(
            "ok",
            "data",
            f"data.archive {data['archive']} ({human(size)}; {checked}md5 checked when extracted)",
        )
    target = workdir / "resources" / "data_aishell.tgz"
    if target.is_file() and data["size"] and target.stat().st_size == data["size"]:
        return Finding("ok", "data", f"{target.relative_to(workdir)} already downloaded")
    if not data["urls"]:
        return Finding(
            "FAIL",
            "data",
            "data.archive is null and data.urls is empty; set data.archive "
            "to your data_aishell.tgz",
        )
    return Finding(
        "ok",
        "data",
        f"downloaded into resources/data_aishell.tgz from {len(data['urls'])} "
        f"mirror(s) (not contacted here), first {data['urls'][0]}",
    )


def probe_hub_corpora(
    config: dict[str, Any], workdir: Path, probes: Probes
) -> dict[str, int | Exception]:
    """corpus -> the bytes of its hub dataset, or why the hub could not say, for each hf corpus
    whose hub dataset is not fetched yet."""
    found: dict[str, int | Exception] = {}
    for name, corpus in config["data"]["corpora"].items():
        if corpus_kind(corpus) != "hf":
            continue
        try:
            folder, hub = hf_folder(name, corpus["hf"], workdir)
        except WhisperforgeError:
            continue  # check_corpora says why
        if hub and not (workdir / folder).is_dir():
            try:
                found[name] = probes.hub_dataset(corpus["hf"]["path"], corpus["hf"]["revision"])
            except Exception as e:  # huggingface_hub's HTTP errors, OfflineModeIsEnabled ...
                found[name] = e
    return found


def _hf_line(name: str, hf: dict[str, Any], workdir: Path, probed: Any) -> tuple[bool, str]:
    """(ok, what) for one hf corpus: a local folder, a fetched snapshot, or the hub's answer."""
    folder, hub = hf_folder(name, hf, workdir)
    pinned = f"{hf['path']}@{hf['revision'] or 'main'}"
    if not hub:
        return True, f"{name}: local folder {folder}"
    if (workdir / folder).is_dir():
        return True, f"{name}: {pinned} already fetched into {folder}"
    if isinstance(probed, Exception):
        return False, (
            f"{name}: cannot reach {hub_endpoint()} for dataset {pinned} ({one_line(probed)}); "
            "set HF_ENDPOINT to a mirror (https://hf-mirror.com) or point "
            f"data.corpora.{name}.hf.path at a local copy"
        )
    return True, f"{name}: {pinned} on {hub_endpoint()} ({human(probed)}), fetched into {folder}"


def check_corpora(config: dict[str, Any], workdir: Path, probed: dict[str, Any]) -> Finding:
    """Every data.corpora corpus by kind; an hf corpus's hub dataset fetched or reachable."""
    corpora = config["data"]["corpora"]
    if not corpora:
        return Finding("ok", "corpora", "none beside the main corpus (data.corpora)")
    lines, failed = [], []
    for name, corpus in sorted(corpora.items()):
        kind = corpus_kind(corpus)
        if kind != "hf":
            lines.append(f"{name}: {kind}")
            continue
        try:
            ok, line = _hf_line(name, corpus["hf"], workdir, probed.get(name))
        except WhisperforgeError as e:
            ok, line = False, str(e)
        (lines if ok else failed).append(line)
    if failed:
        return Finding("FAIL", "corpora", "; ".join(failed))
    return Finding("ok", "corpora", "; ".join(lines))


def gres_gpus(gres: str) -> int:
    """GPUs in a node's SLURM gres (`gpu:4`, `gpu:a100:4(S:0-1)`, `(null)`)."""
    return sum(int(m.group(1)) for m in re.finditer(r"gpu(?::[\w.-]+)?:(\d+)", gres.split("(")[0]))


def check_slurm(
    config: dict[str, Any], probe: Callable[[], list[tuple[str, str, str]] | None]
) -> Finding | None:
    """Runs over several nodes (train.nodes) need a SLURM partition of that many nodes, each
    with train.gpus GPUs (none on the CPU); checked on the login node, where snakemake runs.
    None (no finding) when every run trains on one node."""
    name = "SLURM"
    wanted = {
        job: (settings["nodes"], 0 if settings["device"] == "cpu" else settings["gpus"])
        for job, settings in training_jobs(config).items()
        if settings.get("nodes", 1) > 1
    }
    if not wanted:
        return None
    slurm_nodes = probe()
    if slurm_nodes is None:
        jobs = ", ".join(f"{job} (train.nodes {nodes})" for job, (nodes, _) in wanted.items())
        return Finding(
            "FAIL",
            name,
            f"sinfo does not answer here, and {jobs} run as SLURM jobs: run doctor "
            "and snakemake on the cluster's login node",
        )
    partitions: dict[str, list[int]] = {}
    for partition, _node, gres in slurm_nodes:
        partitions.setdefault(partition.rstrip("*"), []).append(gres_gpus(gres))
    problems, lines = [], []
    for job, (nodes, gpus) in wanted.items():
        fits = {p: sum(g >= gpus for g in gs) for p, gs in partitions.items()}
        best = max(fits, key=fits.get) if fits else None
        need = f"{nodes} nodes" + (f" with {gpus} GPU(s) each" if gpus else "")
        if best is None or fits[best] < nodes:
            found = f"partition {best} has {fits[best]}" if best else "no partition"
            problems.append(f"{job}: train.nodes needs {need}; {found}")
        else:
            lines.append(f"{job}: {need}; partition {best} has {fits[best]}")
    if problems:
        return Finding("FAIL", name, "; ".join(problems))
    return Finding("ok", name, "; ".join(lines))


def run_checks(
    config: dict[str, Any], workdir: Path, probes: Probes | None = None
) -> list[Finding]:
    """Every check on a validated config; relative paths in it are relative to workdir."""
    probes = probes or Probes()
    workdir = Path(workdir).resolve()
    cuda = probes.torch_cuda()
    base_bytes = base_weight_bytes(config, workdir)
    hub_corpora = probe_hub_corpora(config, workdir, probes)
    findings = [
        check_torch_cuda(config, workdir, cuda),
        check_ct2_cuda(config, workdir, probes.ct2_cuda(), cuda),
        check_disk(config, workdir, probes.disk_free(workdir), base_bytes, hub_corpora),
        check_memory(config, workdir, probes.mem_available()),
        check_base_model(config, workdir, probes),
        check_data(config, workdir),
        check_corpora(config, workdir, hub_corpora),
        check_slurm(config, probes.slurm_nodes),
    ]
    return [finding for finding in findings if finding is not None]


# --- the command --------------------------------------------------------------------------------


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f)
    except OSError as e:
        raise WhisperforgeError(f"{path}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise WhisperforgeError(f"{path}: not valid YAML ({first_line(str(e))})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise WhisperforgeError(f"{path}: not a mapping of config keys")
    return loaded


def load_config(workdir: Path, configfiles: Sequence[str | Path] = ()) -> dict[str, Any]:
    """workdir/config.yaml overlaid by configfiles (each relative to the current directory, else
    to workdir), validated and filled with the schema's defaults."""
    config = read_yaml(workdir / "config.yaml")
    for name in configfiles:
        path = Path(name).expanduser()
        if not path.is_absolute() and not path.exists():
            path = workdir / path
        config = deep_merge(config, read_yaml(path))
    return validate_config(config, workdir / "schemas" / "config.schema.yaml")


def summary(findings: Sequence[Finding]) -> str:
    problems = sum(f.status == "FAIL" for f in findings)
    warns = sum(f.status == "warn" for f in findings)
    if problems:
        noun = "problem" if problems == 1 else "problems"
        return f"doctor: {problems} {noun}; the configured run cannot work here"
    if warns:
        return f"doctor: ready ({warns} warning{'' if warns == 1 else 's'})"
    return "doctor: ready"


def main(configfiles: Sequence[str | Path] = (), directory: str | Path = ".") -> int:
    """Print the findings and the summary; 0 when ready, 1 on a FAIL, 2 for a bad config."""
    # Relative to the current directory first; load_config tries workdir for the others.
    paths = [Path(f).expanduser() for f in configfiles]
    paths = [p.absolute() if p.exists() else p for p in paths]
    workdir = Path(directory).expanduser().resolve()
    try:
        if not workdir.is_dir():
            raise WhisperforgeError(f"--directory {directory}: no such directory")
        os.chdir(workdir)  # as snakemake --directory: relative config paths mean workdir's
        config = load_config(workdir, paths)
    except WhisperforgeError as e:
        print(e, file=sys.stderr)
        return 2
    findings = run_checks(config, workdir)
    for finding in findings:
        print(finding.line(), flush=True)
    print(summary(findings))
    return 1 if any(f.status == "FAIL" for f in findings) else 0
