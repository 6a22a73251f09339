"""Peak training memory of a Whisper fine-tune: measured on the model, not guessed.

One forward pass (train mode, the run's autocast) records every tensor autograd saves for backward
(`saved_tensors_hooks`), once per storage. Parameters are the weights and left out; tensors made
from parameters alone (autocast's half copies of frozen fp32 weights) are "shared": held once per
step whatever the batch; the rest is per sample. Gradient checkpointing is modelled from the same
pass by attributing each saved tensor to the layer that saved it (`held_in_backward`). Weights,
gradients and AdamW's moments are counted from the parameters. The preflight runs it on the
training device; a CPU run stands in for a GPU's by byte sizes (bf16 for fp16). Against real
CPU peaks: within 2 % at d_model 64; at turbo's width it errs high, by ~14 % of the growth of a
checkpointed step (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from whisperforge.core.errors import WhisperforgeError

GiB = 2**30
# An allowance, not a measurement: CUDA context, cuBLAS/cuDNN workspaces and caching-allocator
# slack, which no CPU pass can see.
WORKSPACE_BYTES = 3 * GiB // 4
HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


@dataclass(frozen=True)
class MemoryEstimate:
    precision: str  # fp32 | fp16 | bf16 (autocast)
    gradient_checkpointing: bool
    label_tokens: int
    weight_bytes: int  # every parameter and buffer at its storage dtype
    optimizer_bytes: int  # trainable parameters' gradients + AdamW's exp_avg and exp_avg_sq
    shared_bytes: int  # held for backward once per step whatever the batch
    per_sample_bytes: int  # held for backward per 30 s sample with label_tokens labels
    workspace_bytes: int = WORKSPACE_BYTES

    @property
    def fixed_bytes(self) -> int:
        return self.weight_bytes + self.optimizer_bytes + self.shared_bytes + self.workspace_bytes

    def peak(self, micro_batch: int) -> int:
        return self.fixed_bytes + micro_batch * self.per_sample_bytes

    def largest_fitting(self, budget_bytes: int, limit: int) -> int:
        """The largest micro-batch <= `limit` whose peak fits `budget_bytes`; 0 if not even 1."""
        return max(
            0, min(limit, (budget_bytes - self.fixed_bytes) // max(1, self.per_sample_bytes))
        )


@dataclass(frozen=True)
class Saved:
    """What one forward pass saved for backward, in bytes, split by where it was saved."""

    outside: int  # outside the checkpointable layers (embeddings, final norms, the loss)
    layers: tuple[int, ...]  # by each encoder/decoder layer
    inputs: int  # the layers' tensor inputs not saved outside (a checkpoint keeps them)
    work_outside: int = 0  # backward's working set at the loss
    work_layers: int = 0  # and in a layer


def held_in_backward(saved: Saved, checkpointing: bool) -> int:
    """Bytes held at backward's peak, from a pass without checkpointing.

    Without checkpointing everything saved is held when backward starts. A checkpointed layer keeps
    only its inputs until backward recomputes it, one layer at a time:
    total - sum(layers) + inputs + max(layers). Backward's working set (the incoming and outgoing
    gradient of the op being differentiated, 2x the largest saved tensor) comes on top: the loss's
    before any recompute, a layer's while it is recomputed.
    """
    if not checkpointing:
        return saved.outside + sum(saved.layers) + max(saved.work_outside, saved.work_layers)
    in_layer = max(saved.layers, default=0) + saved.work_layers
    return saved.outside + saved.inputs + max(in_layer, saved.work_outside)


@dataclass(frozen=True)
class Activations:
    """`held_in_backward` per sample and shared, without and with checkpointing."""

    plain: tuple[int, int]
    checkpointed: tuple[int, int]


class _FromParameters(TorchDispatchMode):
    """Marks (by storage) every tensor computed from parameters and buffers alone."""

    def __init__(self, keys: set[int]) -> None:
        super().__init__()
        self.keys, self.alive = keys, []  # alive: no address is reused while we look

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if inputs and all(_key(t) in self.keys for t in inputs):
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.keys.add(_key(t))
                    self.alive.append(t)
        return out


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def measure_activations(
    model: Any, *, precision: str, label_tokens: int, batch: int = 1
) -> Activations:
    """One training forward of `batch` 30 s inputs with `label_tokens` labels; bytes per sample."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    if precision not in ("fp32", *HALF):
        raise ValueError(f"precision {precision!r}: fp32, fp16 or bf16")
    config = model.config
    param = next(p for p in model.parameters() if p.is_floating_point())
    shape = (batch, config.num_mel_bins, 2 * config.max_source_positions)
    features = torch.zeros(shape, device=param.device, dtype=param.dtype)
    labels = torch.zeros(batch, label_tokens, dtype=torch.long, device=param.device)
    weights = {_key(t) for t in [*model.parameters(), *model.buffers()]}
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    saved: dict[int, tuple[int, int]] = {}  # storage -> (bytes, layer index, -1 outside)
    inputs: dict[int, torch.Tensor] = {}  # storage -> a layer's tensor input (kept alive)
    current = [-1]

    def pack(t: torch.Tensor) -> torch.Tensor:
        if _key(t) not in weights:
            saved.setdefault(_key(t), (t.untyped_storage().nbytes(), current[0]))
        # Detached: the same storage, without the grad_fn that would tie a saved output to its
        # own node in a cycle that outlives the graph. Never unpacked: no backward is run.
        return t.detach()

    def enter(module, args, kwargs) -> None:
        current[0] = layers.index(module)
        inputs.update((_key(t), t) for t in tree_leaves((args, kwargs)) if torch.is_tensor(t))

    hooks = [m.register_forward_pre_hook(enter, with_kwargs=True) for m in layers]
    hooks += [m.register_forward_hook(lambda *_: current.__setitem__(0, -1)) for m in layers]
    was_training, was_checkpointing = model.training, [m.gradient_checkpointing for m in layers]
    derived = _FromParameters(set(weights))
    cuda = [param.device] if param.device.type == "cuda" else []
    try:
        model.train()  # dropout (LoRA's included) saves its masks
        for m in layers:
            m.gradient_checkpointing = False
        with (
            torch.random.fork_rng(devices=cuda),
            torch.autocast(param.device.type, HALF.get(precision), enabled=precision in HALF),
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
            derived,
        ):
            loss = model(input_features=features, labels=labels, use_cache=False).loss
        del loss  # frees the graph and every tensor it saved; no backward is needed
    finally:
        for h in hooks:
            h.remove()
        for m, on in zip(layers, was_checkpointing, strict=True):
            m.gradient_checkpointing = on
        model.train(was_training)

    def split(shared: bool) -> Saved:
        kept = [(n, i) for k, (n, i) in saved.items() if (k in derived.keys) == shared]
        outside = {k for k, (_, i) in saved.items() if i < 0}
        ins = [t for k, t in inputs.items() if k not in outside and (k in derived.keys) == shared]
        gradients = 0 if shared else 2  # a gradient is per sample, whatever it flows through
        return Saved(
            outside=sum(n for n, i in kept if i < 0),
            layers=tuple(sum(n for n, i in kept if i == j) for j in range(len(layers))),
            inputs=sum({_key(t): t.untyped_storage().nbytes() for t in ins}.values()),
            work_outside=gradients * max((n for n, i in kept if i < 0), default=0),
            work_layers=gradients * max((n for n, i in kept if i >= 0), default=0),
        )

    per_sample, shared = split(False), split(True)
    batch_bytes = features.nbytes + labels.nbytes  # the batch itself lives through the step

    def both(checkpointing: bool) -> tuple[int, int]:
        held = held_in_backward(per_sample, checkpointing) + batch_bytes
        return held // batch, held_in_backward(shared, checkpointing)

    return Activations(plain=both(False), checkpointed=both(True))


def estimate_training_memory(
    model: Any,
    *,
    precision: str,
    gradient_checkpointing: bool,
    label_tokens: int,
    activations: Activations | None = None,
) -> MemoryEstimate:
    """Peak memory of a training step of `model` (Whisper, or a PeftModel around one).

    `activations`: a `measure_activations` result to reuse (one pass serves both checkpointing
    settings); measured here (one batch-1 forward) when not given.
    """
    if activations is None:
        activations = measure_activations(model, precision=precision, label_tokens=label_tokens)
    tensors = [*model.parameters(), *model.buffers()]
    storages = {_key(t): t.untyped_storage().nbytes() for t in tensors}
    trainable = {_key(p): p.nbytes for p in model.parameters() if p.requires_grad}
    per_sample, shared = activations.checkpointed if gradient_checkpointing else activations.plain
    return MemoryEstimate(
        precision=precision,
        gradient_checkpointing=gradient_checkpointing,
        label_tokens=label_tokens,
        weight_bytes=sum(storages.values()),
        optimizer_bytes=3 * sum(trainable.values()),  # gradient + 2 moments: 12 B a fp32 param
        shared_bytes=shared,
        per_sample_bytes=per_sample,
    )


def plan_micro_batch(
    estimate: MemoryEstimate,
    *,
    budget_bytes: int,
    micro_batch: int | str,
    accumulation: int,
    effective_batch: int | None,
    where: str,
) -> tuple[int, int]:
    """(micro-batch, gradient accumulation steps) for `where` with `budget_bytes` free.

    A fixed micro-batch is kept if it fits and refused otherwise; "auto" takes the largest one
    that fits and divides `effective_batch`, and accumulates the rest.
    """
    key = "config train.per_device_train_batch_size"
    free = f"{gib(budget_bytes)} free on {where}"
    turn_on = "train.gradient_checkpointing / " * (not estimate.gradient_checkpointing)
    turn_on += "train.use_8bit"
    if micro_batch != "auto":
        micro = int(micro_batch)
        if estimate.peak(micro) > budget_bytes:
            raise WhisperforgeError(
                f"{key}: micro-batch {micro} needs ~{gib(estimate.peak(micro))} by the memory"
                f" model, {free}; lower it and raise train.gradient_accumulation_steps (effective"
                f" batch {micro * accumulation}), or set it to auto, or turn on {turn_on}"
            )
        return micro, accumulation
    if not effective_batch or effective_batch < 1:
        raise WhisperforgeError(
            "config train.effective_batch_size: a positive integer is needed when"
            " train.per_device_train_batch_size is auto"
        )
    largest = estimate.largest_fitting(budget_bytes, effective_batch)
    if largest == 0:
        raise WhisperforgeError(
            f"{key}: auto: even micro-batch 1 needs ~{gib(estimate.peak(1))} by the memory model,"
            f" {free}; turn on {turn_on}, or free memory on the device"
        )
    micro = next(m for m in range(largest, 0, -1) if effective_batch % m == 0)
    return micro, effective_batch // micro
