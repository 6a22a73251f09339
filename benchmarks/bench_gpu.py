"""The GPU day: everything GPU-bound at whisper-large-v3-turbo's full shape, in one timed run.

    python benchmarks/bench_gpu.py --out DIR [--budget-s 450] [--shape large-v3-turbo]
    python benchmarks/bench_gpu.py --device cpu --shape tiny --out DIR   # the same path, seconds

A random-weight Whisper of the published shape (`build_published_shape`, offline) is trained
through the workflow's own step, `whisperforge.train.finetune.finetune` (the finetune rule's
entry: plan,
memory preflight, `train`'s Trainer set-up), on a synthetic AISHELL-shaped manifest (clips of
2.5-6.5 s, padded to 30 s log-mels as always; sentences of 12-18 Chinese characters, AISHELL's
~15), with config.yaml's `lora` run settings overridden only in `max_steps`, the micro-batch,
`gradient_checkpointing`, `precision` and `device`. Per micro-batch (1, 2, 4, 8, 16, 32),
precision (the one `precision: auto` picks first, then the other half precision) and
checkpointing (on, off): seconds per optimizer step and samples/s over the steps after
`--warmup-steps`, `torch.cuda.max_memory_allocated` over the training steps beside the memory
model's prediction (the preflight's own `MemoryEstimate`, captured) and their ratio. A micro-batch
the preflight refuses is a row saying so (with the prediction), not an out-of-memory crash.

From the default config's row (micro-batch 8, checkpointing on, the `auto` precision): the
forecast for 3 epochs of AISHELL-1 train (120,098 utterances), with the dev evaluations the
config asks for (every `eval_steps`, `eval_max_utterances`) at the measured evaluation speed.

CTranslate2: the workflow's float16 export (`export_ct2`), decoded by CTranslate2 directly
(faster-whisper is not on the GPU machine) with float16 and int8_float16 compute, batched at 8
and unbatched, beam 5, every clip forced to exactly `--new-tokens` tokens as bench_inference.py
does (specials banned, CTranslate2's max_length halving calibrated and checked), RTF and device
memory. In its own process: where ctranslate2 is missing or cannot load its CUDA libraries, one
line says so and the run goes on.

The run keeps to `--budget-s` (default 450 s, so that the whole device command stays under
8 minutes): a config whose expected time does not fit is skipped with a note, a running one stops
at the deadline. `--out` gets bench_gpu.json and bench_gpu.md after every config, so a run cut
short still leaves its rows. `--device cpu` reports the CUDA-only figures as n/a.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpu_common import SKIPPED, one_line
from gpu_decode import run_ct2
from gpu_inputs import run_settings, synthetic_manifest
from gpu_report import fmt, forecast, machine, markdown, save, version
from gpu_train import (
    HALF_PRECISIONS,
    MICRO_BATCHES,
    TrainConfig,
    expected_seconds,
    install_hooks,
    sweep,
    train_one,
)

log = logging.getLogger("bench_gpu")


@dataclass
class Plan:
    """What one run measures, decided before the first config."""

    args: argparse.Namespace
    work: Path
    started: float
    deadline: float
    result: dict[str, Any]  # bench_gpu.json, filled in as the run goes
    settings: dict[str, Any] | None  # None: the training path is unavailable here
    ctx: dict[str, Any]  # what train_one needs besides the config
    auto: str  # the precision `precision: auto` picks on this device
    first: list[TrainConfig]
    rest: list[TrainConfig]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from whisperforge.model.tinymodel import PUBLISHED_SHAPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="bench_gpu.json and .md go here")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--shape", choices=list(PUBLISHED_SHAPES), default="large-v3-turbo")
    parser.add_argument(
        "--d-model", type=int, help="narrow the width (tests; default: the real one)"
    )
    parser.add_argument("--budget-s", type=float, default=450.0, help="the whole run's limit")
    parser.add_argument("--steps", type=int, help="optimizer steps per config (5; cpu: 3)")
    parser.add_argument("--warmup-steps", type=int, help="untimed first steps (2; cpu: 1)")
    parser.add_argument("--micro-batches", type=int, nargs="+", help=f"default {MICRO_BATCHES}")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--checkpointing", nargs="+", choices=("on", "off"), default=["on", "off"])
    parser.add_argument("--train-utterances", type=int, default=64)
    parser.add_argument("--dev-utterances", type=int, default=16)
    parser.add_argument("--decode-utterances", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=50, help="forced tokens per clip")
    parser.add_argument("--ct2-compute-types", nargs="+", help="cuda: float16 int8_float16")
    parser.add_argument("--no-decode", action="store_true", help="skip CTranslate2")
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    args = parser.parse_args(argv)
    cpu = args.device == "cpu"
    args.steps = args.steps or (3 if cpu else 5)
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (1 if cpu else 2)
    args.micro_batches = args.micro_batches or ([1, 2] if cpu else list(MICRO_BATCHES))
    args.ct2_compute_types = args.ct2_compute_types or (
        ["float32", "int8"] if cpu else ["float16", "int8_float16"]
    )
    if args.steps <= args.warmup_steps:
        parser.error(f"--steps {args.steps} must exceed --warmup-steps {args.warmup_steps}")
    return args


# --------------------------------------------------------------------------------------------
# Plan: the machine, the inputs, the settings, the sweep
# --------------------------------------------------------------------------------------------


def work_dir(args: argparse.Namespace) -> Path:
    """The work dir, every cache inside it (the GPU machine is bare); exits without CUDA."""
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        HF_DATASETS_CACHE=str(work / "hf-datasets"),
        TOKENIZERS_PARALLELISM="false",
        OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    )
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu: --device cuda: torch sees no CUDA device (use --device cpu)")
    return work


def build_inputs(args: argparse.Namespace, work: Path) -> tuple[Path, Path, Path, float]:
    """The random-weight model (built once per work dir), the train and dev manifests, and the
    seconds the model took to build."""
    from whisperforge.model.tinymodel import build_published_shape

    t0 = time.perf_counter()
    base = work / f"{args.shape}-{args.d_model or 'full'}-random"
    if not (base / "config.json").is_file():
        build_published_shape(base, args.shape, d_model=args.d_model)
    build_s = time.perf_counter() - t0
    train_manifest = synthetic_manifest(work / "train", args.train_utterances, 0, "TRAIN")
    dev_manifest = synthetic_manifest(work / "dev", args.dev_utterances, 1, "DEV")
    return base, train_manifest, dev_manifest, build_s


def new_result(
    args: argparse.Namespace, facts: dict[str, Any], notes: list[str], base: Path, build_s: float
) -> dict[str, Any]:
    """bench_gpu.json before the first config: the machine and the run's shape."""
    from transformers import WhisperConfig

    from whisperforge.train.gpu import parameter_count

    config = WhisperConfig.from_pretrained(base)
    result: dict[str, Any] = {
        "machine": facts,
        "shape": args.shape + (f" narrowed to d_model {args.d_model}" if args.d_model else ""),
        "parameters_m": None,
        "d_model": config.d_model,
        "budget_s": args.budget_s,
        "elapsed_s": 0.0,
        "model_build_s": round(build_s, 1),
        "steps": args.steps,
        "warmup_steps": args.warmup_steps,
        "label_tokens": None,
        "training": [],
        "forecast": None,
        "decoding": {"status": SKIPPED, "note": "not reached"},
        "notes": notes,
    }
    result["parameters_m"] = round(parameter_count(base) / 1e6, 1)
    return result


def training_settings(
    base: Path, train_manifest: Path, result: dict[str, Any]
) -> dict[str, Any] | None:
    """The `lora` run's settings, with the label length and the hooks set; None (and a note)
    where the training path cannot run here."""
    try:
        settings = run_settings()
        from transformers import WhisperProcessor

        from whisperforge.core.manifest import read_manifest
        from whisperforge.train.finetune import label_tokens

        processor = WhisperProcessor.from_pretrained(base)
        processor.tokenizer.set_prefix_tokens(
            language=settings["language"], task=settings["task"], predict_timestamps=False
        )
        result["label_tokens"] = label_tokens(read_manifest(train_manifest), processor)
        install_hooks(result["label_tokens"])
    except Exception as e:
        result["notes"].append(f"training not measured: {one_line(e)}")
        return None
    return settings


def plan(args: argparse.Namespace, work: Path, started: float) -> Plan:
    from whisperforge.train.gpu import pick_precision

    facts = machine(args.device)
    notes: list[str] = []
    missing = [n for n in ("datasets", "soundfile", "jsonschema") if version(n) is None]
    if missing:
        notes.append(
            f"not installed: {', '.join(missing)} (whisperforge's training path imports them; "
            "benchmarks/gpu_day.py carries them as wheels)"
        )
    base, train_manifest, dev_manifest, build_s = build_inputs(args, work)
    result = new_result(args, facts, notes, base, build_s)
    auto = pick_precision("auto", None, args.device, bf16_supported=facts["bf16_supported"])
    precisions = args.precisions or list(dict.fromkeys([auto, *HALF_PRECISIONS]))
    settings = training_settings(base, train_manifest, result)
    ctx = {
        "settings": settings,
        "device": args.device,
        "base": base,
        "train_manifest": train_manifest,
        "dev_manifest": dev_manifest,
        "work": work,
        "threads": 4 if args.device == "cuda" else (os.cpu_count() or 2),
        "row_base": {"gpu": facts["gpu"], "torch": facts["torch"], "cuda": facts["cuda"]},
    }
    checkpointing = [c == "on" for c in dict.fromkeys(args.checkpointing)]
    default_mb = settings["per_device_train_batch_size"] if settings else 8
    first, rest = sweep(precisions, args.micro_batches, checkpointing, default_mb)
    deadline = started + args.budget_s
    return Plan(args, work, started, deadline, result, settings, ctx, auto, first, rest)


# --------------------------------------------------------------------------------------------
# Run: the default micro-batch's configs, CTranslate2, the other configs (saved after each)
# --------------------------------------------------------------------------------------------


def run_configs(p: Plan, configs: list[TrainConfig], reserve: float) -> None:
    """Train each config that fits the budget less `reserve`; a skipped row for the others."""
    rows: list[dict[str, Any]] = p.result["training"]
    for cfg in configs:
        left = p.deadline - reserve - time.perf_counter()
        expected = expected_seconds(cfg, rows, p.args.steps)
        if p.settings is None or left <= 0 or (expected is not None and expected > left):
            why = "training path unavailable" if p.settings is None else "time budget"
            rows.append(
                {
                    **p.ctx["row_base"],
                    **asdict(cfg),
                    "status": SKIPPED,
                    "note": f"{why}: expected {fmt(expected, 0)} s, {max(left, 0):.0f} s left",
                }
            )
            continue
        log.info("training %s", cfg.label)
        rows.append(train_one(cfg, p.ctx, p.args.steps, p.args.warmup_steps, p.deadline - reserve))
        log.info("-> %s", {k: rows[-1].get(k) for k in ("status", "s_per_step", "note")})
        p.result["elapsed_s"] = round(time.perf_counter() - p.started, 1)
        save(p.args.out, p.result)


def decode(p: Plan) -> dict[str, Any]:
    """The CTranslate2 rows (in a child process), in what is left of the budget."""
    args = p.args
    if args.no_decode:
        return {"status": SKIPPED, "note": "--no-decode"}
    spec = {
        "hf": str(p.ctx["base"]),
        "work": str(p.work),
        "manifest": str(p.ctx["train_manifest"]),
        "device": args.device,
        "utterances": args.decode_utterances,
        "batch_sizes": [8, 1],
        "beam": 5,
        "new_tokens": args.new_tokens,
        "compute_types": args.ct2_compute_types,
        "threads": 4 if args.device == "cuda" else (os.cpu_count() or 2),
    }
    return run_ct2(spec, p.deadline - time.perf_counter())


def run(p: Plan) -> None:
    decode_reserve = 0.0 if p.args.no_decode else (90.0 if p.args.device == "cuda" else 30.0)
    run_configs(p, p.first, decode_reserve)
    p.result["decoding"] = decode(p)
    save(p.args.out, p.result)
    run_configs(p, p.rest, 0.0)


# --------------------------------------------------------------------------------------------
# Write: the forecast, the last save, the tables on stdout
# --------------------------------------------------------------------------------------------


def write(p: Plan) -> None:
    if p.settings is not None:
        p.result["forecast"] = forecast(p.result["training"], p.settings, p.auto)
    p.result["elapsed_s"] = round(time.perf_counter() - p.started, 1)
    save(p.args.out, p.result)
    print(markdown(p.result))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work = work_dir(args)
    p = plan(args, work, started)
    run(p)
    write(p)
    shutil.rmtree(work / "hf-datasets", ignore_errors=True)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
