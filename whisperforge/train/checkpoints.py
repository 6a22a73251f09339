"""Intermediate training checkpoints that survive a killed job, and never mix two configurations.

Checkpoints live in `results/checkpoints/<run>/`, outside the rule's declared output (which
Snakemake deletes when a job fails), tagged with a fingerprint of everything that shapes the
weights: settings, base model, data. On the next call:

- same fingerprint: training resumes from the last checkpoint;
- only settings that cannot change the weights differ (logging, evaluation and saving intervals,
  evaluation batch size and sample, dataloader workers): it resumes too, with the new intervals;
- anything else differs: training starts afresh and the log names the keys that changed. The old
  checkpoints are moved aside to `<run>.replaced-<time>/`, never deleted: they may be a day of GPU.

The Trainer writes `checkpoint-N/` in place, so a job killed mid-save leaves a torn one that
`get_last_checkpoint` would pick on every retry. Resume takes the newest *complete* checkpoint
(`checkpoint_problem`) and moves each newer, torn one aside to `torn-checkpoint-N-<time>/` beside
it (a name the Trainer's `checkpoint-*` rotation never matches, so it is never deleted either).
"""

from __future__ import annotations

import json
import logging
import re
import time
import zipfile
from pathlib import Path
from typing import Any

from whisperforge.core.files import sha256_file, write_json

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "whisperforge-fingerprint.json"

# Train settings that decide when to log, evaluate or save, not what the optimizer does.
WEIGHT_NEUTRAL_KEYS = frozenset(
    {
        "logging_steps",
        "eval_steps",
        "save_steps",
        "save_total_limit",
        "per_device_eval_batch_size",
        "eval_max_utterances",
        "dataloader_num_workers",
        "report_to",
        # When a diverged run stops (divergence.py), not what a run that goes on learns.
        "divergence.patience",
        "divergence.max_loss_factor",
    }
)


def fingerprint(settings: dict[str, Any], base_dir: Path, manifests: list[Path]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed from (`settings` kept whole, for the log)."""
    weights = sorted(base_dir.glob("*.safetensors")) + sorted(base_dir.glob("*.bin"))
    return {
        "settings": settings,
        "base_config": sha256_file(base_dir / "config.json"),
        "base_weights": [[w.name, w.stat().st_size] for w in weights],
        "manifests": [sha256_file(m) for m in manifests],
    }


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, sub in value.items():
            flat.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two fingerprints (`settings.` dropped)."""
    flat_old, flat_new = _flatten(old, ""), _flatten(new, "")
    keys = sorted(
        k for k in flat_old.keys() | flat_new.keys() if flat_old.get(k) != flat_new.get(k)
    )
    return [k.removeprefix("settings.") for k in keys]


def affects_weights(key: str) -> bool:
    return key not in WEIGHT_NEUTRAL_KEYS


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")  # as transformers' get_last_checkpoint matches
# Weights as the Trainer saves them: PEFT adapters, a full model, or a sharded one.
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")
REQUIRED_PICKLES = ("optimizer.pt", "scheduler.pt")  # resuming loads both (no save_only_model)


def _safetensors_problem(path: Path) -> str | None:
    """Why `path` would not load, or None: the header parses and covers the file exactly (the
    check whose failure is 'SafetensorError: incomplete metadata'); no tensor data is read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt"):
            return None
    except Exception as e:  # SafetensorError, OSError: either way the resume would fail
        return f"{path.name}: {e}"


def _pickle_problem(path: Path) -> str | None:
    """torch.save writes a zip whose central directory comes last: a file cut short lacks it."""
    try:
        with zipfile.ZipFile(path) as archive:
            end = max((i.header_offset + i.compress_size for i in archive.infolist()), default=0)
        if end > path.stat().st_size:
            return f"{path.name}: shorter than its zip directory says"
    except (zipfile.BadZipFile, OSError) as e:
        return f"{path.name}: {e}"
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint `path` cannot be resumed from (one phrase), or None when complete.

    Cheap: headers only, never the tensors. The Trainer saves weights, then optimizer, scheduler,
    scaler and RNG states, then trainer_state.json; each is checked, since a file written later
    can reach the disk before an earlier one does.
    """
    match = _CHECKPOINT.match(path.name)
    state_file = path / "trainer_state.json"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"trainer_state.json unreadable ({e})"
    if match and state.get("global_step") != int(match.group(1)):
        return f"trainer_state.json is of step {state.get('global_step')}"
    weights = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
    if not weights:
        return "no weights (" + " / ".join(WEIGHT_FILES) + ")"
    for weight in weights:
        if weight.name.endswith(".index.json"):
            try:
                shards = sorted(set(json.loads(weight.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError) as e:
                return f"{weight.name}: unreadable ({e})"
            problems = [_safetensors_problem(path / shard) for shard in shards]
        else:
            problems = [_safetensors_problem(weight)]
        if problem := next((p for p in problems if p), None):
            return problem
    for name in REQUIRED_PICKLES:
        if not (path / name).is_file():
            return f"no {name}"
    optional = sorted(path.glob("rng_state*.pth")) + sorted(path.glob("scaler.pt"))
    for pickle in [path / name for name in REQUIRED_PICKLES] + optional:
        if problem := _pickle_problem(pickle):
            return problem
    return None


def last_complete_checkpoint(checkpoints: Path) -> str | None:
    """The newest complete `checkpoint-N` in `checkpoints`; each newer, torn one is moved aside
    to `torn-checkpoint-N-<time>` (kept, not deleted) with one log line naming it."""
    found = [
        (int(m.group(1)), p)
        for p in checkpoints.iterdir()
        if (m := _CHECKPOINT.match(p.name)) and p.is_dir()
    ]
    for _, path in sorted(found, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        aside = path.with_name(f"torn-{path.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        path.rename(aside)
        log.warning("%s is torn (%s): moved aside to %s", path, problem, aside)
    return None


def prepare_checkpoint_dir(checkpoints: Path, expected: dict[str, Any]) -> str | None:
    """Return the checkpoint to resume from, or None after setting stale checkpoints aside."""
    marker = checkpoints / FINGERPRINT_FILE
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        previous = json.loads(marker.read_text()) if marker.is_file() else None
        changed = changed_keys(previous, expected) if previous is not None else ["(unknown)"]
        weight_changes = [k for k in changed if affects_weights(k)]
        if not weight_changes:
            if changed:
                log.info("changed without effect on the weights: %s", ", ".join(changed))
                write_json(marker, expected)
            last = last_complete_checkpoint(checkpoints)
            if last:
                log.info("resuming from %s", last)
                return last
        else:
            aside = checkpoints.with_name(
                f"{checkpoints.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
            )
            checkpoints.rename(aside)
            log.warning(
                "starting afresh: %s changed since the checkpoints in %s were written; "
                "they are kept in %s (delete it when you no longer need it)",
                ", ".join(weight_changes),
                checkpoints,
                aside,
            )
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_json(marker, expected)
    return None
