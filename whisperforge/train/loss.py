"""The training loss: cross-entropy averaged over every label token of the optimizer step.

Whisper's own loss is the mean over one micro-batch's tokens, so with gradient accumulation or
several processes the step averaged per-batch means, weighting a token of a short batch more than
one of a long batch. Given as the Trainer's `compute_loss_func`, this sums the tokens' losses and
divides by `num_items_in_batch`, the Trainer's count of label tokens over the whole step (all
micro-batches; all processes with `average_tokens_across_devices`): N processes or accumulated
micro-batches take the optimizer step one process takes on the whole batch.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.loss.loss_utils import ForMaskedLMLoss


def token_mean_loss(
    outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    # transformers' token-level loss without a shift (Whisper's labels are already aligned with
    # its logits: the decoder's inputs are the labels shifted right, dataset.SpeechCollator):
    # float32 logits, -100 ignored, summed over `num_items_in_batch` (this batch's mean without).
    logits = outputs.logits
    return ForMaskedLMLoss(logits, labels, logits.shape[-1], num_items_in_batch)
