"""The memory model: linear in the batch, ordered as it must be, and close to a real peak."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch

from whisperforge.core.errors import WhisperforgeError
from whisperforge.train.memory import (
    GiB,
    MemoryEstimate,
    estimate_training_memory,
    measure_activations,
    plan_micro_batch,
)

NARROW = dict(
    d_model=64,
    encoder_layers=4,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=256,
    decoder_ffn_dim=256,
    num_mel_bins=80,
    vocab_size=51866,
)
LABELS = 64

# Builds the narrow model as the fixture does, takes a warm-up training step (AdamW's moments,
# one-time allocations), then resets the peak RSS and prints how far one more step raises it.
REAL_STEP = """
import ctypes, json, sys, torch
from peft import LoraConfig, get_peft_model
from transformers import WhisperConfig, WhisperForConditionalGeneration

config, batch, tokens, precision, checkpointing = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(1)
model = WhisperForConditionalGeneration(WhisperConfig(**config))
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, bias="none",
    target_modules=["k_proj", "q_proj", "v_proj", "out_proj", "fc1", "fc2"]))
if checkpointing:
    model.base_model.model.activation_checkpointing_enable()
model.train()
adamw = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
features = torch.randn(batch, config["num_mel_bins"], 3000)
labels = torch.randint(0, 50000, (batch, tokens))

def step():
    with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        loss = model(input_features=features, labels=labels).loss
    loss.backward()
    adamw.step()
    adamw.zero_grad(set_to_none=True)

def status(field):
    line = next(x for x in open("/proc/self/status") if x.startswith(field))
    return int(line.split()[1]) * 1024

step()
ctypes.CDLL("libc.so.6").malloc_trim(0)
baseline = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
step()
print(status("VmHWM") - baseline)
"""


def lora(model, r: int = 8):
    from peft import LoraConfig, get_peft_model

    targets = ["k_proj", "q_proj", "v_proj", "out_proj", "fc1", "fc2"]
    config = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.05, target_modules=targets)
    return get_peft_model(model, config)


@pytest.fixture(scope="module")
def model():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    return lora(WhisperForConditionalGeneration(WhisperConfig(**NARROW)))


@pytest.fixture(scope="module")
def activations(model):
    return {
        p: measure_activations(model, precision=p, label_tokens=LABELS) for p in ("fp32", "bf16")
    }


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_bytes_per_sample_do_not_depend_on_the_batch_measured(model, activations, precision):
    one, two = (
        activations[precision],
        measure_activations(model, precision=precision, label_tokens=LABELS, batch=2),
    )
    for at_one, at_two in ((one.plain, two.plain), (one.checkpointed, two.checkpointed)):
        assert at_two[0] == pytest.approx(at_one[0], rel=0.02)
        assert at_two[1] == at_one[1]  # shared bytes: the same whatever the batch
    # autocast's half copies of frozen weights are shared; fp32 saves no weight copies at all
    assert (one.plain[1] > 0) == (precision == "bf16")


def test_checkpointing_and_half_precision_each_lower_the_bytes_per_sample(activations):
    fp32, half = activations["fp32"], activations["bf16"]
    assert fp32.checkpointed[0] < fp32.plain[0] / 1.5
    assert half.checkpointed[0] < half.plain[0] / 1.5
    assert half.plain[0] < fp32.plain[0]
    # At d_model 64 a checkpointed step peaks at the loss, whose log-softmax over 51,866 tokens
    # autocast keeps in fp32: half precision cannot lower it there
    assert half.checkpointed[0] <= fp32.checkpointed[0]


def test_the_fixed_part_counts_weights_gradients_and_adamw(model, activations):
    estimate = estimate_training_memory(
        model,
        precision="fp32",
        gradient_checkpointing=False,
        label_tokens=LABELS,
        activations=activations["fp32"],
    )
    trainable, total = model.get_nb_trainable_parameters()
    assert estimate.weight_bytes == 4 * total
    assert estimate.optimizer_bytes == 12 * trainable
    assert estimate.peak(4) - estimate.peak(2) == 2 * estimate.per_sample_bytes
    assert estimate.largest_fitting(estimate.peak(3), limit=8) == 3
    assert estimate.largest_fitting(estimate.peak(3), limit=2) == 2
    assert estimate.largest_fitting(estimate.peak(1) - 1, limit=8) == 0


def test_measuring_leaves_the_model_the_random_state_and_the_memory_as_they_were(model):
    whisper = model.base_model.model
    outputs = []
    watch = whisper.model.encoder.layers[1].register_forward_hook(
        lambda module, args, out: outputs.append(weakref.ref(out))
    )
    model.eval()
    whisper.activation_checkpointing_enable()
    state = torch.get_rng_state()
    try:
        measure_activations(model, precision="fp32", label_tokens=4)
        assert not model.training
        assert whisper.is_activation_checkpointing
        assert torch.equal(torch.get_rng_state(), state)
        gc.collect()
        assert outputs[0]() is None, "the measured graph outlived the measurement"
    finally:
        watch.remove()
        whisper.activation_checkpointing_disable()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak RSS")
@pytest.mark.parametrize(("precision", "checkpointing"), [("fp32", False), ("bf16", True)])
def test_the_estimate_brackets_a_real_training_step(activations, model, precision, checkpointing):
    """One real step's peak RSS growth against the model's peak less what was already resident.

    A fixed glibc mmap threshold hands freed tensors back at once, so RSS follows live tensors.
    Tolerance: the real peak may exceed the model by allocator and thread overheads (a few MB of
    ~100-200); the model may overestimate a checkpointed step by the loss's saved tensors, which it
    holds through every layer's recompute though backward frees them first (~15 % at d_model 160;
    0.86 at turbo's full width, benchmarks/RESULTS.md). Measured here: 0.98-1.00.
    """
    batch = 2
    args = json.dumps([NARROW, batch, LABELS, precision, checkpointing])
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", REAL_STEP, args], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    real = int(run.stdout.split()[-1])
    estimate = estimate_training_memory(
        model,
        precision=precision,
        gradient_checkpointing=checkpointing,
        label_tokens=LABELS,
        activations=activations[precision],
    )
    # resident before the step: the weights and AdamW's moments; the workspace is CUDA's
    moments = 2 * estimate.optimizer_bytes // 3
    predicted = estimate.peak(batch) - estimate.weight_bytes - estimate.workspace_bytes - moments
    assert 0.85 <= real / predicted <= 1.05, (real, predicted)


def synthetic(per_sample_gib: float = 1.0, checkpointing: bool = False) -> MemoryEstimate:
    # fixed: 2 + 1 + 0.25 + 0.75 (workspace) = 4 GiB
    return MemoryEstimate(
        precision="fp16",
        gradient_checkpointing=checkpointing,
        label_tokens=LABELS,
        weight_bytes=2 * GiB,
        optimizer_bytes=GiB,
        shared_bytes=GiB // 4,
        per_sample_bytes=int(per_sample_gib * GiB),
    )


def plan(estimate: MemoryEstimate, budget_gib: float, micro_batch, accumulation=1, effective=None):
    return plan_micro_batch(
        estimate,
        budget_bytes=int(budget_gib * GiB),
        micro_batch=micro_batch,
        accumulation=accumulation,
        effective_batch=effective,
        where="cuda:0",
    )


def test_a_fixed_micro_batch_that_fits_is_kept():
    assert plan(synthetic(), 12.0, 8) == (8, 1)
    assert plan(synthetic(), 12.0, 4, accumulation=2) == (4, 2)


def test_a_fixed_micro_batch_that_does_not_fit_names_the_keys_to_change():
    with pytest.raises(WhisperforgeError) as error:
        plan(synthetic(), 11.0, 8)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("config train.per_device_train_batch_size: micro-batch 8 needs")
    assert "12.0 GiB by the memory model, 11.0 GiB free on cuda:0" in message
    for key in ("train.gradient_accumulation_steps", "auto", "train.gradient_checkpointing"):
        assert key in message
    with pytest.raises(WhisperforgeError, match=r"turn on train\.use_8bit$"):
        plan(synthetic(checkpointing=True), 11.0, 8)


def test_auto_takes_the_largest_fitting_divisor_and_accumulates_the_rest():
    assert plan(synthetic(), 10.5, "auto", effective=8) == (4, 2)  # 6 would fit, 4 divides
    assert plan(synthetic(), 12.0, "auto", effective=8) == (8, 1)
    assert plan(synthetic(), 40.0, "auto", effective=8) == (8, 1)  # never above the effective
    assert plan(synthetic(), 9.0, "auto", effective=6) == (3, 2)
    assert plan(synthetic(), 5.5, "auto", effective=7) == (1, 7)


def test_auto_needs_an_effective_batch_and_room_for_one_sample():
    with pytest.raises(WhisperforgeError, match=r"config train\.effective_batch_size"):
        plan(synthetic(), 12.0, "auto")
    with pytest.raises(WhisperforgeError, match=r"even micro-batch 1 needs ~5\.0 GiB"):
        plan(synthetic(), 4.5, "auto", effective=8)
