"""Training throughput and peak memory on a real Whisper: whisperforge's finetune against
Whisper-Finetune's finetune.py, the script its users run today.

Both train LoRA (r32, alpha 64, dropout 0.05, all six projections: Whisper-Finetune's LoraConfig
and config.yaml's) on the imported whisper-base of a bench_forgetting workdir
(`results/models/base/hf`), on that workdir's demo train manifest, at the same micro-batch,
learning rate, warm-up and number of optimizer steps, fp32 on the CPU, no augmentation, no data
loader workers, gradient checkpointing on (Whisper-Finetune's `prepare_model_for_kbit_training`
turns it on; config.yaml has it on), no evaluation or checkpoint inside the timed steps. Each runs
in its own process under `/usr/bin/time` (peak resident memory); throughput is the Trainer's own
`train_samples_per_second` of each. One run each, alternating; on shared cores the ratio is the
figure to read, not the absolute rates.

Whisper-Finetune is read from a checkout (`--whisper-finetune`, e.g. `git archive` of
github.com/yeyupiaoling/Whisper-Finetune: finetune.py and utils/), run by a Python that has its
requirements (`--wf-python`: librosa and bitsandbytes beside torch/transformers/peft).

    python benchmarks/bench_training_real.py --workdir /tmp/forget --whisper-finetune /tmp/wf \
        --wf-python /tmp/wfvenv/bin/python [--epochs 1] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

BATCH = 8
LEARNING_RATE = 1e-3
WARMUP_STEPS = 1


def whisperforge_settings(steps: int) -> dict[str, Any]:
    """config.yaml's run `lora`, set as Whisper-Finetune's finetune.py is run here."""
    import yaml
    from bench_training import NEVER, NO_AUGMENT

    from whisperforge.core.config import deep_merge, run_settings, validate_config

    raw = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    overlay = {
        "train": {
            "device": "cpu",
            "precision": "fp32",
            "max_steps": steps,
            "per_device_train_batch_size": BATCH,
            "learning_rate": LEARNING_RATE,
            "warmup_steps": WARMUP_STEPS,
            "dataloader_num_workers": 0,
            "gradient_checkpointing": True,
            "eval_steps": NEVER,
            "save_steps": NEVER,
            "logging_steps": NEVER,
            "report_to": [],
            "augment": NO_AUGMENT,
        }
    }
    config = validate_config(deep_merge(raw, overlay), ROOT / "schemas/config.schema.yaml")
    return {**run_settings(config, "lora"), "streaming": False, "guard": None}


def run_whisperforge(base: Path, train: Path, dev: Path, out: Path, steps: int) -> dict:
    """In this process (the parent measures it): whisperforge.train.finetune.finetune."""
    from whisperforge.train.finetune import finetune

    summary = finetune(
        base, train, dev, out / "model", out / "checkpoints", whisperforge_settings(steps)
    )
    return {"samples_per_s": summary["train_samples_per_second"], "steps": summary["global_step"]}


def whisper_finetune_base(hf_dir: Path, out: Path) -> Path:
    """A copy of the base that Whisper-Finetune's transformers (its pin: 4.51) can load: its
    WhisperProcessor reads the slow tokenizer's vocab.json, merges.txt and added_tokens.json,
    which a transformers-5 folder keeps only inside tokenizer.json (the same BPE, written out),
    and it cannot read transformers 5's processor_config.json (left out)."""
    shutil.copytree(hf_dir, out, ignore=shutil.ignore_patterns("processor_config.json"))
    tokenizer = json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8"))
    bpe = tokenizer["model"]
    (out / "vocab.json").write_text(json.dumps(bpe["vocab"], ensure_ascii=False), "utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
    added = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    (out / "added_tokens.json").write_text(json.dumps(added, ensure_ascii=False), "utf-8")
    return out


def whisper_finetune_command(
    repo: Path, python: str, base: Path, train: Path, dev: Path, out: Path, epochs: int
) -> list[str]:
    flags = {
        "base_model": base,
        "train_data": train,
        "test_data": dev,
        "output_dir": out,
        "use_adalora": False,
        "fp16": False,
        "num_train_epochs": epochs,
        "per_device_train_batch_size": BATCH,
        "learning_rate": LEARNING_RATE,
        "warmup_steps": WARMUP_STEPS,
        "num_workers": 0,
        "eval_steps": 10**9,
        "save_steps": 10**9,
        "logging_steps": 10**9,
        "local_files_only": True,
    }
    return [python, str(repo / "finetune.py"), *(f"--{k}={v}" for k, v in flags.items())]


def whisper_finetune_result(out: Path) -> dict:
    state = json.loads(next(out.glob("*/trainer_state.json")).read_text())
    final = next(e for e in reversed(state["log_history"]) if "train_samples_per_second" in e)
    return {"samples_per_s": final["train_samples_per_second"], "steps": state["global_step"]}


def measured(command: list[str], cwd: Path) -> int:
    """Run `command` under /usr/bin/time; its peak resident memory in MiB."""
    peak = cwd / "peak_kib.txt"
    log = cwd / "log.txt"
    with log.open("w") as f:
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", str(peak), *command],
            cwd=cwd,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
        )
    if done.returncode:
        sys.exit(f"{command[1]} failed; its log: {log}\n{log.read_text()[-3000:]}")
    return round(int(peak.read_text().split()[-1]) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a bench_forgetting workdir")
    parser.add_argument("--whisper-finetune", type=Path, help="its checkout (finetune.py, utils/)")
    parser.add_argument("--wf-python", default=sys.executable)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)  # base train dev out steps
    args = parser.parse_args()
    if args.worker:
        base, train, dev, out, steps = args.worker
        result = run_whisperforge(Path(base), Path(train), Path(dev), Path(out), int(steps))
        (Path(out) / "result.json").write_text(json.dumps(result))
        return

    from bench_training import absolute_manifest

    work = args.workdir.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bench-training-real-"))
    base = work / "results/models/base/hf"
    train = absolute_manifest(work / "results/manifests/train.jsonl", work, tmp / "train.jsonl")
    dev = absolute_manifest(work / "results/manifests/dev.jsonl", work, tmp / "dev.jsonl")
    wf_base = whisper_finetune_base(base, tmp / "whisper-finetune-base" / "hf")
    n_train = sum(1 for _ in train.open())
    steps = args.epochs * math.ceil(n_train / BATCH)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU fp32;"
        f" whisper-base, {n_train} clips, batch {BATCH}, {steps} steps"
    )
    print("trainer\trun\tsamples/s\tsteps\tpeak RSS MiB")
    rates: dict[str, list[float]] = {"Whisper-Finetune": [], "whisperforge": []}
    for repeat in range(args.repeats):
        for name in rates:
            out = tmp / f"{name}-{repeat}"
            out.mkdir()
            if name == "whisperforge":
                me = [sys.executable, __file__, "--workdir", str(work), "--worker"]
                peak = measured([*me, str(base), str(train), str(dev), str(out), str(steps)], out)
                result = json.loads((out / "result.json").read_text())
            else:
                command = whisper_finetune_command(
                    args.whisper_finetune.resolve(), args.wf_python, wf_base, train, dev,
                    out / "output", args.epochs,
                )  # fmt: skip
                peak = measured(command, out)
                result = whisper_finetune_result(out / "output")
            rates[name].append(result["samples_per_s"])
            print(f"{name}\t{repeat}\t{result['samples_per_s']:.3f}\t{result['steps']}\t{peak}")
    best = {name: max(r) for name, r in rates.items()}
    ratio = best["whisperforge"] / best["Whisper-Finetune"]
    print(f"whisperforge / Whisper-Finetune samples/s (best of {args.repeats}): {ratio:.2f}x")


if __name__ == "__main__":
    main()
