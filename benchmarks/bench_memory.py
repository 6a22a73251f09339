"""Peak training memory at whisper-large-v3-turbo's shape, by the memory model, checked once.

    python benchmarks/bench_memory.py [--label-tokens 64] [--budget-gib 22] [--validate 1,2]

Builds turbo's full shape with random weights (d_model 1280, 32 encoder + 4 decoder layers, 20
heads, ffn 5120, 128 mel bins, 51,866 tokens; no tokenizer needed) and LoRA r32 alpha 64 on
k/q/v/out_proj and fc1/fc2, as config.yaml trains it. `whisperforge.train.memory` measures one
batch-1 forward per precision, fp32 and half (bf16 autocast stands in on a CPU for the GPU's fp16:
the same bytes per element), and models gradient checkpointing from it. Prints the peak for
micro-batch 1, 2, 4, 8 in the four settings, the fixed and per-sample parts, and whether the
default micro-batch 8 with checkpointing in half precision fits `--budget-gib` with `--margin`.

64 labels: an AISHELL sentence has at most ~45 characters, ~1.3 tokens each by Whisper's
tokenizer (measured on the demo's sentences), plus 3 prefix tokens and <|endoftext|>; the decoder
sees 64 of 448 positions, so the label length moves the total little.

`--validate` then runs real fp32 training steps with checkpointing on at those micro-batches in
a fresh process (AdamW's moments allocated first) and compares the growth of its peak RSS above
the loaded model with the model's prediction of the same: the peak less the weights, the moments
and the CUDA workspace allowance (the first step also pays ~10 MB of one-time allocations).
`--d-model` narrows the width for a quick try. Full width needs ~10 GiB of RAM: 3.3 GiB of fp32
weights and one fp32 pass's activations.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import WhisperConfig, WhisperForConditionalGeneration

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from whisperforge.train.memory import (
    GiB,
    MemoryEstimate,
    estimate_training_memory,
    measure_activations,
)

TARGETS = ["k_proj", "q_proj", "v_proj", "out_proj", "fc1", "fc2"]
MICRO_BATCHES = (1, 2, 4, 8)


def turbo(d_model: int) -> WhisperConfig:
    return WhisperConfig(
        d_model=d_model,
        encoder_layers=32,
        decoder_layers=4,
        encoder_attention_heads=20,
        decoder_attention_heads=20,
        encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model,
        num_mel_bins=128,
        vocab_size=51866,
        max_source_positions=1500,
        max_target_positions=448,
    )


def build(d_model: int):
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(turbo(d_model))
    lora = LoraConfig(r=32, lora_alpha=64, lora_dropout=0.05, target_modules=TARGETS, bias="none")
    return get_peft_model(model, lora)


def rss(field: str) -> int:
    lines = Path("/proc/self/status").read_text().splitlines()
    line = next(x for x in lines if x.startswith(field))
    return int(line.split()[1]) * 1024


def real_steps(d_model: int, batches: list[int], label_tokens: int) -> None:
    """Child: peak RSS growth of one fp32 training step with checkpointing, per micro-batch."""
    model = build(d_model)
    model.base_model.model.activation_checkpointing_enable()
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    adamw = torch.optim.AdamW(trainable)
    for p in trainable:  # allocate the moments now: they are resident in a later step
        p.grad = torch.zeros_like(p)
    adamw.step()
    adamw.zero_grad(set_to_none=True)
    for batch in batches:
        features = torch.randn(batch, 128, 3000)
        labels = torch.randint(0, 50000, (batch, label_tokens))
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        baseline = rss("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        start = time.perf_counter()
        model(input_features=features, labels=labels).loss.backward()
        adamw.step()
        adamw.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        print(json.dumps({"batch": batch, "growth": rss("VmHWM") - baseline, "s": seconds}))
        del features, labels


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def g(n: float) -> str:
    return f"{n / GiB:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d-model", type=int, default=1280)
    parser.add_argument("--label-tokens", type=int, default=64)
    parser.add_argument("--budget-gib", type=float, default=22.0)
    parser.add_argument("--margin", type=float, default=0.10)
    parser.add_argument("--validate", default="1,2", help="micro-batches for real steps; '' none")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--real-steps", help=argparse.SUPPRESS)  # the child's mode
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # M_MMAP_THRESHOLD: every block over 64 KiB is mapped and handed back to the OS when freed,
    # so RSS follows live tensors (and a measured pass's memory is really given back).
    ctypes.CDLL("libc.so.6").mallopt(-3, 65536)
    if args.real_steps:
        batches = [int(b) for b in args.real_steps.split(",")]
        return real_steps(args.d_model, batches, args.label_tokens)

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    start = time.perf_counter()
    model = build(args.d_model)
    trainable, total = model.get_nb_trainable_parameters()
    print(f"built in {time.perf_counter() - start:.0f} s: {trainable:,} trainable of {total:,}")
    estimates: dict[str, MemoryEstimate] = {}
    for precision in ("fp32", "bf16"):
        start = time.perf_counter()
        acts = measure_activations(model, precision=precision, label_tokens=args.label_tokens)
        print(f"{precision} forward measured in {time.perf_counter() - start:.0f} s")
        for ckpt in (False, True):
            name = ("fp32" if precision == "fp32" else "half") + (" + checkpointing" * ckpt)
            estimates[name] = estimate_training_memory(
                model,
                precision=precision,
                gradient_checkpointing=ckpt,
                label_tokens=args.label_tokens,
                activations=acts,
            )
    del model, acts
    gc.collect()  # room for the validating child
    print(f"this process's peak RSS: {g(rss('VmHWM'))} GiB")

    print(f"\npeak GiB by the memory model, {args.label_tokens} label tokens, 30 s inputs\n")
    print("| micro-batch | " + " | ".join(estimates) + " |")
    print("| ---: |" + " ---: |" * len(estimates))
    for mb in MICRO_BATCHES:
        print(f"| {mb} | " + " | ".join(g(e.peak(mb)) for e in estimates.values()) + " |")
    rows = {
        "fixed": lambda e: e.fixed_bytes,
        "- weights": lambda e: e.weight_bytes,
        "- LoRA gradients + AdamW": lambda e: e.optimizer_bytes,
        "- shared activations": lambda e: e.shared_bytes,
        "- CUDA workspace (allowance)": lambda e: e.workspace_bytes,
        "per sample": lambda e: e.per_sample_bytes,
    }
    for label, part in rows.items():
        print(f"| {label} | " + " | ".join(g(part(e)) for e in estimates.values()) + " |")

    limit = args.budget_gib * (1 - args.margin) * GiB
    for name in ("half + checkpointing", "half"):
        peak = estimates[name].peak(8)
        verdict = "fits" if peak <= limit else "does NOT fit"
        print(
            f"\n{name}, micro-batch 8: {g(peak)} GiB {verdict} {args.budget_gib:g} GiB with a "
            f"{args.margin:.0%} margin (<= {g(limit)} GiB); largest fitting: "
            f"{estimates[name].largest_fitting(int(limit), 64)}"
        )

    if not args.validate:
        return
    command = [sys.executable, __file__, "--d-model", str(args.d_model), "--threads"]
    command += [str(args.threads), "--label-tokens", str(args.label_tokens)]
    start = time.perf_counter()
    child = subprocess.run(
        [*command, "--real-steps", args.validate], capture_output=True, text=True
    )
    if child.returncode:
        sys.exit(child.stderr[-3000:])
    print(f"\nreal fp32 steps with checkpointing ({time.perf_counter() - start:.0f} s in all):")
    e = estimates["fp32 + checkpointing"]
    resident = e.weight_bytes + e.workspace_bytes + 2 * e.optimizer_bytes // 3
    for line in child.stdout.splitlines():
        step = json.loads(line)
        predicted = e.peak(step["batch"]) - resident
        print(
            f"  micro-batch {step['batch']}: peak RSS growth {g(step['growth'])} GiB, model "
            f"{g(predicted)} GiB, real/model {step['growth'] / predicted:.3f} "
            f"(step {step['s']:.0f} s)"
        )


if __name__ == "__main__":
    main()
