"""Provenance of an exported model: what data, code, settings and software produced it.

`collect_provenance` gathers the sha256 of every manifest and of the CTranslate2 `model.bin`, the
base model id and revision, the run's full settings and the export settings, the versions of the
packages that matter, the workflow's git commit (and whether tracked files were modified), the
GPU, Python and platform. It holds no timestamps and no hostname, so rerunning with the same
inputs on the same machine gives the same file.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from whisperforge.core.files import sha256_file, write_json

PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "ctranslate2",
    "faster-whisper",
    "jiwer",
    "datasets",
    "snakemake",
    "whisperforge",
)
CT2_MODEL_FILE = "model.bin"


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution; None where it is not installed.

    whisperforge itself usually runs from the workflow checkout without being pip-installed; then
    its `__version__` is reported (the git commit pins the exact code).
    """
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("whisperforge", "") is None:
        import whisperforge

        versions["whisperforge"] = getattr(whisperforge, "__version__", None)
    return versions


def _git(workflow_dir: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(workflow_dir), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_state(workflow_dir: str | Path) -> dict[str, Any]:
    """{"commit": HEAD sha, "dirty": tracked files modified?}; both None outside a git checkout.

    Untracked files do not make the tree dirty (as with `git describe --dirty`): results, logs
    and other outputs of the run are not code.
    """
    workflow_dir = Path(workflow_dir)
    head = _git(workflow_dir, "rev-parse", "--verify", "HEAD")
    if head is None:
        return {"commit": None, "dirty": None}
    status = _git(workflow_dir, "status", "--porcelain", "--untracked-files=no")
    return {"commit": head.strip(), "dirty": None if status is None else bool(status.strip())}


def gpu_name() -> str | None:
    """Name of CUDA device 0, or None without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken driver should not fail provenance
        return None


def _default_workflow_dir() -> Path:
    import whisperforge

    return Path(whisperforge.__file__).resolve().parent.parent


def collect_provenance(
    model_dir: str | Path,
    ct2_dir: str | Path,
    manifests: Sequence[str | Path],
    *,
    archive_md5: str | None,
    base: str,
    revision: str | None,
    settings: Mapping[str, Any],
    export: Mapping[str, Any],
    workflow_dir: str | Path | None = None,
    training_summary: str | Path | None = None,
) -> dict[str, Any]:
    """The provenance record of one model (see the module docstring); JSON-serializable.

    Manifests are keyed by their path as given (relative paths keep the record portable).
    `workflow_dir` defaults to the checkout this package is imported from. A run's
    `training_summary` (the finetune step's training_summary.json) adds how it was trained:
    device, precision, processes and the batch split the memory preflight settled on.
    """
    ct2_dir = Path(ct2_dir)
    manifest_hashes = {}
    for m in manifests:
        key = str(m)
        if key in manifest_hashes:
            continue
        manifest_hashes[key] = sha256_file(m)
    return {
        "model": {
            "base": base,
            "revision": revision,
            "hf_dir": str(model_dir),
            "settings": dict(settings or {}),
            "training": training_facts(training_summary),
        },
        "data": {
            "archive_md5": archive_md5,
            "manifests_sha256": dict(sorted(manifest_hashes.items())),
        },
        "export": {
            "settings": dict(export or {}),
            "ct2_dir": str(ct2_dir),
            "model_bin_sha256": sha256_file(ct2_dir / CT2_MODEL_FILE),
        },
        "packages": package_versions(),
        "workflow": git_state(
            workflow_dir if workflow_dir is not None else _default_workflow_dir()
        ),
        "environment": {
            "gpu": gpu_name(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


TRAINING_FACTS = (
    "device",
    "precision",
    "processes",
    "micro_batch",
    "gradient_accumulation",
    "effective_batch",
    "gradient_checkpointing",
    "global_step",
)


def training_facts(summary_path: str | Path | None) -> dict[str, Any] | None:
    """The reproducible part of a training summary (no timings)."""
    if summary_path is None:
        return None
    summary = json.loads(Path(summary_path).read_text())
    return {key: summary.get(key) for key in TRAINING_FACTS}


def write_provenance(
    path: str | Path,
    model_dir: str | Path,
    ct2_dir: str | Path,
    manifests: Sequence[str | Path],
    **kwargs: Any,
) -> dict[str, Any]:
    """Collect provenance (same arguments as `collect_provenance`) and write it atomically as
    key-sorted JSON to `path`; returns the record."""
    record = collect_provenance(model_dir, ct2_dir, manifests, **kwargs)
    write_json(path, record)
    return record
