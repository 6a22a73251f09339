"""Checkpoint averaging against forgetting, on the real whisper-base runs of bench_forgetting.

icefall decodes the average of the last N epochs' models (`--avg N`); this measures what the same
does to a LoRA fine-tune of a real pretrained Whisper: the mean of the weight updates of
several of a run's saved checkpoints (`whisperforge.model.merge.merge_adapter` given several
adapters), merged, exported to CTranslate2 float16 and decoded greedy with faster-whisper, on the
target set (the demo's test voices) and the general set (bench_forgetting's `eval.general`). The
same decoding as the DAG's cer.json files (whisperforge.decode.transcribe and
whisperforge.metrics.score), so the rows compare with its table in benchmarks/RESULTS.md.

Variants per run: the final checkpoint alone, the average of the last 2, 3 and all saved
checkpoints, the guard's checkpoint-best alone and averaged with the two before it.

    python benchmarks/bench_averaging.py --workdir /tmp/forget --runs lora lr3e-4
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from whisperforge.core.options import DecodeOptions  # noqa: E402
from whisperforge.decode.transcribe import transcribe_manifest  # noqa: E402
from whisperforge.metrics.score import score_file  # noqa: E402
from whisperforge.model.export import export_ct2  # noqa: E402
from whisperforge.model.merge import merge_adapter  # noqa: E402


def saved_steps(checkpoints: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*"))


def variants(steps: list[int], best: int) -> dict[str, list[int]]:
    """Variant name -> the steps averaged (one step: that checkpoint alone)."""
    before_best = [s for s in steps if s <= best]
    return {
        f"final (step {steps[-1]})": steps[-1:],
        "average of the last 2": steps[-2:],
        "average of the last 3": steps[-3:],
        f"average of all {len(steps)}": steps,
        f"checkpoint-best (step {best})": [best],
        "checkpoint-best and the 2 before": before_best[-3:],
    }


def cer_of(ct2_dir: Path, manifest: Path, out: Path, options: DecodeOptions) -> float:
    transcribe_manifest(ct2_dir, manifest, out, options, progress=False, device="cpu")
    return score_file(out)[0]["cer"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a bench_forgetting workdir")
    parser.add_argument("--runs", nargs="+", default=["lora", "lr3e-4"])
    parser.add_argument("--general", default="realzh", help="the eval.sets name of general speech")
    args = parser.parse_args()
    work = args.workdir.resolve()
    os.chdir(work)  # the manifests name their audio relative to the workflow's folder
    options = DecodeOptions(
        language="zh", task="transcribe", beam_size=1, batch_size=8, compute_type="auto",
        vad_filter=False,
    )  # fmt: skip
    sets = {
        "target": work / "results/manifests/test.jsonl",
        "general": next(work.glob(f"results/manifests/sets/{args.general}.jsonl")),
    }
    base = work / "results/models/base/hf"
    print(f"machine: {platform.processor() or platform.machine()}; greedy, CT2 float16 on CPU")
    print("run\tvariant\tsteps\ttarget CER %\tgeneral CER %")
    for run in args.runs:
        checkpoints = work / f"results/checkpoints/{run}"
        summary = json.loads(
            (work / f"results/models/{run}/adapter/training_summary.json").read_text()
        )
        best = int(summary["best_checkpoint"].split("-")[1])
        for name, steps in variants(saved_steps(checkpoints), best).items():
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="avg-") as tmp:
                tmp = Path(tmp)
                adapters = [checkpoints / f"checkpoint-{s}" for s in steps]
                merge_adapter(base, adapters, tmp / "merged")
                export_ct2(tmp / "merged", tmp / "ct2", quantization="float16")
                cers = {
                    key: 100 * cer_of(tmp / "ct2", manifest, tmp / f"{key}.jsonl", options)
                    for key, manifest in sets.items()
                }
            shown = "+".join(map(str, steps))
            print(
                f"{run}\t{name}\t{shown}\t{cers['target']:.2f}\t{cers['general']:.2f}"
                f"\t({time.perf_counter() - start:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
