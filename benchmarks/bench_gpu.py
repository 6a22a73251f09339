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
import gc
import importlib.metadata
import importlib.util
import itertools
import json
import logging
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Offline before transformers or datasets are imported (the GPU machine has no network).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

log = logging.getLogger("bench_gpu")

GiB = 2**30
SAMPLE_RATE = 16_000
AISHELL_TRAIN_UTTERANCES = 120_098
AISHELL_DEV_UTTERANCES = 14_326
MICRO_BATCHES = (1, 2, 4, 8, 16, 32)
HALF_PRECISIONS = ("bf16", "fp16")
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
# Common characters for synthetic transcripts (what they say does not matter to random weights;
# their token count does: Whisper's BPE splits some characters into 2-3 tokens).
HANZI = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过"
    "子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制"
    "机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正"
)
SKIPPED, OK = "skipped", "ok"


# --------------------------------------------------------------------------------------------
# Machine and inputs
# --------------------------------------------------------------------------------------------


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


def write_wav(path: Path, samples: list[int] | Any) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(samples.tobytes())


def synthetic_manifest(out: Path, n: int, seed: int, prefix: str) -> Path:
    """`n` AISHELL-shaped utterances: 2.5-6.5 s of a tone in noise, 12-18 characters of text."""
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    lines = []
    for i in range(n):
        seconds = 2.5 + 4.0 * i / max(n - 1, 1)
        t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        audio = 0.2 * np.sin(2 * np.pi * (180 + 20 * i) * t) + 0.02 * rng.standard_normal(t.size)
        wav = out / f"{prefix}{i:04d}.wav"
        write_wav(wav, (audio * 32767).astype(np.int16))
        sentence = "".join(pick.choice(HANZI) for _ in range(pick.randint(12, 18)))
        record = {
            "audio": {"path": str(wav)},
            "sentence": sentence,
            "language": "Chinese",
            "duration": round(seconds, 3),
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    manifest = out / f"{prefix.lower()}.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def run_settings() -> dict[str, Any]:
    """The finetune rule's settings for config.yaml's `lora` run (schema defaults filled)."""
    import yaml

    from whisperforge.core.config import run_settings as settings_of
    from whisperforge.core.config import validate_config

    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    validate_config(config, ROOT / "schemas" / "config.schema.yaml")
    return {**settings_of(config, "lora"), "streaming": config["data"]["streaming"]}


# --------------------------------------------------------------------------------------------
# Training: finetune() with a stopwatch in its Trainer
# --------------------------------------------------------------------------------------------


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


def one_line(error: BaseException) -> str:
    from whisperforge.core.errors import WhisperforgeError
    from whisperforge.core.errors import one_line as quoted

    return str(error).splitlines()[0] if isinstance(error, WhisperforgeError) else quoted(error)


def train_one(
    cfg: TrainConfig, ctx: dict[str, Any], steps: int, warmup: int, deadline: float
) -> dict[str, Any]:
    """One finetune() call; the row for `cfg`."""
    import torch

    from whisperforge.train.finetune import finetune, timings_file

    global PROBE
    PROBE = Probe()
    PROBE.deadline = deadline
    settings = {
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
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=ctx["work"]))
    row: dict[str, Any] = {**ctx["row_base"], **asdict(cfg), "status": OK, "note": ""}
    cuda = ctx["device"] == "cuda"
    # Left allocated by earlier configs (should be ~0); taken off this config's peak.
    baseline = torch.cuda.memory_allocated() if cuda and torch.cuda.is_initialized() else 0
    t0 = time.perf_counter()
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
    row["wall_s"] = round(time.perf_counter() - t0, 1)
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


# --------------------------------------------------------------------------------------------
# CTranslate2 decoding (its own process)
# --------------------------------------------------------------------------------------------


def read_wav(path: str) -> Any:
    import numpy as np

    with wave.open(path, "rb") as f:
        frames = f.readframes(f.getnframes())
    return np.frombuffer(frames, dtype=np.int16).astype(np.float32) / 32768.0


def ct2_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Export, then time each compute type batched and unbatched; runs in a child process."""
    try:
        import ctranslate2
    except Exception as e:
        return {"status": "unavailable", "note": f"ctranslate2 cannot be imported ({e})"}
    device = spec["device"]
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        return {
            "status": "unavailable",
            "note": f"ctranslate2 {ctranslate2.__version__} sees no CUDA device (its CUDA "
            "runtime or driver does not load here)",
        }
    import numpy as np
    import torch
    from transformers import WhisperFeatureExtractor

    from whisperforge.model.export import export_ct2

    t0 = time.perf_counter()
    export = Path(spec["work"]) / "ct2-float16"
    try:
        export_ct2(spec["hf"], export, quantization="float16")
    except Exception as e:
        return {"status": "error", "note": f"float16 export failed: {one_line(e)}"}
    export_s = round(time.perf_counter() - t0, 1)
    extractor = WhisperFeatureExtractor.from_pretrained(spec["hf"])
    records = [json.loads(x) for x in Path(spec["manifest"]).read_text().splitlines()]
    audios = [read_wav(r["audio"]["path"]) for r in records[: spec["utterances"]]]
    audio_s = sum(a.size for a in audios) / SAMPLE_RATE
    tokenizer = json.loads((export / "tokenizer.json").read_text(encoding="utf-8"))
    ids = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    prompt = [ids[t] for t in ("<|startoftranscript|>", "<|zh|>", "<|transcribe|>")]
    prompt.append(ids["<|notimestamps|>"])
    eot = ids["<|endoftext|>"]
    vocab = max(ids.values()) + 1
    suppress = list(range(eot, vocab))  # end-of-text and every special: fixed work
    n = spec["new_tokens"]
    cuda = device == "cuda"
    rows = []

    def features(group: list[Any]) -> Any:
        mel = extractor(group, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        return ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))

    for compute in spec["compute_types"]:
        free_before = torch.cuda.mem_get_info()[0] if cuda else None
        try:
            model = ctranslate2.models.Whisper(
                str(export),
                device=device,
                compute_type=compute,
                inter_threads=1,
                intra_threads=spec["threads"],
            )

            def decode(group: list[Any], max_length: int, model: Any = model) -> list[int]:
                results = model.generate(
                    features(group),
                    [prompt] * len(group),
                    beam_size=spec["beam"],
                    max_length=max_length,
                    suppress_tokens=suppress,
                    suppress_blank=False,
                )
                return [len(r.sequences_ids[0]) for r in results]

            # CTranslate2 4.x ends a Whisper decode at half of max_length (OpenNMT/
            # CTranslate2#1856; bench_inference.py asks for twice as much); a version without
            # the halving gives n at n + prompt. The warm-up (untimed) finds which.
            max_length = next(
                (m for m in (2 * n, n + len(prompt)) if decode(audios[:1], m) == [n]), 2 * n
            )
        except Exception as e:
            rows.append({"compute_type": compute, "status": "error", "note": one_line(e)})
            continue
        for batch in spec["batch_sizes"]:
            t1 = time.perf_counter()
            tokens: list[int] = []
            try:
                for i in range(0, len(audios), batch):
                    tokens += decode(audios[i : i + batch], max_length)
            except Exception as e:
                rows.append(
                    {
                        "compute_type": compute,
                        "batch": batch,
                        "status": "error",
                        "note": one_line(e),
                    }
                )
                continue
            seconds = time.perf_counter() - t1
            rows.append(
                {
                    "compute_type": compute,
                    "batch": batch,
                    "status": OK,
                    "note": "" if tokens == [n] * len(audios) else f"tokens {sorted(set(tokens))}",
                    "utterances": len(audios),
                    "audio_s": round(audio_s, 2),
                    "seconds": round(seconds, 3),
                    "rtf": round(seconds / audio_s, 4),
                    "tokens_per_utterance": n if tokens == [n] * len(audios) else None,
                    "peak_mib": (
                        round((free_before - torch.cuda.mem_get_info()[0]) / 2**20)
                        if cuda
                        else None
                    ),
                }
            )
        del model
        gc.collect()
    return {
        "status": OK,
        "note": "",
        "ctranslate2": ctranslate2.__version__,
        "export_s": export_s,
        "beam": spec["beam"],
        "rows": rows,
    }


def run_ct2(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """`ct2_child` in a fresh interpreter: a crash loading CUDA libraries ends only the child."""
    if importlib.util.find_spec("ctranslate2") is None:
        return {
            "status": "unavailable",
            "note": "ctranslate2 is not installed (benchmarks/gpu_day.py --with-ctranslate2 "
            "carries it where the 64 MiB allow)",
        }
    spec_path = Path(spec["work"]) / "ct2-spec.json"
    out_path = Path(spec["work"]) / "ct2-result.json"
    spec_path.write_text(json.dumps(spec))
    cmd = [sys.executable, __file__, "--ct2-child", str(spec_path), str(out_path)]
    try:
        proc = subprocess.run(cmd, timeout=max(1.0, timeout_s), check=False)
    except subprocess.TimeoutExpired:
        return {"status": SKIPPED, "note": f"stopped by the time budget after {timeout_s:.0f} s"}
    if not out_path.is_file():
        return {
            "status": "error",
            "note": f"the decoding process exited with code {proc.returncode} (log above)",
        }
    return json.loads(out_path.read_text())


# --------------------------------------------------------------------------------------------
# Forecast and report
# --------------------------------------------------------------------------------------------


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


def align(columns: tuple[str, ...]) -> str:
    return "| " + " | ".join("---" if c in TEXT_COLUMNS else "---:" for c in columns) + " |"


def markdown(result: dict[str, Any]) -> str:
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
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    f = result["forecast"]
    lines += ["", "## Forecast", ""]
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
    d = result["decoding"]
    lines += ["", "## CTranslate2 decoding (float16 export)", ""]
    if d["status"] != OK:
        lines.append(f"Not measured: {d['note']}")
    else:
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
            lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    if result["notes"]:
        lines += ["", "## Notes", "", *[f"- {n}" for n in result["notes"]]]
    return "\n".join(lines) + "\n"


def save(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (out / "bench_gpu.md").write_text(markdown(result), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    deadline = started + args.budget_s
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    # Every cache inside the work dir (the GPU machine is bare).
    os.environ.update(
        HF_DATASETS_CACHE=str(work / "hf-datasets"),
        TOKENIZERS_PARALLELISM="false",
        OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    )
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu: --device cuda: torch sees no CUDA device (use --device cpu)")
    from whisperforge.model.tinymodel import build_published_shape
    from whisperforge.train.gpu import pick_precision

    facts = machine(args.device)
    notes: list[str] = []
    missing = [n for n in ("datasets", "soundfile", "jsonschema") if version(n) is None]
    if missing:
        notes.append(
            f"not installed: {', '.join(missing)} (whisperforge's training path imports them; "
            "benchmarks/gpu_day.py carries them as wheels)"
        )
    t0 = time.perf_counter()
    base = work / f"{args.shape}-{args.d_model or 'full'}-random"
    if not (base / "config.json").is_file():
        build_published_shape(base, args.shape, d_model=args.d_model)
    build_s = time.perf_counter() - t0
    train_manifest = synthetic_manifest(work / "train", args.train_utterances, 0, "TRAIN")
    dev_manifest = synthetic_manifest(work / "dev", args.dev_utterances, 1, "DEV")
    from transformers import WhisperConfig

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
    from whisperforge.train.gpu import parameter_count

    result["parameters_m"] = round(parameter_count(base) / 1e6, 1)
    auto = pick_precision("auto", None, args.device, bf16_supported=facts["bf16_supported"])
    precisions = args.precisions or list(dict.fromkeys([auto, *HALF_PRECISIONS]))
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
        settings = None
        notes.append(f"training not measured: {one_line(e)}")
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
    rows: list[dict[str, Any]] = result["training"]
    decode_reserve = 0.0 if args.no_decode else (90.0 if args.device == "cuda" else 30.0)

    def run_configs(configs: list[TrainConfig], reserve: float) -> None:
        for cfg in configs:
            left = deadline - reserve - time.perf_counter()
            expected = expected_seconds(cfg, rows, args.steps)
            if settings is None or left <= 0 or (expected is not None and expected > left):
                why = "training path unavailable" if settings is None else "time budget"
                rows.append(
                    {
                        **ctx["row_base"],
                        **asdict(cfg),
                        "status": SKIPPED,
                        "note": f"{why}: expected {fmt(expected, 0)} s, {max(left, 0):.0f} s left",
                    }
                )
                continue
            log.info("training %s", cfg.label)
            rows.append(train_one(cfg, ctx, args.steps, args.warmup_steps, deadline - reserve))
            log.info("-> %s", {k: rows[-1].get(k) for k in ("status", "s_per_step", "note")})
            result["elapsed_s"] = round(time.perf_counter() - started, 1)
            save(args.out, result)

    run_configs(first, decode_reserve)
    if args.no_decode:
        result["decoding"] = {"status": SKIPPED, "note": "--no-decode"}
    else:
        spec = {
            "hf": str(base),
            "work": str(work),
            "manifest": str(train_manifest),
            "device": args.device,
            "utterances": args.decode_utterances,
            "batch_sizes": [8, 1],
            "beam": 5,
            "new_tokens": args.new_tokens,
            "compute_types": args.ct2_compute_types,
            "threads": 4 if args.device == "cuda" else (os.cpu_count() or 2),
        }
        result["decoding"] = run_ct2(spec, deadline - time.perf_counter())
    save(args.out, result)
    run_configs(rest, 0.0)
    if settings is not None:
        result["forecast"] = forecast(rows, settings, auto)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    save(args.out, result)
    print(markdown(result))
    shutil.rmtree(work / "hf-datasets", ignore_errors=True)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--ct2-child":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        out = ct2_child(json.loads(Path(sys.argv[2]).read_text()))
        Path(sys.argv[3]).write_text(json.dumps(out))
        sys.exit(0)
    sys.exit(main())
