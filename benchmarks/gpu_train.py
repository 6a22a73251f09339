"""The GPU day's training measurement: `whisperforge.train.finetune.finetune` with a stopwatch in
its Trainer and the memory model's estimate kept, one row per (micro-batch, precision,
checkpointing) config: seconds per step, samples/s, peak CUDA memory beside the prediction."""

from __future__ import annotations

import gc
import itertools
import json
import math
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpu_common import OK, GiB, one_line

MICRO_BATCHES = (1, 2, 4, 8, 16, 32)
HALF_PRECISIONS = ("bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    micro_batch: int
    precision: str
    checkpointing: bool

    @property
    def label(self) -> str:
        on = "on" if self.checkpointing else "off"
        return f"micro-batch {self.micro_batch}, {self.precision}, checkpointing {on}"


class Probe:
    """What the hooks saw during one finetune() call."""

    def __init__(self) -> None:
        self.estimate: Any = None
        self.step_ends: list[float] = []
        self.began: float | None = None
        self.peak_allocated: int | None = None
        self.peak_reserved: int | None = None
        self.deadline = math.inf
        self.stopped_at_deadline = False


PROBE = Probe()


def install_hooks(label_tokens: int) -> None:
    """Wrap what `finetune` builds, without changing what it does.

    whisperforge.train.finetune takes no callbacks from outside, so its `GuardedTrainer` is
    replaced (in this process only) by a subclass that appends one timing callback; and the memory
    model's
    `estimate_training_memory`, which the preflight imports at call time, by a wrapper that keeps
    the estimate. Where the preflight does not run (a fixed micro-batch on the CPU), the callback
    makes the same estimate on the same model before the first step.
    """
    import torch
    import transformers

    import whisperforge.train.finetune as wf_train
    import whisperforge.train.memory as memory

    estimate = memory.estimate_training_memory

    def keep_estimate(*args: Any, **kwargs: Any) -> Any:
        PROBE.estimate = estimate(*args, **kwargs)
        return PROBE.estimate

    memory.estimate_training_memory = keep_estimate

    def sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    class StepClock(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if PROBE.estimate is None and model is not None:
                PROBE.estimate = keep_estimate(
                    model,
                    precision="bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
                    gradient_checkpointing=getattr(
                        args, "activation_checkpointing", args.gradient_checkpointing
                    ),
                    label_tokens=label_tokens,
                )
            sync()
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                torch.cuda.reset_peak_memory_stats()
            PROBE.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            sync()
            PROBE.step_ends.append(time.perf_counter())
            if PROBE.step_ends[-1] > PROBE.deadline:
                PROBE.stopped_at_deadline = True
                control.should_training_stop = True

        def on_train_end(self, args, state, control, **kwargs):
            sync()
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                PROBE.peak_allocated = torch.cuda.max_memory_allocated()
                PROBE.peak_reserved = torch.cuda.max_memory_reserved()

    base = wf_train.GuardedTrainer

    class TimedTrainer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), StepClock()]
            super().__init__(*args, **kwargs)

    wf_train.GuardedTrainer = TimedTrainer


def reset_accelerate() -> None:
    """accelerate keeps one process-wide state (mixed precision included) across Trainers; each
    config starts from none, as each finetune job does in its own process."""
    try:
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    except (ImportError, AttributeError, TypeError):
        pass


def free_device() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def finetune_settings(cfg: TrainConfig, ctx: dict[str, Any], steps: int) -> dict[str, Any]:
    """The `lora` run's settings with only what `cfg` sweeps (and `steps`) overridden."""
    return {
        **ctx["settings"],
        "device": ctx["device"],
        "precision": cfg.precision,
        "fp16": None,
        "per_device_train_batch_size": cfg.micro_batch,
        "gradient_accumulation_steps": 1,
        "effective_batch_size": None,
        "gradient_checkpointing": cfg.checkpointing,
        "max_steps": steps,
    }


def run_finetune(
    ctx: dict[str, Any], settings: dict[str, Any], row: dict[str, Any]
) -> dict[str, Any]:
    """finetune() in a scratch run dir; its summary ({} where it failed, said in `row`)."""
    import torch

    from whisperforge.train.finetune import finetune, timings_file

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=ctx["work"]))
    summary: dict[str, Any] = {}
    reset_accelerate()
    try:
        summary = finetune(
            ctx["base"],
            ctx["train_manifest"],
            ctx["dev_manifest"],
            run_dir / "adapter",
            run_dir / "checkpoints",
            settings,
            threads=ctx["threads"],
        )
        # The dev evaluation's speed is a timing: beside the adapter, not in its summary.
        timings = timings_file(run_dir / "adapter")
        if timings.is_file():
            summary["eval_timings"] = json.loads(timings.read_text())["final_eval"]
    except torch.cuda.OutOfMemoryError as e:
        row.update(status="out of memory", note=one_line(e)[:160])
    except Exception as e:  # a row per config whatever breaks; the sweep goes on
        refused = "by the memory model" in str(e)  # the preflight's refusal, before any step
        row.update(status="refused by the preflight" if refused else "error", note=one_line(e))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        free_device()
    return summary


def add_timing(row: dict[str, Any], cfg: TrainConfig, steps: int, warmup: int) -> None:
    """Steps run and timed, the median step after `warmup`, samples/s; a deadline's stop."""
    durations = []
    if PROBE.began is not None:
        ends = [PROBE.began, *PROBE.step_ends]
        durations = [b - a for a, b in itertools.pairwise(ends)]
    timed = durations[warmup:] or durations[-1:]
    row["steps_run"] = len(durations)
    row["steps_timed"] = len(timed)
    row["s_per_step"] = round(statistics.median(timed), 4) if timed else None
    row["samples_per_s"] = (
        round(cfg.micro_batch / row["s_per_step"], 2) if row["s_per_step"] else None
    )
    if durations and len(durations) <= warmup:
        row["note"] = (row["note"] + "; " if row["note"] else "") + "timed without warm-up"
    if PROBE.stopped_at_deadline:
        row["status"] = "stopped by the time budget"
        row["note"] = f"{len(durations)} of {steps} steps ran"


def add_memory(row: dict[str, Any], cfg: TrainConfig, baseline: int, cuda: bool) -> None:
    """The memory model's prediction beside the CUDA peak (less `baseline`), and their ratio."""
    estimate = PROBE.estimate
    row["label_tokens"] = getattr(estimate, "label_tokens", None)
    row["predicted_gib"] = round(estimate.peak(cfg.micro_batch) / GiB, 2) if estimate else None
    row["predicted_fixed_gib"] = round(estimate.fixed_bytes / GiB, 2) if estimate else None
    row["predicted_per_sample_gib"] = (
        round(estimate.per_sample_bytes / GiB, 3) if estimate else None
    )
    if PROBE.peak_allocated is not None:
        PROBE.peak_allocated -= baseline
        PROBE.peak_reserved = (PROBE.peak_reserved or 0) - baseline
    row["baseline_allocated_gib"] = round(baseline / GiB, 3) if cuda else None
    row["peak_allocated_gib"] = (
        round(PROBE.peak_allocated / GiB, 2) if PROBE.peak_allocated is not None else None
    )
    row["peak_reserved_gib"] = (
        round(PROBE.peak_reserved / GiB, 2) if PROBE.peak_reserved is not None else None
    )
    row["measured_over_predicted"] = (
        round(PROBE.peak_allocated / estimate.peak(cfg.micro_batch), 3)
        if estimate and PROBE.peak_allocated
        else None
    )


def train_one(
    cfg: TrainConfig, ctx: dict[str, Any], steps: int, warmup: int, deadline: float
) -> dict[str, Any]:
    """One finetune() call; the row for `cfg`."""
    import torch

    global PROBE
    PROBE = Probe()
    PROBE.deadline = deadline
    settings = finetune_settings(cfg, ctx, steps)
    row: dict[str, Any] = {**ctx["row_base"], **asdict(cfg), "status": OK, "note": ""}
    cuda = ctx["device"] == "cuda"
    # Left allocated by earlier configs (should be ~0); taken off this config's peak.
    baseline = torch.cuda.memory_allocated() if cuda and torch.cuda.is_initialized() else 0
    t0 = time.perf_counter()
    summary = run_finetune(ctx, settings, row)
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    add_timing(row, cfg, steps, warmup)
    add_memory(row, cfg, baseline, cuda)
    eval_timings = summary.get("eval_timings") or {}
    row["eval_samples_per_s"] = eval_timings.get("eval_samples_per_second")
    row["precision_used"] = summary.get("precision")
    return row


def sweep(
    precisions: list[str], micro_batches: list[int], checkpointing: list[bool], default_mb: int
) -> tuple[list[TrainConfig], list[TrainConfig]]:
    """(first, rest): the default micro-batch in every precision and checkpointing setting
    first (the forecast's and the memory table's rows), then the other micro-batches."""
    first = [TrainConfig(default_mb, p, c) for p in precisions for c in checkpointing]
    first = [c for c in first if c.micro_batch in micro_batches]
    rest = [
        TrainConfig(mb, p, c)
        for p in precisions
        for c in checkpointing
        for mb in micro_batches
        if mb != default_mb
    ]
    return first, rest


def expected_seconds(cfg: TrainConfig, rows: list[dict[str, Any]], steps: int) -> float | None:
    """How long `cfg` should take, from the configs done so far (None before any finished)."""
    done = [r for r in rows if r.get("s_per_step") and r["status"] == OK]
    if not done:
        return None
    overhead = statistics.median(
        max(0.0, r["wall_s"] - r["steps_run"] * r["s_per_step"]) for r in done
    )
    alike = [r for r in done if r["checkpointing"] == cfg.checkpointing] or done
    per_sample = max(r["s_per_step"] / r["micro_batch"] for r in alike)
    return overhead + steps * per_sample * cfg.micro_batch
