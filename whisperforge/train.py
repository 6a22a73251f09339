"""Fine-tune Whisper: LoRA/AdaLoRA adapters (a run) or all weights (the demo's base pretraining).

Intermediate checkpoints go to a directory outside the rule's declared output, tagged with a
fingerprint of everything that shapes the training (settings, base model, data). A killed job
resumes from the last checkpoint on the next call when the fingerprint matches; a changed setting
starts over, so a resumed run never mixes two configurations.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import (
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from whisperforge.dataset import Augment, SpeechCollator, SpeechDataset
from whisperforge.errors import WhisperforgeError
from whisperforge.manifest import read_manifest, sha256_file, write_json

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "whisperforge-fingerprint.json"


def fingerprint(settings: dict[str, Any], base_dir: Path, manifests: list[Path]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed from."""
    weights = sorted(base_dir.glob("*.safetensors")) + sorted(base_dir.glob("*.bin"))
    return {
        "settings": settings,
        "base_config": sha256_file(base_dir / "config.json"),
        "base_weights": [[w.name, w.stat().st_size] for w in weights],
        "manifests": [sha256_file(m) for m in manifests],
    }


def prepare_checkpoint_dir(checkpoints: Path, expected: dict[str, Any]) -> str | None:
    """Return the checkpoint to resume from, or None after clearing stale checkpoints."""
    marker = checkpoints / FINGERPRINT_FILE
    if checkpoints.is_dir() and marker.is_file():
        if json.loads(marker.read_text()) == expected:
            last = get_last_checkpoint(str(checkpoints))
            if last:
                log.info("resuming from %s", last)
                return last
        else:
            log.info("settings, base model or data changed: discarding %s", checkpoints)
            shutil.rmtree(checkpoints)
    elif checkpoints.is_dir():
        shutil.rmtree(checkpoints)
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_json(marker, expected)
    return None


def pick_fp16(setting: str | bool) -> bool:
    if setting == "auto":
        return torch.cuda.is_available()
    if setting and not torch.cuda.is_available():
        raise WhisperforgeError("config train.fp16: true needs a CUDA device; use auto or false")
    return bool(setting)


def optimizer_steps(n_examples: int, settings: dict[str, Any]) -> int:
    """How many optimizer steps the run will take (AdaLoRA's schedule needs the real number)."""
    if settings["max_steps"] > 0:
        return settings["max_steps"]
    per_step = settings["per_device_train_batch_size"] * settings["gradient_accumulation_steps"]
    per_step *= max(1, torch.cuda.device_count())
    return math.ceil(math.ceil(n_examples / per_step) * settings["num_train_epochs"])


def load_base(base_dir: Path, settings: dict[str, Any]) -> tuple[Any, Any]:
    if not (base_dir / "config.json").is_file():
        raise WhisperforgeError(f"{base_dir}: not a Whisper model directory (no config.json)")
    processor = WhisperProcessor.from_pretrained(base_dir)
    kwargs: dict[str, Any] = {}
    if settings["use_8bit"]:
        if not torch.cuda.is_available():
            raise WhisperforgeError("config train.use_8bit: needs a CUDA device (bitsandbytes)")
        from transformers import BitsAndBytesConfig

        kwargs = {
            "quantization_config": BitsAndBytesConfig(load_in_8bit=True),
            "device_map": "auto",
        }
    model = WhisperForConditionalGeneration.from_pretrained(base_dir, **kwargs)
    language = settings["language"]
    processor.tokenizer.set_prefix_tokens(
        language=language, task=settings["task"], predict_timestamps=settings["timestamps"]
    )
    model.config.forced_decoder_ids = None
    model.generation_config.forced_decoder_ids = None
    return processor, model


def add_adapters(model: Any, settings: dict[str, Any], total_steps: int) -> Any:
    from peft import AdaLoraConfig, LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if settings["use_8bit"]:
        model = prepare_model_for_kbit_training(model)
    lora = settings["lora"]
    if settings["use_adalora"]:
        ada = settings["adalora"]
        config = AdaLoraConfig(
            init_r=ada["init_r"],
            target_r=ada["target_r"],
            lora_alpha=ada["alpha"],
            lora_dropout=ada["dropout"],
            target_modules=lora["target_modules"],
            total_step=total_steps,
            # Rank budget schedule: warm up for the first 10 %, settle over the last 20 %.
            tinit=max(1, total_steps // 10),
            tfinal=max(1, total_steps // 5),
            deltaT=max(1, total_steps // 100),
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
    """AdaLoRA reallocates ranks from the gradients, after backward and before the update."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.model.base_model.update_and_allocate(state.global_step)


def training_arguments(
    settings: dict[str, Any], checkpoints: Path, threads: int
) -> Seq2SeqTrainingArguments:
    if settings["save_steps"] % settings["eval_steps"]:
        raise WhisperforgeError(
            "config train.save_steps: must be a multiple of train.eval_steps "
            f"({settings['save_steps']} vs {settings['eval_steps']})"
        )
    by_cer = settings["metric_for_best"] == "cer"
    torch.set_num_threads(max(1, threads))
    return Seq2SeqTrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=settings["per_device_train_batch_size"],
        per_device_eval_batch_size=settings["per_device_eval_batch_size"],
        gradient_accumulation_steps=settings["gradient_accumulation_steps"],
        learning_rate=settings["learning_rate"],
        warmup_steps=settings["warmup_steps"],
        num_train_epochs=settings["num_train_epochs"],
        max_steps=settings["max_steps"],
        logging_steps=settings["logging_steps"],
        eval_strategy="steps",
        eval_steps=settings["eval_steps"],
        save_strategy="steps",
        save_steps=settings["save_steps"],
        save_total_limit=settings["save_total_limit"],
        metric_for_best_model="cer" if by_cer else "loss",
        greater_is_better=False,
        predict_with_generate=by_cer,
        generation_max_length=225,
        fp16=pick_fp16(settings["fp16"]),
        torch_compile=settings["use_compile"],
        seed=settings["seed"],
        data_seed=settings["seed"],
        dataloader_num_workers=settings["dataloader_num_workers"],
        # Workers that live across epochs keep their in-memory log-mel caches (dataset.py).
        dataloader_persistent_workers=settings["dataloader_num_workers"] > 0,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )


def cer_metric(processor: Any):
    from whisperforge.score import normalize, score_pairs

    def compute(pred) -> dict[str, float]:
        labels = pred.label_ids.copy()
        labels[labels == -100] = processor.tokenizer.pad_token_id
        hyps = processor.tokenizer.batch_decode(pred.predictions, skip_special_tokens=True)
        refs = processor.tokenizer.batch_decode(labels, skip_special_tokens=True)
        scores = score_pairs([normalize(r) for r in refs], [normalize(h) for h in hyps])
        return {"cer": scores["cer"] if scores["cer"] is not None else 1.0}

    return compute


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
    settings: dict[str, Any],
    *,
    threads: int = 2,
) -> dict[str, Any]:
    """Train and write `out_dir`.

    Adapters (default): `checkpoint-best/`, `checkpoint-final/` (PEFT adapters),
    `trainer_state.json`. Full fine-tune (`settings["full_finetune"]`): a complete HF model dir
    (best checkpoint's weights, processor files) plus `trainer_state.json`.
    """
    base_dir, out_dir, checkpoints = Path(base_dir), Path(out_dir), Path(checkpoints)
    device = f"CUDA ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU"
    log.info("training on %s%s", device, "" if torch.cuda.is_available() else ": no CUDA device")
    train_records = read_manifest(train_manifest)
    dev_records = read_manifest(dev_manifest)
    if not train_records or not dev_records:
        empty = train_manifest if not train_records else dev_manifest
        raise WhisperforgeError(f"{empty}: manifest has no utterances to train or validate on")

    # Seed before the adapters exist: LoRA draws its A matrices from the global RNG, and the
    # Trainer only seeds once it is built, after them.
    set_seed(settings["seed"])
    processor, model = load_base(base_dir, settings)
    total_steps = optimizer_steps(len(train_records), settings)
    full = settings.get("full_finetune", False)
    if not full:
        model = add_adapters(model, settings, total_steps)
    augment = Augment(**settings["augment"])
    train_set = SpeechDataset(
        train_records,
        processor,
        timestamps=settings["timestamps"],
        augment=augment,
        seed=settings["seed"],
        feature_padding=settings["feature_padding"],
    )
    dev_set = SpeechDataset(
        dev_records,
        processor,
        timestamps=settings["timestamps"],
        feature_padding=settings["feature_padding"],
    )
    resume = prepare_checkpoint_dir(
        checkpoints, fingerprint(settings, base_dir, [Path(train_manifest), Path(dev_manifest)])
    )
    args = training_arguments(settings, checkpoints, threads)
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=dev_set,
        data_collator=SpeechCollator(model.config.decoder_start_token_id),
        processing_class=processor.feature_extractor,
        compute_metrics=cer_metric(processor) if args.predict_with_generate else None,
        callbacks=[AdaLoraBudget(model)] if settings["use_adalora"] and not full else [],
    )
    result = trainer.train(resume_from_checkpoint=resume)
    final_eval = trainer.evaluate()
    log.info("final eval: %s", final_eval)

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
                ignore=shutil.ignore_patterns("optimizer.pt", "scheduler.pt", "rng_state*"),
            )
        else:
            log.info("no evaluation beat another: checkpoint-best = checkpoint-final")
            shutil.copytree(out_dir / "checkpoint-final", out_dir / "checkpoint-best")
    trainer.state.save_to_json(str(out_dir / "trainer_state.json"))
    summary = {
        "device": device,
        "global_step": trainer.state.global_step,
        "resumed_from": resume,
        "best_checkpoint": Path(best).name if best else None,
        "best_metric": trainer.state.best_metric,
        "final_eval": final_eval,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
    }
    write_json(out_dir / "training_summary.json", summary)
    return summary
