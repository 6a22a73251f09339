"""Intermediate training checkpoints that survive a killed job, and never mix two configurations.

Checkpoints live in `results/checkpoints/<run>/`, outside the rule's declared output (which
Snakemake deletes when a job fails), tagged with a fingerprint of everything that shapes the
weights: settings, base model, data. On the next call:

- same fingerprint: training resumes from the last checkpoint;
- only settings that cannot change the weights differ (logging, evaluation and saving intervals,
  evaluation batch size and sample, dataloader workers): it resumes too, with the new intervals;
- anything else differs: training starts afresh and the log names the keys that changed. The old
  checkpoints are moved aside to `<run>.replaced-<time>/`, never deleted: they may be a day of GPU.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from transformers.trainer_utils import get_last_checkpoint

from whisperforge.files import sha256_file, write_json

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
            last = get_last_checkpoint(str(checkpoints))
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
