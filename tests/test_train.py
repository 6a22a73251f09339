"""Fine-tuning: a function of its inputs and settings; resumable; AdaLoRA and batch splitting."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
import torch
import yaml
from helpers import ROOT, record_of, speech_like
from safetensors.torch import load_file
from transformers import TrainerControl

import whisperforge.train.finetune as train_module
from whisperforge.core.config import run_settings, validate_config
from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.manifest import read_manifest, write_jsonl
from whisperforge.model.tinymodel import build_tiny_whisper
from whisperforge.train.divergence import DivergenceStop, TrainingDiverged
from whisperforge.train.finetune import (
    AdaLoraBudget,
    adalora_schedule,
    add_adapters,
    batch_plan,
    eval_sample,
    finetune,
    label_tokens,
    load_base,
)
from whisperforge.train.memory import estimate_training_memory
from whisperforge.train.settings import TrainSettings

SENTENCES = ["今天天气很好", "我们明天开会", "经济增长很快", "北京是首都"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("finetune-inputs")
    base = build_tiny_whisper(root / "base", d_model=32, ffn_dim=64)
    records = [
        record_of(root / f"{i}.wav", speech_like(1.0 + 0.3 * i, seed=i), sentence)
        for i, sentence in enumerate(SENTENCES)
    ]
    write_jsonl(root / "train.jsonl", records)
    write_jsonl(root / "dev.jsonl", records[:2])
    return base, root / "train.jsonl", root / "dev.jsonl"


def tiny_settings(**changes) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate_config(config, ROOT / "schemas/config.schema.yaml")
    settings = run_settings(config, "lora")
    settings.update(
        streaming=config["data"]["streaming"],  # as rules/train.smk passes the data key
        device="cpu",  # config.yaml asks for a GPU
        max_steps=4,
        eval_steps=2,
        save_steps=2,
        logging_steps=1,
        per_device_train_batch_size=2,
        dataloader_num_workers=0,
        lora={**settings["lora"], "r": 4, "alpha": 8},
    )
    settings.update(changes)
    return settings


def typed(settings: dict) -> TrainSettings:
    return TrainSettings.from_mapping(settings)


def train_tiny(inputs, root: Path, settings: dict) -> dict:
    base, train, dev = inputs
    return finetune(base, train, dev, root / "adapter", root / "checkpoints", settings, threads=1)


def adapter_after_two_steps(inputs, out: Path, seed: int) -> dict:
    train_tiny(inputs, out, tiny_settings(seed=seed, max_steps=2))
    return load_file(out / "adapter/checkpoint-final/adapter_model.safetensors")


def test_same_seed_gives_the_same_adapter_and_another_seed_does_not(inputs, tmp_path):
    first = adapter_after_two_steps(inputs, tmp_path / "a", seed=7)
    again = adapter_after_two_steps(inputs, tmp_path / "b", seed=7)
    other = adapter_after_two_steps(inputs, tmp_path / "c", seed=8)
    assert first.keys() == again.keys() == other.keys()
    # LoRA's A matrices are drawn at random when the adapters are added: from the run's seed.
    assert all((first[k] == again[k]).all() for k in first), "same seed, different adapters"
    assert any((first[k] != other[k]).any() for k in first), "the seed changes nothing"


def test_a_weight_neutral_change_resumes_and_a_weight_change_starts_afresh(
    inputs, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    first = train_tiny(inputs, tmp_path, tiny_settings())
    assert first["resumed_from"] is None and first["global_step"] == 4

    # Logging, evaluation and saving intervals cannot change the weights: the run resumes.
    neutral = tiny_settings(eval_steps=1, logging_steps=2, save_total_limit=3)
    again = train_tiny(inputs, tmp_path, neutral)
    assert again["resumed_from"] and again["resumed_from"].endswith("checkpoint-4")
    assert "eval_steps" in caplog.text and "without effect on the weights" in caplog.text

    # A new learning rate can: afresh, with the key named and the old checkpoints kept aside.
    caplog.clear()
    fresh = train_tiny(inputs, tmp_path, tiny_settings(learning_rate=5e-4))
    assert fresh["resumed_from"] is None
    assert "starting afresh: learning_rate changed" in caplog.text
    aside = list(tmp_path.glob("checkpoints.replaced-*"))
    assert len(aside) == 1 and (aside[0] / "checkpoint-4").is_dir()


def test_a_short_adalora_run_gets_a_schedule_peft_accepts(inputs, tmp_path):
    # PEFT's own error for 2 steps with a 1-step warm-up and a 1-step final phase was
    # "The supplied schedule values don't allow for a budgeting phase".
    summary = train_tiny(inputs, tmp_path, tiny_settings(use_adalora=True, max_steps=2))
    assert summary["global_step"] == 2
    config = json.loads((tmp_path / "adapter/checkpoint-final/adapter_config.json").read_text())
    assert (config["peft_type"], config["total_step"], config["tinit"]) == ("ADALORA", 2, 0)
    assert adalora_schedule(1000) == {"tinit": 100, "tfinal": 200, "deltaT": 10}


def test_an_overflowed_step_never_reaches_the_adalora_rank_allocator(inputs):
    base, _, _ = inputs
    settings = typed(tiny_settings(use_adalora=True))
    _, model = load_base(base, settings)
    model = add_adapters(model, settings, total_steps=100)
    budget = AdaLoraBudget(model)
    allocator = model.base_model.rankallocator
    lora_params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def backward(value: float) -> None:
        for _, p in lora_params:
            p.grad = torch.full_like(p, value)

    state = SimpleNamespace(global_step=20)  # inside the budgeting phase: importance updated
    backward(0.5)
    budget.on_pre_optimizer_step(None, state, None)
    assert allocator.exp_avg_ipt, "a finite step updates the importance scores"
    before = {k: v.clone() for k, v in allocator.exp_avg_ipt.items()}

    backward(float("inf"))  # an fp16 overflow: the optimizer skips this step, and so must AdaLoRA
    state.global_step = 21
    budget.on_pre_optimizer_step(None, state, None)
    for name, value in allocator.exp_avg_ipt.items():
        assert torch.isfinite(value).all(), f"{name}: inf/NaN in the importance average"
        assert torch.equal(value, before[name])


def test_dev_evaluation_uses_a_fixed_seeded_sample():
    records = datasets.Dataset.from_list([{"sentence": str(i)} for i in range(50)])

    def sample(limit, seed) -> list[str]:
        return eval_sample(records, limit, seed)["sentence"]

    assert len(sample(10, 42)) == 10 and sample(10, 42) == sample(10, 42)
    assert sample(10, 42) != sample(10, 1)
    assert [int(s) for s in sample(10, 42)] == sorted(int(s) for s in sample(10, 42))
    assert sample(None, 42) == records["sentence"] == sample(50, 42)


def batch_settings(micro, accum: int, gpus: int, effective: int | None) -> TrainSettings:
    return typed(
        tiny_settings(
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=accum,
            gpus=gpus,
            effective_batch_size=effective,
        )
    )


@pytest.mark.parametrize(
    ("micro", "accum", "gpus", "effective", "expected"),
    [
        (8, 1, 1, None, (8, 1, 8)),
        (8, 1, 2, None, (4, 1, 8)),  # two processes split the micro-batch
        (4, 4, 2, None, (4, 2, 8 * 2)),  # ... or the accumulation
        ("auto", 1, 2, 8, (None, 1, 8)),  # the preflight picks the micro-batch
    ],
)
def test_processes_split_the_effective_batch(micro, accum, gpus, effective, expected):
    assert batch_plan(batch_settings(micro, accum, gpus, effective)) == expected


@pytest.mark.parametrize(
    ("micro", "accum", "gpus", "effective", "key"),
    [
        (8, 1, 3, None, "train.gpus"),
        ("auto", 1, 1, None, "train.effective_batch_size"),
        (8, 2, 1, 8, "train.effective_batch_size"),
    ],
)
def test_a_batch_that_cannot_be_split_names_the_key(micro, accum, gpus, effective, key):
    with pytest.raises(WhisperforgeError, match=rf"^config {key}:"):
        batch_plan(batch_settings(micro, accum, gpus, effective))


def test_accumulated_micro_batches_take_the_step_of_the_whole_batch(inputs, tmp_path):
    # The loss is a token mean over the whole step (train/loss.py): two micro-batches of 2
    # accumulated give the step one batch of 4 gives. Before, each micro-batch's mean was summed
    # undivided (the Trainer took Whisper's loss as already scaled): 2x the loss and gradients.
    def run(name: str, micro: int, accumulation: int) -> tuple[list[float], dict]:
        settings = tiny_settings(
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=accumulation,
            lora={**tiny_settings()["lora"], "dropout": 0.0},  # masks drawn per micro-batch
        )
        summary = train_tiny(inputs, tmp_path / name, settings)
        assert summary["effective_batch"] == 4
        state = json.loads((tmp_path / name / "adapter/trainer_state.json").read_text())
        losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
        weights = load_file(tmp_path / name / "adapter/checkpoint-final/adapter_model.safetensors")
        return losses, weights

    whole_losses, whole = run("whole", 4, 1)
    accumulated_losses, accumulated = run("accumulated", 2, 2)
    assert accumulated_losses == pytest.approx(whole_losses, rel=1e-5)
    for name, weight in whole.items():
        apart = ((accumulated[name] - weight).norm() / weight.norm()).item()
        assert apart < 1e-4, (name, apart)


def test_an_auto_micro_batch_is_the_largest_that_fits_and_keeps_the_effective_batch(
    inputs, tmp_path, monkeypatch
):
    base, train, _ = inputs
    settings = typed(tiny_settings(per_device_train_batch_size="auto", effective_batch_size=4))
    processor, model = load_base(base, settings)
    model = add_adapters(model, settings, total_steps=4)
    estimate = estimate_training_memory(
        model,
        precision="fp32",
        gradient_checkpointing=True,
        label_tokens=label_tokens(read_manifest(train), processor),
    )
    # Room for two samples, not three: micro-batch 2, accumulation 2 keeps the batch at 4.
    budget = (estimate.peak(2) + estimate.peak(3)) // 2
    monkeypatch.setattr(train_module, "free_memory", lambda device: (budget, "a test budget"))
    summary = train_tiny(inputs, tmp_path, settings)
    assert (summary["micro_batch"], summary["gradient_accumulation"]) == (2, 2)
    assert summary["effective_batch"] == 4 and summary["global_step"] == 4
    assert summary["memory_estimate_gb"] == round(estimate.peak(2) / 1e9, 2)

    monkeypatch.setattr(train_module, "free_memory", lambda device: (1000, "a test budget"))
    with pytest.raises(WhisperforgeError, match=r"^config train.per_device_train_batch_size: auto"):
        train_tiny(inputs, tmp_path / "too-small", settings)


def logged_losses(out: Path) -> list[float]:
    state = json.loads((out / "adapter/trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


QUIET = {"speed_prob": 0.0, "volume_prob": 0.0}  # a loss curve free of augmentation noise


def falls(loss: list[float]) -> bool:
    """The last two steps' loss is at least 1 nat below the first two's (from ~11 at the start)."""
    return sum(loss[-2:]) / 2 < sum(loss[:2]) / 2 - 1.0


def test_a_streamed_manifest_trains_the_same_number_of_steps_and_learns(inputs, tmp_path):
    settings = tiny_settings(
        max_steps=-1,
        num_train_epochs=4,  # 4 utterances, batch 2: 8 optimizer steps
        eval_steps=100,
        save_steps=100,
        warmup_steps=0,
        learning_rate=5e-2,
        augment={**tiny_settings()["augment"], **QUIET},
    )
    arrow = train_tiny(inputs, tmp_path / "arrow", {**settings, "streaming": False})
    streamed = train_tiny(inputs, tmp_path / "streamed", {**settings, "streaming": True})
    assert streamed["streaming"] and not arrow["streaming"]
    assert streamed["global_step"] == arrow["global_step"] == 8
    losses = logged_losses(tmp_path / "streamed")
    assert len(losses) == 8 and falls(losses), losses


def test_training_writes_tensorboard_curves_beside_the_adapter(inputs, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    settings = tiny_settings(
        report_to=["tensorboard"],
        max_steps=8,
        eval_steps=8,  # one evaluation, generating up to 225 tokens
        save_steps=8,
        warmup_steps=0,
        learning_rate=5e-2,
        metric_for_best="cer",
        augment={**tiny_settings()["augment"], **QUIET},
    )
    train_tiny(inputs, tmp_path, settings)
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "no event files in results/models/<run>/tensorboard/"
    assert not list((tmp_path / "adapter").rglob("events.out.tfevents.*"))
    assert not list((tmp_path / "checkpoints").rglob("events.out.tfevents.*"))
    curves = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    tags = set(curves.Tags()["scalars"])
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "eval/loss", "eval/cer"} <= tags
    loss = [event.value for event in curves.Scalars("train/loss")]
    assert len(loss) == 8 and falls(loss), loss
    # The Trainer's evaluation at the last step is the summary's: the weights are not evaluated
    # a second time after training.
    state = json.loads((tmp_path / "adapter/trainer_state.json").read_text())
    evaluations = [e for e in state["log_history"] if "eval_loss" in e]
    assert [e["step"] for e in evaluations] == [8]
    summary = json.loads((tmp_path / "adapter/training_summary.json").read_text())
    assert summary["final_eval"]["eval_cer"] == evaluations[0]["eval_cer"]


def test_an_integration_without_its_package_names_the_key_and_the_package(
    inputs, tmp_path, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    settings = tiny_settings(report_to=["tensorboard", "mlflow"])
    message = r"^config train.report_to: mlflow .*\(pip install mlflow\)$"
    with pytest.raises(WhisperforgeError, match=message):
        train_tiny(inputs, tmp_path, settings)
    assert not (tmp_path / "checkpoints").exists()  # refused before anything was written


def test_a_diverging_run_stops_with_one_line_naming_the_step_and_writes_no_adapter(
    inputs, tmp_path
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # A learning rate of 1000 takes the tiny model's grad_norm to NaN at step 3, its loss at 4.
    settings = tiny_settings(
        learning_rate=1e3, warmup_steps=0, max_steps=12, report_to=["tensorboard"]
    )
    message = (
        r"^training diverged at step (\d+): (loss|grad_norm) nan.* in a row since step (\d+) "
        r"\(train.divergence.patience: 3\); lower train.learning_rate \(now 1000\) or change "
        r"train.precision \(now fp32\); nothing was saved from step \3 on; earlier checkpoints "
        r"stay in .*checkpoints$"
    )
    with pytest.raises(WhisperforgeError, match=message) as error:
        train_tiny(inputs, tmp_path, settings)
    found = re.match(message, str(error.value))
    last_step, first_bad = int(found.group(1)), int(found.group(3))
    assert last_step == first_bad + 2 <= 8, "three logged steps in a row, soon after it began"
    assert not (tmp_path / "adapter").exists(), "the declared output stays absent"
    saved = sorted(
        int(p.name.split("-")[1]) for p in (tmp_path / "checkpoints").glob("checkpoint-*")
    )
    assert saved and max(saved) < first_bad, f"a checkpoint of the diverged weights: {saved}"
    # The NaN steps reach TensorBoard as NaN (the Trainer's default filter would average them away).
    curves = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    grad_norms = [e.value for e in curves.Scalars("train/grad_norm")]
    assert len(grad_norms) == last_step and any(math.isnan(g) for g in grad_norms), grad_norms


def divergence_watch(precision: str = "fp32", factor: float | None = 10) -> DivergenceStop:
    return DivergenceStop(
        3, factor, learning_rate=1e-3, precision=precision, checkpoints=Path("ckpt")
    )


def feed(watch: DivergenceStop, logs: list[dict]) -> TrainerControl:
    """Log each entry at its own step as the Trainer does: step end, then log."""
    control = TrainerControl()
    for step, entry in enumerate(logs, start=1):
        state = SimpleNamespace(global_step=step)
        control.should_save = True  # a saving step, as DefaultFlowCallback sets it
        watch.on_step_end(None, state, control)
        watch.on_log(None, state, control, logs=entry)
    return control


def test_a_loss_far_above_its_running_value_stops_the_run_and_a_finite_one_resets():
    nan, inf = float("nan"), float("inf")
    steady = [{"loss": 2.0, "grad_norm": 1.0}] * 3
    with pytest.raises(TrainingDiverged, match=r"step 6: loss 50, 25x its running value 2 "):
        feed(divergence_watch(), [*steady, *[{"loss": 50.0, "grad_norm": 3.0}] * 3])
    # Two bad steps, then a good one: the streak starts again, and saving resumes.
    control = feed(divergence_watch(), [*steady, {"loss": nan}, {"loss": 2.0, "grad_norm": inf}])
    assert control.should_save is False  # no checkpoint while the run may be diverging
    control = feed(divergence_watch(), [{"loss": nan}, {"loss": nan}, {"loss": 1.9}] * 3)
    assert control.should_save is True
    # Evaluation logs and the end-of-training summary carry no "loss": ignored.
    feed(divergence_watch(), [{"eval_loss": nan}, {"train_loss": nan}] * 3)
    # fp16: an inf grad_norm is the GradScaler skipping an overflowed step, not divergence.
    feed(divergence_watch("fp16"), [{"loss": 2.0, "grad_norm": inf}] * 5)
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step 3: loss nan"):
        feed(divergence_watch("fp16"), [{"loss": nan, "grad_norm": inf}] * 3)
    feed(divergence_watch(factor=None), [*steady, *[{"loss": 50.0}] * 3])  # the factor off


TRAIN_IN_A_FRESH_INTERPRETER = """
import json, sys
from whisperforge.train.finetune import finetune
j = json.loads(open(sys.argv[1]).read())
finetune(j["base"], j["train"], j["dev"], "adapter", "checkpoints", j["settings"], threads=1)
"""


def test_two_clean_builds_with_different_hash_seeds_write_the_same_adapter_bytes(inputs, tmp_path):
    base, train, dev = inputs
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps(
            {"base": str(base), "train": str(train), "dev": str(dev), "settings": tiny_settings()}
        )
    )
    builds = {}
    for seed in ("1", "2"):  # PEFT's target_modules set iterates in hash-seed order
        workdir = tmp_path / f"build-{seed}"
        workdir.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        # Relative paths, as the rules pass them from the workflow directory.
        subprocess.run(
            [sys.executable, "-c", TRAIN_IN_A_FRESH_INTERPRETER, str(job)],
            cwd=workdir,
            env=env,
            check=True,
            capture_output=True,
        )
        adapter = workdir / "adapter"
        builds[seed] = {
            str(p.relative_to(adapter)): p.read_bytes() for p in adapter.rglob("*") if p.is_file()
        }
    first, second = builds.values()
    assert "checkpoint-final/adapter_config.json" in first and "trainer_state.json" in first
    assert first.keys() == second.keys()
    differ = sorted(name for name in first if first[name] != second[name])
    assert not differ, f"differ between two clean builds: {differ}"
    config = json.loads(first["checkpoint-final/adapter_config.json"])
    assert config["target_modules"] == sorted(config["target_modules"])
    state = json.loads(first["trainer_state.json"])
    assert not [k for e in state["log_history"] for k in e if k.endswith("_runtime")]
    timings = json.loads((tmp_path / "build-1/training_timings.json").read_text())
    assert timings["train_runtime_s"] > 0  # kept beside the declared output, not lost


def test_settings_are_one_frozen_value_that_refuses_unknown_keys():
    import dataclasses

    settings = typed(tiny_settings())
    assert settings.lora["r"] == 4 and settings.as_dict() == {**tiny_settings(), "guard": None}
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.learning_rate = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"unknown keys lora_r$"):
        typed({**tiny_settings(), "lora_r": 4})
