"""Stop a diverged training at once, instead of spending the rest of a day on NaN weights.

`DivergenceStop` watches what the Trainer logs (`loss`, `grad_norm`, every `logging_steps`):
`patience` logged steps in a row with a non-finite value, or a loss above `max_loss_factor`
times its running value, raise `TrainingDiverged`, one line naming the step, the value and the
keys to change. While such a streak lasts nothing is saved, so the last checkpoint on disk is
one from before it; the step's declared output is never written (it comes after training).

Under fp16 a non-finite grad_norm is the GradScaler's overflow: it skips that step and lowers the
scale, by design, so there only the loss counts. The settings (`train.divergence`) decide when a
run stops, never what it learns, so they are weight-neutral for resume (checkpoints.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from whisperforge.core.errors import WhisperforgeError

RUNNING_WEIGHT = 0.9  # the running loss: an exponential average over ~10 logged steps


class TrainingDiverged(WhisperforgeError):
    """A run whose loss or gradient norm went non-finite, or whose loss exploded."""


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


class DivergenceStop(TrainerCallback):
    def __init__(
        self,
        patience: int,
        max_loss_factor: float | None,
        *,
        learning_rate: float,
        precision: str,
        checkpoints: Path,
    ) -> None:
        self.patience, self.max_loss_factor = patience, max_loss_factor
        self.learning_rate, self.precision, self.checkpoints = learning_rate, precision, checkpoints
        self.running: float | None = None
        self.streak: list[tuple[int, str]] = []  # (step, what was wrong), the bad logs in a row
        self.held_save = False  # a save this step's end asked for, held until its log is seen

    def problem(self, logs: dict[str, Any]) -> str | None:
        """What is wrong with one logged training step, or None."""
        loss, grad_norm = logs["loss"], logs.get("grad_norm")
        if not _finite(loss):
            return f"loss {loss}"
        if grad_norm is not None and not _finite(grad_norm) and self.precision != "fp16":
            return f"grad_norm {grad_norm} (loss {loss:.4g})"
        if self.max_loss_factor and self.running and loss > self.max_loss_factor * self.running:
            return (
                f"loss {loss:.4g}, {loss / self.running:.0f}x its running value "
                f"{self.running:.4g} (train.divergence.max_loss_factor: {self.max_loss_factor:g})"
            )
        return None

    def on_step_end(self, args, state, control, **kwargs):
        # Weights of a diverging run must not become "the last checkpoint": while a streak lasts,
        # a save waits for this step's log (if it logs) to show the run is well again.
        self.held_save = bool(self.streak and control.should_save)
        if self.held_save:
            control.should_save = False
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:  # evaluation and the end-of-training summary
            return control
        problem = self.problem(logs)
        if problem is None:
            self.streak.clear()
            control.should_save = control.should_save or self.held_save
            loss = float(logs["loss"])
            self.running = (
                loss
                if self.running is None
                else RUNNING_WEIGHT * self.running + (1 - RUNNING_WEIGHT) * loss
            )
            return control
        self.streak.append((state.global_step, problem))
        control.should_save = False
        if len(self.streak) >= self.patience:
            raise TrainingDiverged(self.message())
        return control

    def message(self) -> str:
        (first, _), (step, problem) = self.streak[0], self.streak[-1]
        since = f" since step {first}" if first != step else ""
        return (
            f"training diverged at step {step}: {problem}, {len(self.streak)} logged step(s) in a "
            f"row{since} (train.divergence.patience: {self.patience}); lower train.learning_rate "
            f"(now {self.learning_rate:g}) or change train.precision (now {self.precision}); "
            f"nothing was saved from step {first} on; earlier checkpoints stay in "
            f"{self.checkpoints}"
        )
