"""Training throughput of the fine-tune rule on the demo model, per data loader setting.

    python benchmarks/bench_training.py [--steps 60] [--threads 2] [--workdir DEMO_RUN_DIR]

Runs `whisperforge.train.finetune` with the demo's LoRA settings (config.yaml + the demo
profile, run `lora`) for a fixed number of optimizer steps in each variant below, each in fresh
output and checkpoint directories, with evaluation and checkpointing pushed past the last step so
that only training is timed (`train_runtime` from the HF Trainer; the final evaluation and the
adapter save after it are not timed). Prints train samples/s and the ratio to `no-cache`:
  no-cache        log-mel computed on every visit (FEATURE_CACHE_MAX_ITEMS = 0), no augmentation
  cache           in-memory log-mel cache (the default), no augmentation
  cache+shift     cache + time shift on the cached log-mel (the demo's setting)
  speed+volume    config.yaml's augmentation (Whisper-Finetune's defaults): cache off by necessity
  no-cache/w2     no-cache with dataloader_num_workers 2 (config.yaml's default)
  cache+shift/w2  the demo's setting with 2 workers; workers persist across epochs
                  (dataloader_persistent_workers), each filling and keeping its own cache
Length-grouped batches are not measured: the settings have no such key (and Whisper pads every
log-mel to 30 s, so it would only shorten label padding).

The demo has 50 train utterances: at batch 8 an epoch is 7 steps, so the cache is filled during
the first 7 steps and every later step reads it (60 steps: 53 of 60 from the cache). Inputs are
built once in a temporary directory (demo archive -> manifests, a random-init tiny Whisper of the
demo's size: the same cost per step as the pretrained one), or taken from `--workdir`, a finished
demo run (`results/models/base/hf`, `results/manifests/*.jsonl`). A short untimed run first
pays the one-time costs. With CUDA, fp16 is on (train.fp16: auto) and steps/s and the peak
`torch.cuda.max_memory_allocated()` of each variant are printed as well.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# As scripts/_step.py sets it for the rule: OpenMP threads that spin while waiting slow training
# down badly whenever anything else wants a core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import whisperforge.dataset as dataset  # noqa: E402
from whisperforge.aishell import Filters, build_manifests, extract_archive  # noqa: E402
from whisperforge.config import (  # noqa: E402
    deep_merge,
    run_settings,
    section_defaults,
    validate_config,
)
from whisperforge.manifest import read_manifest, write_jsonl  # noqa: E402
from whisperforge.tinymodel import build_tiny_whisper  # noqa: E402
from whisperforge.train import finetune  # noqa: E402

# config.yaml's filters (the schema's defaults), as the build_manifests rule applies them.
FILTERS = Filters.from_config(section_defaults(ROOT / "schemas/config.schema.yaml", "data"))
NEVER = 10**9  # eval/save interval past any timed run
NO_AUGMENT = {"speed_prob": 0.0, "volume_prob": 0.0, "noise_prob": 0.0, "shift_prob": 0.0}


@dataclass(frozen=True)
class Variant:
    name: str
    cache: bool
    workers: int = 0
    augment: dict[str, Any] = field(default_factory=lambda: dict(NO_AUGMENT))


def demo_config() -> dict[str, Any]:
    """config.yaml overlaid by the demo profile, validated and filled with schema defaults."""
    config: dict[str, Any] = {}
    for path in ("config.yaml", "profiles/demo/demo.yaml"):
        config = deep_merge(config, yaml.safe_load((ROOT / path).read_text(encoding="utf-8")))
    return validate_config(config, ROOT / "schemas/config.schema.yaml")


def config_yaml_augment() -> dict[str, Any]:
    """config.yaml's own `train.augment` (the demo profile turns speed and volume off)."""
    raw = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    return {**raw["train"]["augment"], "shift_prob": 0.0, "noise_prob": 0.0}


def variants(demo_augment: dict[str, Any]) -> list[Variant]:
    return [
        Variant("no-cache", cache=False),
        Variant("cache", cache=True),
        Variant("cache+shift", cache=True, augment=demo_augment),
        Variant("speed+volume", cache=False, augment=config_yaml_augment()),
        Variant("no-cache/w2", cache=False, workers=2),
        Variant("cache+shift/w2", cache=True, workers=2, augment=demo_augment),
    ]


def build_inputs(tmp: Path, config: dict[str, Any]) -> tuple[Path, Path, Path]:
    """Demo archive -> train/dev manifests, and a random-init tiny Whisper of the demo's size."""
    data = tmp / "data"
    extract_archive(
        ROOT / config["data"]["archive"], data / "wav", data / "transcript.txt", data / "wavs.tsv"
    )
    build_manifests(data / "transcript.txt", data / "wavs.tsv", data / "manifests", filters=FILTERS)
    tiny = config["model"]["tiny"]
    dims = ("d_model", "encoder_layers", "decoder_layers", "attention_heads", "ffn_dim")
    with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):  # progress bar
        base = build_tiny_whisper(tmp / "base", seed=0, **{k: tiny[k] for k in dims})
    return base, data / "manifests/train.jsonl", data / "manifests/dev.jsonl"


def absolute_manifest(src: Path, workdir: Path, dst: Path) -> Path:
    """A copy of a workdir's manifest with its audio paths resolved against the workdir."""
    records = read_manifest(src)
    for record in records:
        record["audio"]["path"] = str(workdir / record["audio"]["path"])
    write_jsonl(dst, records)
    return dst


def workdir_inputs(workdir: Path, tmp: Path) -> tuple[Path, Path, Path]:
    manifests = workdir / "results/manifests"
    train = absolute_manifest(manifests / "train.jsonl", workdir, tmp / "train.jsonl")
    dev = absolute_manifest(manifests / "dev.jsonl", workdir, tmp / "dev.jsonl")
    return workdir / "results/models/base/hf", train, dev


@contextlib.contextmanager
def feature_cache(enabled: bool) -> Iterator[None]:
    saved = dataset.FEATURE_CACHE_MAX_ITEMS
    dataset.FEATURE_CACHE_MAX_ITEMS = saved if enabled else 0
    try:
        yield
    finally:
        dataset.FEATURE_CACHE_MAX_ITEMS = saved


def run_variant(
    variant: Variant,
    inputs: tuple[Path, Path, Path],
    settings: dict[str, Any],
    out: Path,
    threads: int,
) -> dict[str, Any]:
    """One `finetune` call; its output (progress bars, logs) goes to `out/log.txt`."""
    settings = {
        **settings,
        "dataloader_num_workers": variant.workers,
        "augment": variant.augment,
    }
    out.mkdir(parents=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with (
        open(out / "log.txt", "w", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        feature_cache(variant.cache),
    ):
        try:
            model, checkpoints = out / "model", out / "checkpoints"
            summary = finetune(*inputs, model, checkpoints, settings, threads=threads)
        except BaseException:
            log.flush()
            sys.__stderr__.write((out / "log.txt").read_text(encoding="utf-8")[-4000:])
            raise
    if torch.cuda.is_available():
        summary["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return summary


def device_line(threads: int) -> str:
    if torch.cuda.is_available():
        return f"device: CUDA {torch.cuda.get_device_name(0)}, fp16 (train.fp16: auto)"
    return (
        f"device: CPU ({os.cpu_count()} cores, {threads} torch threads, fp32), "
        f"python {platform.python_version()}, torch {torch.__version__}"
    )


def report(results: dict[str, dict[str, Any]]) -> None:
    base = results["no-cache"]["train_samples_per_second"]
    cuda = torch.cuda.is_available()
    print(
        f"{'variant':15s} {'train s':>8s} {'samples/s':>10s} {'steps/s':>8s} {'vs no-cache':>12s}"
        + ("  peak MiB" if cuda else "")
    )
    for name, summary in results.items():
        runtime = summary["train_runtime_s"]
        rate = summary["train_samples_per_second"]
        line = (
            f"{name:15s} {runtime:8.1f} {rate:10.2f} {summary['global_step'] / runtime:8.3f} "
            f"{rate / base:11.2f}x"
        )
        if cuda:
            line += f"  {summary['peak_mib']:8.0f}"
        print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per variant")
    parser.add_argument("--batch", type=int, default=None, help="default: the demo's")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (finetune's)")
    parser.add_argument("--workdir", type=Path, default=None, help="a finished demo run")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed run first")
    parser.add_argument("--only", nargs="+", default=None, help="variant names (+ no-cache)")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config = demo_config()
    settings = run_settings(config, "lora")
    settings.update(max_steps=args.steps, eval_steps=NEVER, save_steps=NEVER)
    if args.batch:
        settings["per_device_train_batch_size"] = args.batch
    chosen = variants(settings["augment"])
    if args.only:
        chosen = [v for v in chosen if v.name in {"no-cache", *args.only}]

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        tmp = Path(tmp)
        if args.workdir:
            inputs = workdir_inputs(args.workdir.resolve(), tmp)
        else:
            inputs = build_inputs(tmp, config)
        n_train = len(read_manifest(inputs[1]))
        batch = settings["per_device_train_batch_size"]
        print(device_line(args.threads))
        print(
            f"model: {inputs[0] if args.workdir else 'tiny random-init (demo dims)'}; "
            f"{n_train} train utterances, batch {batch} ({-(-n_train // batch)} steps/epoch), "
            f"{args.steps} steps per variant, LoRA r{settings['lora']['r']}",
            flush=True,
        )
        if args.warmup_steps:
            warm = {**settings, "max_steps": args.warmup_steps}
            run_variant(chosen[0], inputs, warm, tmp / "warmup", args.threads)
        results = {
            v.name: run_variant(v, inputs, settings, tmp / v.name, args.threads) for v in chosen
        }
        report(results)


if __name__ == "__main__":
    main()
