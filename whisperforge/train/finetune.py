"""Fine-tune Whisper: LoRA/AdaLoRA adapters (a run) or all weights (the demo's base pretraining).

`finetune` is the step: it checks the settings against the machine (device, precision, 8-bit,
the batch split over `train.gpus` x `train.nodes` processes, the `report_to` packages), prepares
the resumable checkpoint directory (checkpoints.py), then trains in this process or in
data-parallel processes started with torchrun (launch.py: `python -m whisperforge.train.finetune
JOB.json` in each, on this machine or on each node of a SLURM job).
Before training on a GPU the memory model (memory.py) checks that the micro-batch fits, or picks
it (`auto`). The data comes through Hugging Face `datasets` (dataset.py): Arrow-backed, or
streamed (`settings.streaming`, from config `data.streaming`). Training curves go to
`report_to` (TensorBoard: `<out_dir>/../tensorboard/`, i.e. `results/models/<run>/tensorboard/`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import random
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from safetensors import SafetensorError
from transformers import (
    Seq2SeqTrainingArguments,
    TrainerCallback,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    set_seed,
)

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.files import atomic_path, free_bytes, human_bytes, is_full_disk, write_json
from whisperforge.data.hfdata import ManifestScan, load_manifest, scan_manifest
from whisperforge.train.checkpoints import fingerprint, prepare_checkpoint_dir
from whisperforge.train.dataset import (
    Augment,
    SpeechCollator,
    rank_share,
    shared_epoch,
    speech_dataset,
)
from whisperforge.train.divergence import DivergenceStop, TrainingDiverged
from whisperforge.train.gpu import pick_device, pick_precision
from whisperforge.train.guard import Guard, GuardedTrainer, cer_metric, guard_outcome
from whisperforge.train.launch import launch
from whisperforge.train.loss import token_mean_loss
from whisperforge.train.settings import TrainSettings

log = logging.getLogger(__name__)

# train.report_to -> the pip package its Trainer integration needs.
REPORTERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


@dataclass
class TrainingPlan:
    """How a run trains on this machine, decided once before any process starts."""

    device: str  # cuda | cpu
    precision: str  # fp32 | fp16 | bf16
    world_size: int  # data-parallel processes in all (train.gpus x train.nodes)
    micro_batch: int | None  # per process; None: `auto`, picked by the memory preflight
    accumulation: int
    effective_batch: int  # micro_batch x accumulation x world_size, as configured

    def settle(self, micro_batch: int) -> None:
        self.micro_batch = micro_batch
        self.accumulation = self.effective_batch // (micro_batch * self.world_size)


def batch_plan(settings: TrainSettings) -> tuple[int | None, int, int]:
    """(micro-batch per process or None for auto, accumulation, effective batch) for the run.

    The effective batch is the single-process run's (micro-batch x accumulation, or
    `effective_batch_size` with an `auto` micro-batch); N processes split it, so the optimizer
    steps and the learning-rate schedule stay those of one process.
    """
    micro, accum, world = (
        settings.per_device_train_batch_size,
        settings.gradient_accumulation_steps,
        settings.world_size,
    )
    effective = settings.effective_batch_size
    if micro == "auto":
        if effective is None:
            raise WhisperforgeError(
                "config train.effective_batch_size: required when "
                "train.per_device_train_batch_size is auto (the batch the optimizer sees)"
            )
        if effective % world:
            raise WhisperforgeError(
                f"config train.gpus: {world} processes in all cannot split "
                f"train.effective_batch_size "
                f"{effective} evenly"
            )
        return None, 1, effective
    if effective is not None and effective != micro * accum:
        raise WhisperforgeError(
            f"config train.effective_batch_size: {effective}, but per_device_train_batch_size "
            f"{micro} x gradient_accumulation_steps {accum} = {micro * accum}"
        )
    effective = micro * accum
    if accum % world == 0:
        return micro, accum // world, effective
    if micro % world == 0 and accum == 1:
        return micro // world, 1, effective
    raise WhisperforgeError(
        f"config train.gpus: {world} processes in all cannot split the effective batch {effective} "
        f"(per_device_train_batch_size {micro} x gradient_accumulation_steps {accum}) evenly; "
        "make gradient_accumulation_steps a multiple of gpus"
    )


def make_plan(settings: TrainSettings, base_dir: Path) -> TrainingPlan:
    cuda = torch.cuda.is_available()
    device = pick_device(settings.device, base_dir, cuda_available=cuda)
    bf16 = cuda and torch.cuda.is_bf16_supported()
    precision = pick_precision(settings.precision, settings.fp16, device, bf16_supported=bf16)
    if settings.use_8bit:
        if device != "cuda":
            raise WhisperforgeError("config train.use_8bit: needs a CUDA device (bitsandbytes)")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            raise WhisperforgeError(
                "config train.use_8bit: bitsandbytes is not installed "
                "(pip install 'whisperforge[8bit]', or the train env)"
            ) from e
    if device == "cuda" and torch.cuda.device_count() < settings.gpus:
        raise WhisperforgeError(
            f"config train.gpus: {settings.gpus}, but {torch.cuda.device_count()} CUDA device(s) "
            "visible"
        )
    micro, accum, effective = batch_plan(settings)
    return TrainingPlan(device, precision, settings.world_size, micro, accum, effective)


def optimizer_steps(n_examples: int, settings: TrainSettings, effective_batch: int) -> int:
    """How many optimizer steps the run will take (AdaLoRA's schedule needs the real number)."""
    if settings.max_steps > 0:
        return settings.max_steps
    return math.ceil(math.ceil(n_examples / effective_batch) * settings.num_train_epochs)


def adalora_schedule(total_steps: int) -> dict[str, int]:
    """Rank budget schedule: warm up over the first 10 %, budget, settle over the last 20 %.

    Floors, not a minimum of one step: PEFT needs `tinit < total_step - tfinal`, which a 2-step
    run with one warm-up and one final step would break; a short run budgets from the start.
    """
    return {
        "tinit": total_steps // 10,
        "tfinal": total_steps // 5,
        "deltaT": max(1, total_steps // 100),
    }


def eval_sample(data: datasets.Dataset, limit: int | None, seed: int) -> datasets.Dataset:
    """A fixed, seeded sample of the dev set (in manifest order), for evaluation in training."""
    if limit is None or len(data) <= limit:
        return data
    return data.select(sorted(random.Random(seed).sample(range(len(data)), limit)))


def check_reporters(report_to: list[str]) -> None:
    """Every `train.report_to` integration is known and its package installed, before training."""
    for name in report_to:
        if name not in REPORTERS:
            raise WhisperforgeError(
                f"config train.report_to: {name!r} is not one of {', '.join(REPORTERS)}"
            )
        if importlib.util.find_spec(REPORTERS[name]) is None:
            raise WhisperforgeError(
                f"config train.report_to: {name} needs the {REPORTERS[name]} package, which is "
                f"not installed (pip install {REPORTERS[name]})"
            )


def tensorboard_dir(out_dir: Path) -> Path:
    """Event files beside the step's declared output (which Snakemake deletes on failure):
    `results/models/<run>/tensorboard/` for `results/models/<run>/adapter`."""
    return out_dir.parent / "tensorboard"


@contextlib.contextmanager
def tensorboard_logging_dir(path: Path) -> Iterator[None]:
    """transformers 5's TensorBoardCallback takes its directory from TENSORBOARD_LOGGING_DIR when
    it is built (with the Trainer); without it, `<output_dir>/runs/<time>_<host>`."""
    saved = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(path)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TENSORBOARD_LOGGING_DIR"]
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = saved


def load_base(base_dir: Path, settings: TrainSettings) -> tuple[Any, Any]:
    if not (base_dir / "config.json").is_file():
        raise WhisperforgeError(f"{base_dir}: not a Whisper model directory (no config.json)")
    processor = WhisperProcessor.from_pretrained(base_dir)
    kwargs: dict[str, Any] = {}
    if settings.use_8bit:
        from transformers import BitsAndBytesConfig

        # One device per process: device_map "auto" would spread a DDP rank over every GPU.
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        kwargs = {
            "quantization_config": BitsAndBytesConfig(load_in_8bit=True),
            "device_map": {"": local_rank},
        }
    model = WhisperForConditionalGeneration.from_pretrained(base_dir, **kwargs)
    processor.tokenizer.set_prefix_tokens(
        language=settings.language,
        task=settings.task,
        predict_timestamps=settings.timestamps,
    )
    model.config.forced_decoder_ids = None
    model.generation_config.forced_decoder_ids = None
    return processor, model


def add_adapters(model: Any, settings: TrainSettings, total_steps: int) -> Any:
    from peft import AdaLoraConfig, LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if settings.use_8bit:
        # Checkpointing is the Trainer's to turn on (training_arguments), not PEFT's.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = settings.lora
    if settings.use_adalora:
        ada = settings.adalora
        config = AdaLoraConfig(
            init_r=ada["init_r"],
            target_r=ada["target_r"],
            lora_alpha=ada["alpha"],
            lora_dropout=ada["dropout"],
            target_modules=lora["target_modules"],
            total_step=total_steps,
            **adalora_schedule(total_steps),
        )
    else:
        config = LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=lora["target_modules"],
            bias="none",
        )
    model = get_peft_model(model, config)
    trainable, total = model.get_nb_trainable_parameters()
    log.info(
        "adapters: %d trainable of %d parameters (%.2f %%)",
        trainable,
        total,
        100 * trainable / total,
    )
    return model


class AdaLoraBudget(TrainerCallback):
    """AdaLoRA reallocates ranks from the gradients, after backward and before the update.

    Under fp16 an overflowed step has inf/NaN gradients; the optimizer skips it, and so must the
    rank allocator, whose importance averages would otherwise stay NaN for the rest of the run.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        norms = [
            p.grad.detach().float().norm() for p in self.model.parameters() if p.grad is not None
        ]
        if norms and not torch.isfinite(torch.stack(norms)).all():
            log.warning("step %d: non-finite gradients; rank budget not updated", state.global_step)
            return
        self.model.base_model.update_and_allocate(state.global_step)


class EpochOfAugmentation(TrainerCallback):
    """Tells the training set's transform, and its DataLoader workers, which epoch begins: the
    augmentation draws are keyed by it, so a resumed run draws what an uninterrupted one does."""

    def __init__(self, epoch: torch.Tensor) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, args, state, control, **kwargs):
        # state.epoch: the epochs done, fractional when resumed mid-epoch
        self.epoch.fill_(math.floor((state.epoch or 0) + 1e-6))


class CurrentIntervals(TrainerCallback):
    """A resumed run logs, evaluates and saves at the intervals configured now.

    The Trainer restores them from the checkpoint's trainer_state.json; they cannot change the
    weights, so a changed `eval_steps` or `save_steps` resumes (checkpoints.py) and applies here.
    """

    def on_train_begin(self, args, state, control, **kwargs):
        state.logging_steps, state.eval_steps = args.logging_steps, args.eval_steps
        state.save_steps = args.save_steps


def training_arguments(
    settings: TrainSettings, plan: TrainingPlan, checkpoints: Path, threads: int
) -> Seq2SeqTrainingArguments:
    if settings.save_steps % settings.eval_steps:
        raise WhisperforgeError(
            "config train.save_steps: must be a multiple of train.eval_steps "
            f"({settings.save_steps} vs {settings.eval_steps})"
        )
    by_cer = settings.metric_for_best == "cer"
    # With the forgetting guard, the best checkpoint is ranked by the guarded metric (guard.py).
    best_metric = f"guarded_{settings.metric_for_best}" if settings.guard else None
    torch.set_num_threads(max(1, threads))
    return Seq2SeqTrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=plan.micro_batch or 1,  # auto: set by the preflight
        per_device_eval_batch_size=settings.per_device_eval_batch_size,
        gradient_accumulation_steps=plan.accumulation,
        # transformers 5's name for gradient checkpointing. Non-reentrant checkpointing needs no
        # input gradients (frozen embeddings under LoRA) and works under DDP.
        activation_checkpointing=settings.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        learning_rate=settings.learning_rate,
        warmup_steps=settings.warmup_steps,
        num_train_epochs=settings.num_train_epochs,
        max_steps=settings.max_steps,
        logging_steps=settings.logging_steps,
        # NaN/inf losses logged as they are (the default averages them away), for TensorBoard
        # and for DivergenceStop.
        logging_nan_inf_filter=False,
        eval_strategy="steps",
        eval_steps=settings.eval_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        metric_for_best_model=best_metric or settings.metric_for_best,
        greater_is_better=False,
        predict_with_generate=by_cer,
        generation_max_length=225,
        fp16=plan.precision == "fp16",
        bf16=plan.precision == "bf16",
        torch_compile=settings.use_compile,
        seed=settings.seed,
        data_seed=settings.seed,
        dataloader_num_workers=settings.dataloader_num_workers,
        # Workers start anew each epoch: a persistent loader draws its workers' seed from the
        # main RNG once, at its first epoch, which a resumed run reaches at a later one, so its
        # dropout masks would differ from an uninterrupted run's (the cost: workers restart, and
        # their in-memory log-mel caches, dataset.py, last one epoch).
        dataloader_persistent_workers=False,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=list(settings.report_to),
        use_cpu=plan.device == "cpu",
        ddp_backend=("nccl" if plan.device == "cuda" else "gloo") if plan.world_size > 1 else None,
        ddp_find_unused_parameters=False,
        # The loss is a token mean over the whole step (loss.py): the token count is summed over
        # the processes, and the Trainer scales each process's loss by their number for DDP's mean.
        average_tokens_across_devices=True,
        # A streamed set is split between the processes (dataset.rank_share): each makes its own
        # batches, instead of rank 0 reading every batch and sending each process its slice.
        accelerator_config=(
            {"dispatch_batches": False} if settings.streaming and plan.world_size > 1 else None
        ),
        disable_tqdm=False,
    )


def label_tokens(records: Iterable[dict[str, Any]], processor: Any, chunk: int = 1000) -> int:
    """The longest label sequence of the training set (prefix tokens and end of text included).

    `records`: manifest rows (a list, a `Dataset` or a streamed `IterableDataset`), tokenized
    `chunk` at a time so that a streamed corpus is never held whole.
    """
    longest, sentences = 0, []
    for record in records:
        sentences.append(record["sentence"])
        if len(sentences) == chunk:
            longest = max(longest, *map(len, processor.tokenizer(sentences).input_ids))
            sentences = []
    if sentences:
        longest = max(longest, *map(len, processor.tokenizer(sentences).input_ids))
    return longest


def free_memory(device: str) -> tuple[int, str]:
    """Bytes free for training on `device`, and where they are (for the preflight's message)."""
    if device == "cuda":
        return torch.cuda.mem_get_info()[0], f"cuda:0 ({torch.cuda.get_device_name()})"
    import psutil  # os.sysconf does not exist on Windows

    return psutil.virtual_memory().available, "this machine's RAM"


def memory_preflight(
    model: Any, plan: TrainingPlan, settings: TrainSettings, tokens: Callable[[], int]
) -> dict:
    """Check (or, for `auto`, pick) the micro-batch against the device's free memory.

    Runs on a GPU always, and on the CPU for `auto` (against free RAM); only then is `tokens()`,
    the longest label of the training set, counted (a pass over a streamed corpus). N processes
    agree on the smallest free memory among them, so that they pick the same micro-batch.
    """
    if plan.device == "cpu" and plan.micro_batch is not None:
        return {}
    from whisperforge.train.memory import estimate_training_memory, plan_micro_batch

    estimate = estimate_training_memory(
        model,
        precision=plan.precision,
        gradient_checkpointing=settings.gradient_checkpointing,
        label_tokens=tokens(),
    )
    budget, where = free_memory(plan.device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        shared = torch.tensor([budget], device=plan.device if plan.device == "cuda" else "cpu")
        torch.distributed.all_reduce(shared, op=torch.distributed.ReduceOp.MIN)
        budget = int(shared.item())
    micro, _ = plan_micro_batch(
        estimate,
        budget_bytes=budget,
        micro_batch=plan.micro_batch or "auto",
        accumulation=plan.accumulation,
        effective_batch=plan.effective_batch // plan.world_size,
        where=where,
    )
    plan.settle(micro)
    facts = {
        "memory_budget_gb": round(budget / 1e9, 2),
        "memory_estimate_gb": round(estimate.peak(micro) / 1e9, 2),
    }
    log.info(
        "memory preflight: micro-batch %d x accumulation %d: %s", micro, plan.accumulation, facts
    )
    return facts


CHECKPOINT_EXTRAS = 256 * 1024  # scheduler, RNG states, trainer state, config, model card


def checkpoint_bytes(model: Any, full: bool) -> tuple[int, int]:
    """(bytes of one checkpoint, trainable parameters): the saved weights (the adapters, or the
    whole model) plus AdamW's two fp32 moments per trainable parameter, plus the small files."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    saved = model.parameters() if full else trainable
    weights = sum(p.numel() * p.element_size() for p in saved)
    return weights + 8 * n_trainable + CHECKPOINT_EXTRAS, n_trainable


def disk_preflight(model: Any, checkpoints: Path, settings: TrainSettings, full: bool) -> None:
    """Refuse a run whose checkpoints cannot fit the disk, before hours of training find out.

    The Trainer keeps `save_total_limit` checkpoints and writes the next before it deletes the
    oldest; those already on disk (a resume) count as written.
    """
    per_checkpoint, n_trainable = checkpoint_bytes(model, full)
    limit = settings.save_total_limit
    present = sum(1 for p in checkpoints.glob("checkpoint-*") if p.is_dir())
    count = max(1, limit + 1 - present)
    needed, free = count * per_checkpoint, free_bytes(checkpoints)
    if needed > free:
        raise WhisperforgeError(
            f"{checkpoints}: {human_bytes(free)} free, but the checkpoints need about "
            f"{human_bytes(needed)} ({count} x {human_bytes(per_checkpoint)}: weights and "
            f"optimizer state of {n_trainable:,} trainable parameters; train.save_total_limit "
            f"{limit}, one more while the next is written); free space there or lower "
            "train.save_total_limit"
        )
    log.info(
        "disk preflight: %d checkpoint(s) of %s, %s free in %s",
        count,
        human_bytes(per_checkpoint),
        human_bytes(free),
        checkpoints,
    )


def save_base_model_files(processor: Any, out: Path) -> None:
    """Tokenizer and feature extractor beside the weights, as CTranslate2/faster-whisper need."""
    processor.save_pretrained(out)
    processor.tokenizer.save_pretrained(out)
    processor.feature_extractor.save_pretrained(out)


def finetune(
    base_dir: str | Path,
    train_manifest: str | Path,
    dev_manifest: str | Path,
    out_dir: str | Path,
    checkpoints: str | Path,
    settings: Mapping[str, Any] | TrainSettings,
    *,
    threads: int = 2,
    general_manifest: str | Path | None = None,
) -> dict[str, Any]:
    """Train and write `out_dir`; returns the training summary. `settings`: the rule's params
    (config `train` with `streaming` and `guard`), made one TrainSettings here.

    Adapters (default): `checkpoint-best/`, `checkpoint-final/` (PEFT adapters),
    `trainer_state.json`. Full fine-tune (`settings.full_finetune`): a complete HF model dir
    (best checkpoint's weights, processor files) plus `trainer_state.json`. Both with
    `training_summary.json` (device, precision, batch split, steps). The same training writes the
    same bytes there whatever the hash seed or the machine's speed: wall-clock facts go to
    `timings_file(out_dir)` beside it (the returned summary has them too). With `tensorboard` in
    `settings.report_to`, event files go to `tensorboard_dir(out_dir)`.

    `settings.guard` (set with `general_manifest`, config `eval.general`): checkpoint-best is
    the best in-domain checkpoint whose general-speech CER is within the forgetting budget
    (guard.py); the summary's `forgetting_guard` says how it went.
    """
    base_dir, out_dir, checkpoints = Path(base_dir), Path(out_dir), Path(checkpoints)
    if not isinstance(settings, TrainSettings):
        settings = TrainSettings.from_mapping(settings)
    if not (base_dir / "config.json").is_file():
        raise WhisperforgeError(f"{base_dir}: not a Whisper model directory (no config.json)")
    guard = settings.guard
    if guard and general_manifest is None:
        raise ValueError("finetune: settings.guard needs general_manifest")
    manifests = {"train": train_manifest, "dev": dev_manifest}
    if guard:
        manifests["general"] = general_manifest
    scans = {}
    for split, manifest in manifests.items():
        scans[split] = scan_manifest(manifest)
        if not scans[split].records:
            raise WhisperforgeError(
                f"{manifest}: manifest has no utterances to train or validate on"
            )
    check_reporters(settings.report_to)
    plan = make_plan(settings, base_dir)
    resume = prepare_checkpoint_dir(
        checkpoints,
        fingerprint(settings.as_dict(), base_dir, [Path(m) for m in manifests.values()]),
    )
    if resume is None and tensorboard_dir(out_dir).is_dir():
        # Curves of a run whose checkpoints were set aside would mix with the new run's.
        shutil.rmtree(tensorboard_dir(out_dir))
    job = {
        "base_dir": str(base_dir),
        "train_manifest": str(train_manifest),
        "dev_manifest": str(dev_manifest),
        "out_dir": str(out_dir),
        "checkpoints": str(checkpoints),
        "settings": settings.as_dict(),
        "scans": {split: asdict(scan) for split, scan in scans.items()},
        "plan": asdict(plan),
        "resume": resume,
        "threads": max(1, threads // settings.gpus),  # the step's threads, per node
    }
    if plan.world_size == 1:
        return train(job)
    launch(job, settings.gpus, settings.nodes)
    return json.loads((out_dir / "training_summary.json").read_text())


def evaluation_set(data: datasets.Dataset, processor: Any, settings: TrainSettings) -> Any:
    """A set the Trainer evaluates (dev, the guard's general set): no augmentation, the run's
    timestamps and feature padding."""
    return speech_dataset(
        data,
        processor,
        timestamps=settings.timestamps,
        feature_padding=settings.feature_padding,
    )


def guard_and_set(
    job: dict[str, Any], settings: TrainSettings, processor: Any
) -> tuple[Guard | None, Any]:
    """The forgetting guard and its general-speech set (a seeded sample), or (None, None)."""
    spec = settings.guard
    if not spec:
        return None, None
    data = eval_sample(
        load_manifest(ManifestScan(**job["scans"]["general"])),
        spec["max_utterances"],
        settings.seed,
    )
    general_set = evaluation_set(data, processor, settings)
    guard = Guard(
        general_set=spec["general_set"],
        budget_pts=spec["budget_pts"],
        metric=settings.metric_for_best,
        language=settings.language,
        task=settings.task,
    )
    log.info(
        "forgetting guard: %d utterances of %s, budget %g CER points",
        len(data),
        guard.general_set,
        guard.budget_pts,
    )
    return guard, general_set


@dataclass
class Setup:
    """A training process, ready to train: the Trainer and what the summary reports of it."""

    trainer: Any
    model: Any
    processor: Any
    settings: TrainSettings
    plan: TrainingPlan
    memory: dict[str, Any]
    dev_utterances: int
    guard: Guard | None
    full: bool


def train(job: dict[str, Any]) -> dict[str, Any]:
    """One training process: the whole run, or one rank of a data-parallel run."""
    setup = build_trainer(job)
    result = fit(setup, job["resume"], Path(job["checkpoints"]))
    return finish(setup, result, job)


def build_trainer(job: dict[str, Any]) -> Setup:
    """The data, the model with its adapters (after both preflights) and the Trainer."""
    settings, plan = TrainSettings.from_mapping(job["settings"]), TrainingPlan(**job["plan"])
    out_dir, checkpoints = Path(job["out_dir"]), Path(job["checkpoints"])
    train_scan, dev_scan = (ManifestScan(**job["scans"][split]) for split in ("train", "dev"))
    streaming = settings.streaming
    train_data = load_manifest(train_scan, streaming=streaming)
    dev_data = eval_sample(load_manifest(dev_scan), settings.eval_max_utterances, settings.seed)
    total_steps = optimizer_steps(train_scan.records, settings, plan.effective_batch)
    if streaming and plan.world_size > 1:
        train_data = rank_share(train_data, int(os.environ["RANK"]), plan.world_size)
    if streaming:
        # A stream has no length: the steps the Arrow-backed run would take, from the line count.
        settings = dataclasses.replace(settings, max_steps=total_steps)
    log.info(
        "training on %s, %s, %d process(es), %d utterances%s",
        plan.device,
        plan.precision,
        plan.world_size,
        train_scan.records,
        " streamed" if streaming else "",
    )

    # Seed before the adapters exist: LoRA draws its A matrices from the global RNG, and the
    # Trainer only seeds once it is built, after them.
    set_seed(settings.seed)
    processor, model = load_base(Path(job["base_dir"]), settings)
    full = settings.full_finetune
    if not full:
        model = add_adapters(model, settings, total_steps)
    disk_preflight(model, checkpoints, settings, full)
    args = training_arguments(settings, plan, checkpoints, job["threads"])
    if plan.device == "cuda" and not settings.use_8bit:
        model.to(args.device)
    memory = memory_preflight(
        model,
        plan,
        settings,
        lambda: label_tokens(train_data.select_columns(["sentence"]), processor),
    )
    args.per_device_train_batch_size = plan.micro_batch
    args.gradient_accumulation_steps = plan.accumulation

    epoch = shared_epoch()
    train_set = speech_dataset(
        train_data,
        processor,
        timestamps=settings.timestamps,
        augment=Augment(**settings.augment),
        seed=settings.seed,
        feature_padding=settings.feature_padding,
        size=train_scan.records,
        epoch=epoch,
    )
    guard, general_set = guard_and_set(job, settings, processor)
    with tensorboard_logging_dir(tensorboard_dir(out_dir)):
        trainer = GuardedTrainer(
            model=model,
            args=args,
            general_set=general_set,
            guard=guard,
            processor=processor,
            train_dataset=train_set,
            eval_dataset=evaluation_set(dev_data, processor, settings),
            data_collator=SpeechCollator.for_model(model.config),
            compute_loss_func=token_mean_loss,
            processing_class=processor.feature_extractor,
            compute_metrics=cer_metric(processor) if args.predict_with_generate else None,
            callbacks=training_callbacks(settings, plan, checkpoints, epoch, model, full),
        )
    return Setup(trainer, model, processor, settings, plan, memory, len(dev_data), guard, full)


def training_callbacks(
    settings: TrainSettings,
    plan: TrainingPlan,
    checkpoints: Path,
    epoch: Any,
    model: Any,
    full: bool,
) -> list[TrainerCallback]:
    divergence = settings.divergence
    callbacks: list[TrainerCallback] = [
        CurrentIntervals(),
        EpochOfAugmentation(epoch),
        DivergenceStop(
            divergence["patience"],
            divergence["max_loss_factor"],
            learning_rate=settings.learning_rate,
            precision=plan.precision,
            checkpoints=checkpoints,
        ),
    ]
    if settings.use_adalora and not full:
        callbacks.append(AdaLoraBudget(model))
    return callbacks


def fit(setup: Setup, resume: str | None, checkpoints: Path) -> Any:
    """`trainer.train`, with a full disk said in one line (the run resumes after it)."""
    trainer = setup.trainer
    try:
        return trainer.train(resume_from_checkpoint=resume)
    except TrainingDiverged:
        flush_trackers(trainer)  # the NaN steps are the curves the user needs to see
        raise
    except (OSError, RuntimeError, SafetensorError) as e:
        # A checkpoint that filled the disk: json an OSError ENOSPC, safetensors a SafetensorError
        # quoting it, torch.save a RuntimeError without it (hence the free space against the size
        # of a checkpoint). The torn checkpoint is set aside by the next call's resume.
        if not is_full_disk(e, checkpoints, checkpoint_bytes(setup.model, setup.full)[0]):
            raise
        raise WhisperforgeError(
            f"{checkpoints}: no space left on the device writing checkpoint "
            f"{trainer.state.global_step} ({human_bytes(free_bytes(checkpoints))} free there); "
            "free some space and run again: it resumes from the last complete checkpoint"
        ) from None


def finish(setup: Setup, result: Any, job: dict[str, Any]) -> dict[str, Any]:
    """The summary and timings of a finished run; rank 0 writes them and the adapters."""
    trainer, plan, settings = setup.trainer, setup.plan, setup.settings
    out_dir = Path(job["out_dir"])
    final_eval = (
        last_evaluation(trainer.state.log_history, trainer.state.global_step) or trainer.evaluate()
    )
    log.info("final eval: %s", final_eval)
    summary = {
        "device": torch.cuda.get_device_name(0) if plan.device == "cuda" else "CPU",
        "precision": plan.precision,
        "processes": plan.world_size,
        "micro_batch": plan.micro_batch,
        "gradient_accumulation": plan.accumulation,
        "effective_batch": plan.effective_batch,
        "gradient_checkpointing": settings.gradient_checkpointing,
        **setup.memory,
        "global_step": trainer.state.global_step,
        "best_checkpoint": None,
        "best_metric": trainer.state.best_metric,
        "eval_utterances": setup.dev_utterances,
        "streaming": settings.streaming,
        "final_eval": without_run_facts(final_eval),
    }
    if setup.guard:
        best = trainer.state.best_model_checkpoint
        best_step = int(Path(best).name.split("-")[-1]) if best else None
        summary["forgetting_guard"] = guard_outcome(
            trainer.state.log_history, best_step, setup.guard
        )
    # How long it took, how much memory was free, which checkpoint this call resumed from and
    # the mean loss of the steps it trained: true of this call on this machine, not of the
    # adapter, whose folder is then the same bytes on every build, resumed or not (timings_file).
    timings = {
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "final_eval": {k: v for k, v in final_eval.items() if is_run_fact(k)},
        "memory_budget_gb": summary.pop("memory_budget_gb", None),
        "resumed_from": job["resume"],
        "train_loss_of_this_call": result.metrics.get("train_loss"),
    }
    log.info("timings: %s", timings)
    if trainer.is_world_process_zero():
        summary["best_checkpoint"] = write_outputs(
            trainer, setup.model, setup.processor, out_dir, setup.full
        )
        write_json(out_dir / "training_summary.json", summary)
        write_json(timings_file(out_dir), timings)
    return {**summary, **{k: v for k, v in timings.items() if k != "final_eval"}}


def last_evaluation(log_history: list[dict[str, Any]], step: int) -> dict[str, Any] | None:
    """The evaluation of the final weights that the Trainer ran at the last step (with step-wise
    evaluation it always evaluates there), its entries (dev set, and a guard's general set)
    merged: evaluating again would repeat it, minutes of every run on a GPU."""
    merged: dict[str, Any] = {}
    for entry in log_history:
        if entry.get("step") == step and any(key.startswith("eval_") for key in entry):
            merged.update(entry)
    merged.pop("step", None)
    return merged or None


TIMING_SUFFIXES = ("_runtime", "_per_second")  # the Trainer's wall-clock metrics
# The Trainer's mean loss over the steps one call trained: a resumed call's covers fewer steps.
CALL_METRICS = ("train_loss",)


def is_run_fact(key: str) -> bool:
    """A metric that is true of one call on one machine, not of the training it continues."""
    return key.endswith(TIMING_SUFFIXES) or key in CALL_METRICS


def without_run_facts(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not is_run_fact(k)}


def timings_file(out_dir: Path) -> Path:
    """Wall-clock facts beside the declared output: `results/models/<run>/training_timings.json`."""
    return out_dir.parent / "training_timings.json"


def write_adapter_config(adapter_dir: Path) -> None:
    """PEFT keeps `target_modules` as a set, saved in hash-seed order: save it sorted."""
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    # PEFT's own layout (indent 2, sorted keys), so only the order of that list changes.
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def write_trainer_state(state: Any, path: Path) -> None:
    """The trainer state without the run facts in its log history (timings_file has them): the
    loss curves and steps, the same bytes for the same training, resumed or not."""
    record = dataclasses.asdict(state)
    record["log_history"] = [without_run_facts(entry) for entry in record["log_history"]]
    with atomic_path(path) as tmp:  # the Trainer's own layout (save_to_json)
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def flush_trackers(trainer: Any) -> None:
    """Write out what the TensorBoard callback holds (its on_train_end never comes)."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
            callback.tb_writer.flush()


def write_outputs(
    trainer: Any, model: Any, processor: Any, out_dir: Path, full: bool
) -> str | None:
    """The step's declared output: adapters (or the full model) and the trainer state."""
    out_dir.mkdir(parents=True, exist_ok=True)
    best = trainer.state.best_model_checkpoint
    if full:
        trained = WhisperForConditionalGeneration.from_pretrained(best) if best else trainer.model
        trained.generation_config = model.generation_config
        trained.save_pretrained(out_dir, safe_serialization=True)
        save_base_model_files(processor, out_dir)
    else:
        trainer.model.save_pretrained(out_dir / "checkpoint-final")
        if best:
            shutil.copytree(
                best,
                out_dir / "checkpoint-best",
                dirs_exist_ok=True,
                # Resume state, and the checkpoint's trainer state (its timings; the run's
                # trainer_state.json is beside it).
                ignore=shutil.ignore_patterns(
                    "optimizer.pt", "scheduler.pt", "rng_state*", "scaler.pt", "trainer_state.json"
                ),
            )
        else:
            log.info("no evaluation beat another: checkpoint-best = checkpoint-final")
            shutil.copytree(out_dir / "checkpoint-final", out_dir / "checkpoint-best")
        for adapter in ("checkpoint-final", "checkpoint-best"):
            write_adapter_config(out_dir / adapter)
    write_trainer_state(trainer.state, out_dir / "trainer_state.json")
    return Path(best).name if best else None


if __name__ == "__main__":  # one rank of a data-parallel run (see `launch`)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s rank{os.environ.get('RANK', '?')} %(name)s: %(message)s",
    )
    try:
        train(json.loads(Path(sys.argv[1]).read_text()))
    except WhisperforgeError as e:
        log.error("%s", e)
        sys.exit(1)
