"""Training throughput of the fine-tune rule on the demo model, per data loader setting.

    python benchmarks/bench_training.py [--steps 60] [--threads 2] [--workdir DEMO_RUN_DIR]
        [--loaders old datasets] [--repeats 1] [--baseline-rev REV]

Runs `whisperforge.train.finetune.finetune` with the demo's LoRA settings (config.yaml + the demo
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
Each variant runs with each data path of `--loaders`, interleaved, `--repeats` times (the best
of the repeats counts: on shared cores a run is only ever slowed down):
  datasets        the manifest through Hugging Face `datasets` (whisperforge.data.hfdata),
                  features computed on the fly by `with_transform` (whisperforge.train.dataset),
                  as trained now
  old             the hand-written torch Dataset over `read_manifest` records that it replaced
                  (#13): whisperforge/dataset.py at `--baseline-rev`, read with `git show`,
                  given the same rows, under the same Trainer
and the ratio datasets/old per variant is printed at the end. The model step is the same code
for both, so on shared cores the run-to-run noise of training (+-20 %) can hide the data path:
`--data-epochs N` (default 3) also times the data path alone, per variant and loader: N epochs of
the training set through the Trainer's DataLoader and collator (batch, workers, cache and
augmentation as in training, no model), best of 5 interleaved repeats.
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
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# As scripts/_step.py sets it for the rule: OpenMP threads that spin while waiting slow training
# down badly whenever anything else wants a core.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import whisperforge.train.dataset as dataset  # noqa: E402
import whisperforge.train.finetune as train_module  # noqa: E402
from whisperforge.core.config import (  # noqa: E402
    deep_merge,
    run_settings,
    section_defaults,
    validate_config,
)
from whisperforge.core.manifest import read_manifest, write_jsonl  # noqa: E402
from whisperforge.data.aishell import Filters, build_manifests, extract_archive  # noqa: E402
from whisperforge.model.tinymodel import build_tiny_whisper  # noqa: E402
from whisperforge.train.finetune import finetune  # noqa: E402

# config.yaml's filters (the schema's defaults), as the build_manifests rule applies them.
FILTERS = Filters.from_config(section_defaults(ROOT / "schemas/config.schema.yaml", "data"))
NEVER = 10**9  # eval/save interval past any timed run
NO_AUGMENT = {"speed_prob": 0.0, "volume_prob": 0.0, "noise_prob": 0.0, "shift_prob": 0.0}
# The last commit before training data went through `datasets` (#13).
BASELINE_REV = "fb032c2d6b6fa523feb1a2005eba532f25aa7225"
LOADERS = ("old", "datasets")


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


def baseline_module(rev: str, tmp: Path) -> ModuleType:
    """whisperforge/dataset.py as it was at `rev` (its SpeechDataset), imported from a copy."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:whisperforge/dataset.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = tmp / "baseline_dataset.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("baseline_dataset", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def data_path(loader: str, baseline: ModuleType | None) -> Iterator[None]:
    """Train through `loader`: `datasets` (as the code is) or the old SpeechDataset, which gets
    the rows `datasets` loaded as the list of records `read_manifest` gave it."""
    if loader == "datasets":
        yield
        return

    def old_speech_dataset(data, processor, *, size=None, **options):
        return baseline.SpeechDataset(data.to_list(), processor, **options)

    saved = train_module.speech_dataset
    train_module.speech_dataset = old_speech_dataset
    try:
        yield
    finally:
        train_module.speech_dataset = saved


@contextlib.contextmanager
def feature_cache(enabled: bool, baseline: ModuleType | None) -> Iterator[None]:
    modules = [dataset] + ([baseline] if baseline else [])
    saved = dataset.FEATURE_CACHE_MAX_ITEMS
    for module in modules:
        module.FEATURE_CACHE_MAX_ITEMS = saved if enabled else 0
    try:
        yield
    finally:
        for module in modules:
            module.FEATURE_CACHE_MAX_ITEMS = saved


def run_variant(
    variant: Variant,
    inputs: tuple[Path, Path, Path],
    settings: dict[str, Any],
    out: Path,
    threads: int,
    loader: str = "datasets",
    baseline: ModuleType | None = None,
) -> dict[str, Any]:
    """One `finetune` call; its output (progress bars, logs) goes to `out/log.txt`."""
    settings = {
        **settings,
        "dataloader_num_workers": variant.workers,
        "augment": {**settings["augment"], **variant.augment},  # the variant's probabilities
    }
    out.mkdir(parents=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with (
        open(out / "log.txt", "w", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
        feature_cache(variant.cache, baseline),
        data_path(loader, baseline),
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


def data_path_rate(
    variant: Variant,
    inputs: tuple[Path, Path, Path],
    settings: dict[str, Any],
    epochs: int,
    loader: str,
    baseline: ModuleType | None,
) -> float:
    """Samples/s of the data path alone: `epochs` passes over the training set, batched and
    collated as the Trainer does (shuffled, `settings`' batch and the variant's workers)."""
    from transformers import WhisperProcessor

    from whisperforge.data.hfdata import load_manifest
    from whisperforge.train.dataset import Augment, SpeechCollator

    processor = WhisperProcessor.from_pretrained(inputs[0])
    augment = {**settings["augment"], **variant.augment}
    with feature_cache(variant.cache, baseline), data_path(loader, baseline):
        data = load_manifest(inputs[1])
        train_set = train_module.speech_dataset(
            data,
            processor,
            timestamps=settings["timestamps"],
            augment=Augment(**augment),
            seed=settings["seed"],
            feature_padding=settings["feature_padding"],
            size=len(data),
        )
        batches = torch.utils.data.DataLoader(
            train_set,
            batch_size=settings["per_device_train_batch_size"],
            shuffle=True,
            collate_fn=SpeechCollator(
                processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
                processor.tokenizer.pad_token_id,
            ),
            num_workers=variant.workers,
            persistent_workers=variant.workers > 0,
        )
        start = time.perf_counter()
        samples = sum(len(batch["labels"]) for _ in range(epochs) for batch in batches)
        return samples / (time.perf_counter() - start)


def device_line(threads: int) -> str:
    if torch.cuda.is_available():
        return f"device: CUDA {torch.cuda.get_device_name(0)}, fp16 (train.fp16: auto)"
    return (
        f"device: CPU ({os.cpu_count()} cores, {threads} torch threads, fp32), "
        f"python {platform.python_version()}, torch {torch.__version__}"
    )


def report(results: dict[tuple[str, str], dict[str, Any]]) -> None:
    """One line per (variant, loader), then datasets/old per variant where both ran."""
    cuda = torch.cuda.is_available()
    print(
        f"{'variant':15s} {'loader':9s} {'train s':>8s} {'samples/s':>10s} {'steps/s':>8s} "
        f"{'vs no-cache':>12s}" + ("  peak MiB" if cuda else "")
    )
    for (name, loader), summary in results.items():
        base = results[("no-cache", loader)]["train_samples_per_second"]
        runtime = summary["train_runtime_s"]
        rate = summary["train_samples_per_second"]
        line = (
            f"{name:15s} {loader:9s} {runtime:8.1f} {rate:10.2f} "
            f"{summary['global_step'] / runtime:8.3f} {rate / base:11.2f}x"
        )
        if cuda:
            line += f"  {summary['peak_mib']:8.0f}"
        print(line, flush=True)
    names = dict.fromkeys(name for name, _ in results)
    pairs = [n for n in names if (n, "old") in results and (n, "datasets") in results]
    if pairs:
        print(f"\n{'variant':15s} {'old':>10s} {'datasets':>10s} {'datasets/old':>13s}")
    for name in pairs:
        old = results[(name, "old")]["train_samples_per_second"]
        new = results[(name, "datasets")]["train_samples_per_second"]
        print(f"{name:15s} {old:10.2f} {new:10.2f} {new / old:12.3f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps per variant")
    parser.add_argument("--batch", type=int, default=None, help="default: the demo's")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (finetune's)")
    parser.add_argument("--workdir", type=Path, default=None, help="a finished demo run")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed run first")
    parser.add_argument("--only", nargs="+", default=None, help="variant names (+ no-cache)")
    parser.add_argument("--loaders", nargs="+", choices=LOADERS, default=list(LOADERS))
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant and loader")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="the old loader's commit")
    parser.add_argument("--data-epochs", type=int, default=3, help="0: no data-path timing")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config = demo_config()
    settings = run_settings(config, "lora")
    settings.update(
        max_steps=args.steps,
        eval_steps=NEVER,
        save_steps=NEVER,
        streaming=config["data"]["streaming"],  # as rules/train.smk passes the data key
        report_to=[],  # TensorBoard's writer is not the data path under test
    )
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
        baseline = baseline_module(args.baseline_rev, tmp) if "old" in args.loaders else None
        if "old" in args.loaders:
            print(f"old loader: whisperforge/dataset.py at {args.baseline_rev[:10]}", flush=True)
        if args.warmup_steps:
            warm = {**settings, "max_steps": args.warmup_steps}
            for loader in args.loaders:
                out = tmp / f"warmup-{loader}"
                run_variant(chosen[0], inputs, warm, out, args.threads, loader, baseline)
        results: dict[tuple[str, str], dict[str, Any]] = {}
        for variant in chosen:
            for repeat in range(args.repeats):
                for loader in args.loaders:  # interleaved: drifting load hits both alike
                    out = tmp / f"{variant.name.replace('/', '-')}-{loader}-{repeat}"
                    summary = run_variant(
                        variant, inputs, settings, out, args.threads, loader, baseline
                    )
                    best = results.get((variant.name, loader))
                    rate = summary["train_samples_per_second"]
                    if best is None or rate > best["train_samples_per_second"]:
                        results[(variant.name, loader)] = summary
        report(results)
        if args.data_epochs and len(args.loaders) == 2:
            print(f"\ndata path alone ({args.data_epochs} epochs, best of 5), samples/s:")
            print(f"{'variant':15s} {'old':>10s} {'datasets':>10s} {'datasets/old':>13s}")
            for variant in chosen:
                rates: dict[str, float] = dict.fromkeys(LOADERS, 0.0)
                for _ in range(5):
                    for loader in LOADERS:
                        rate = data_path_rate(
                            variant, inputs, settings, args.data_epochs, loader, baseline
                        )
                        rates[loader] = max(rates[loader], rate)
                old, new = rates["old"], rates["datasets"]
                print(f"{variant.name:15s} {old:10.1f} {new:10.1f} {new / old:12.3f}x", flush=True)


if __name__ == "__main__":
    main()
