"""The real config.yaml at whisper-large-v3-turbo's FULL shape, through the real rules, on the CPU.

    python benchmarks/bench_realshape.py [--workdir DIR] [--steps 2] [--shape large-v3-turbo]

Builds a random-weight model of the published shape (d_model 1280, 32 + 4 layers, 20 heads,
ffn 5120, 128 mel bins, vocabulary 51,866; `whisperforge.model.tinymodel.build_published_shape`) and
runs the workflow on it with config.yaml as it is, overridden only in the base model, the data
(the demo archive cut to one speaker per split: 8 train, 2 dev, 2 test utterances, as in
tests/test_realshape.py), `train.max_steps` and `train.device: cpu`: micro-batch 8, gradient
checkpointing, speed/volume augmentation, LoRA r32 on k/q/v/out_proj/fc1/fc2, float16 export,
beam 5. The targets are the `lora` run's merged model, its CTranslate2 export and its test-split
CER. Prints, per stage, the wall time and the peak resident memory that Snakemake's `benchmark:`
directive measured, and the training facts (steps, micro-batch, seconds per optimizer step).
The tests run the same with d_model 80 (tests/test_realshape.py).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import copy_workflow, trimmed_demo_archive  # noqa: E402

from whisperforge.model.tinymodel import build_published_shape  # noqa: E402

KEEP = {"S0002": 8, "S0724": 2, "S0764": 2}  # speaker -> utterances (train, dev, test)
STAGES = ("finetune_lora", "merge_lora", "export_ct2_lora", "transcribe_lora_test")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    parser.add_argument("--shape", default="large-v3-turbo")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps")
    parser.add_argument("--d-model", type=int, help="narrow the width (default: the real one)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-realshape-"))
    copy_workflow(workdir)
    base = workdir / f"{args.shape}-random"
    t0 = time.perf_counter()
    if not (base / "config.json").is_file():
        build_published_shape(base, args.shape, d_model=args.d_model)
    build_s = time.perf_counter() - t0
    archive = trimmed_demo_archive(workdir / "data_aishell.tgz", KEEP)
    overlay = {
        "model": {"base": str(base)},
        "data": {
            "archive": str(archive),
            "md5": hashlib.md5(archive.read_bytes()).hexdigest(),
            "size": archive.stat().st_size,
        },
        "train": {"device": "cpu", "max_steps": args.steps},
        "runs": {"lora": {}},
    }
    (workdir / "bench.yaml").write_text(yaml.safe_dump(overlay))
    targets = ["results/models/lora/ct2-float16", "results/eval/lora/test/cer.json"]
    command = [sys.executable, "-m", "snakemake", "--cores", str(os.cpu_count()), *targets]
    command += ["--configfile", "config.yaml", "bench.yaml", "--resources", "gpu=1"]
    t0 = time.perf_counter()
    proc = subprocess.run(command, cwd=workdir, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    total_s = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}); logs under {workdir}/logs")

    print(f"\n{args.shape} (d_model {args.d_model or 'full'}), {args.steps} optimizer steps")
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; model built in {build_s:.0f} s")
    print(f"{'stage':<24}{'wall s':>10}{'peak RSS GB':>14}")
    for stage in STAGES:
        with open(workdir / f"benchmarks/out/{stage}.tsv") as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        print(f"{stage:<24}{float(row['s']):>10.0f}{float(row['max_rss']) / 1024:>14.1f}")
    print(f"{'whole DAG':<24}{total_s:>10.0f}")
    summary = json.loads(
        (workdir / "results/models/lora/adapter/training_summary.json").read_text()
    )
    per_step = summary["train_runtime_s"] / summary["global_step"]
    print(
        f"training: {summary['global_step']} steps x micro-batch {summary['micro_batch']} "
        f"(accumulation {summary['gradient_accumulation']}), {summary['precision']}, "
        f"checkpointing {summary['gradient_checkpointing']}: {per_step:.0f} s per optimizer step; "
        f"dev evaluation of {summary['eval_utterances']} utterances in "
        f"{summary['final_eval']['eval_runtime']:.0f} s"
    )
    cer = json.loads((workdir / "results/eval/lora/test/cer.json").read_text())
    print(f"test split: {cer['n_utts']} utterances decoded (random weights: CER {cer['cer']:.2f})")


if __name__ == "__main__":
    main()
