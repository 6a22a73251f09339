"""The GPU day's figures and how they print: the machine every row names, the AISHELL-1 forecast
from the measured rows, and bench_gpu.json / bench_gpu.md."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

from gpu_common import OK, GiB

AISHELL_TRAIN_UTTERANCES = 120_098
AISHELL_DEV_UTTERANCES = 14_326
PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "soundfile",
    "pyarrow",
    "numpy",
    "ctranslate2",
)
TRAIN_COLUMNS = (
    "GPU",
    "torch",
    "CUDA",
    "precision",
    "micro-batch",
    "checkpointing",
    "status",
    "s/step",
    "samples/s",
    "predicted GiB",
    "measured GiB",
    "measured/predicted",
    "reserved GiB",
    "note",
)
DECODE_COLUMNS = (
    "GPU",
    "torch",
    "CUDA",
    "precision",
    "batch",
    "status",
    "seconds",
    "RTF",
    "tokens/utterance",
    "device MiB",
    "note",
)
TEXT_COLUMNS = {"GPU", "torch", "CUDA", "precision", "checkpointing", "status", "note"}


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine(device: str) -> dict[str, Any]:
    """What every row names: the GPU (or CPU), torch, CUDA, and the library versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cuda = device == "cuda"
    facts: dict[str, Any] = {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if cuda else f"CPU ({cpu})",
        "gpu_memory_gib": (
            round(torch.cuda.get_device_properties(0).total_memory / GiB, 1) if cuda else None
        ),
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "packages": {name: version(name) for name in PACKAGES},
    }
    return facts


def forecast(
    rows: list[dict[str, Any]], settings: dict[str, Any], auto_precision: str
) -> dict[str, Any] | None:
    """Hours for the configured epochs of AISHELL-1 train at the default config on this device.

    The default config's row if it was measured; else the nearest measured micro-batch with the
    same checkpointing and precision, scaled by samples/s (said in `basis`)."""
    mb, ckpt = settings["per_device_train_batch_size"], settings["gradient_checkpointing"]
    candidates = [
        r
        for r in rows
        if r["status"] == OK
        and r.get("samples_per_s")
        and r["checkpointing"] == ckpt
        and r["precision"] == auto_precision
    ]
    if not candidates:
        return None
    row = min(candidates, key=lambda r: (abs(r["micro_batch"] - mb), -r["micro_batch"]))
    exact = row["micro_batch"] == mb
    epochs = settings["num_train_epochs"]
    samples = AISHELL_TRAIN_UTTERANCES * epochs
    steps = math.ceil(AISHELL_TRAIN_UTTERANCES / mb) * epochs
    train_s = samples / row["samples_per_s"]
    evals = steps // settings["eval_steps"] + 1  # and the final one
    dev = min(settings["eval_max_utterances"] or AISHELL_DEV_UTTERANCES, AISHELL_DEV_UTTERANCES)
    eval_s = evals * dev / row["eval_samples_per_s"] if row.get("eval_samples_per_s") else None
    return {
        "config": f"micro-batch {mb}, checkpointing {'on' if ckpt else 'off'}, "
        f"precision auto ({auto_precision})",
        "basis": (
            f"measured row {row['micro_batch']}/{row['precision']}"
            if exact
            else f"micro-batch {row['micro_batch']} (micro-batch {mb} not measured), "
            "scaled by samples/s"
        ),
        "gpu": row["gpu"],
        "utterances": AISHELL_TRAIN_UTTERANCES,
        "epochs": epochs,
        "optimizer_steps": steps,
        "samples_per_s": row["samples_per_s"],
        "train_hours": round(train_s / 3600, 2),
        "evaluations": evals,
        "eval_utterances_each": dev,
        "eval_hours": round(eval_s / 3600, 2) if eval_s is not None else None,
        "total_hours": round((train_s + (eval_s or 0)) / 3600, 2),
    }


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return "n/a"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def align(columns: tuple[str, ...]) -> str:
    return "| " + " | ".join("---" if c in TEXT_COLUMNS else "---:" for c in columns) + " |"


def table_row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |"


def training_lines(result: dict[str, Any]) -> list[str]:
    """The title, the run's one-line summary, and the training table."""
    m = result["machine"]
    lines = [
        f"# bench_gpu: {result['shape']} ({result['parameters_m']} M parameters, random weights)",
        "",
        f"{m['gpu']}, torch {m['torch']}, CUDA {fmt(m['cuda'])}, Python {m['python']}, "
        f"{m['cpu_cores']} cores; budget {result['budget_s']:.0f} s, used "
        f"{result['elapsed_s']:.0f} s; {result['steps']} optimizer steps per config, the first "
        f"{result['warmup_steps']} untimed; labels up to {fmt(result['label_tokens'])} tokens.",
        "",
        "## Training (LoRA through whisperforge.train.finetune.finetune)",
        "",
        "| " + " | ".join(TRAIN_COLUMNS) + " |",
        align(TRAIN_COLUMNS),
    ]
    for r in result["training"]:
        cells = [
            r["gpu"],
            r["torch"],
            fmt(r["cuda"]),
            r["precision"],
            r["micro_batch"],
            fmt(r["checkpointing"]),
            r["status"],
            fmt(r.get("s_per_step"), 3),
            fmt(r.get("samples_per_s")),
            fmt(r.get("predicted_gib")),
            fmt(r.get("peak_allocated_gib")),
            fmt(r.get("measured_over_predicted"), 3),
            fmt(r.get("peak_reserved_gib")),
            r.get("note") or "",
        ]
        lines.append(table_row(cells))
    return lines


def forecast_lines(f: dict[str, Any] | None) -> list[str]:
    lines = ["", "## Forecast", ""]
    if f:
        lines.append(
            f"{f['epochs']} epochs of AISHELL-1 train ({f['utterances']:,} utterances, "
            f"{f['optimizer_steps']:,} optimizer steps) at {f['config']} on {f['gpu']}: "
            f"**{f['total_hours']:.2f} h** ({f['train_hours']:.2f} h training at "
            f"{f['samples_per_s']:.2f} samples/s + {fmt(f['eval_hours'])} h for "
            f"{f['evaluations']} dev evaluations of {f['eval_utterances_each']:,} utterances); "
            f"basis: {f['basis']}."
        )
    else:
        lines.append("n/a: no row of the default config's checkpointing and precision ran.")
    return lines


def decoding_lines(d: dict[str, Any], m: dict[str, Any]) -> list[str]:
    """The CTranslate2 table, each row naming machine `m`; or why it was not measured."""
    lines = ["", "## CTranslate2 decoding (float16 export)", ""]
    if d["status"] != OK:
        return [*lines, f"Not measured: {d['note']}"]
    lines += [
        f"ctranslate2 {d['ctranslate2']}, beam {d['beam']}, export {d['export_s']} s.",
        "",
        "| " + " | ".join(DECODE_COLUMNS) + " |",
        align(DECODE_COLUMNS),
    ]
    for r in d["rows"]:
        cells = [
            m["gpu"],
            m["torch"],
            fmt(m["cuda"]),
            r["compute_type"],
            fmt(r.get("batch")),
            r["status"],
            fmt(r.get("seconds"), 3),
            fmt(r.get("rtf"), 4),
            fmt(r.get("tokens_per_utterance")),
            fmt(r.get("peak_mib")),
            r.get("note") or "",
        ]
        lines.append(table_row(cells))
    return lines


def markdown(result: dict[str, Any]) -> str:
    lines = training_lines(result)
    lines += forecast_lines(result["forecast"])
    lines += decoding_lines(result["decoding"], result["machine"])
    if result["notes"]:
        lines += ["", "## Notes", "", *[f"- {n}" for n in result["notes"]]]
    return "\n".join(lines) + "\n"


def save(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (out / "bench_gpu.md").write_text(markdown(result), encoding="utf-8")
