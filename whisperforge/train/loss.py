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

IGNORED = -100  # the collator's label padding


def token_mean_loss(
    outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    logits = outputs.logits.float()  # float32 for the sum, as transformers' own losses upcast
    summed = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.to(logits.device).reshape(-1),
        ignore_index=IGNORED,
        reduction="sum",
    )
    if num_items_in_batch is None:  # called outside a training step: this batch's own mean
        num_items_in_batch = labels.ne(IGNORED).sum()
    return summed / num_items_in_batch
