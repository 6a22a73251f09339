"""The forgetting guard: checkpoint-best is the best in-domain checkpoint within a budget.

A fine-tune that fixes an unheard voice can triple the error on ordinary speech (a real
whisper-base, ../shared/REFERENCE.md: 21.6 % -> 58.3 % CER on real Mandarin) while its in-domain
dev loss only improves, so the lowest dev loss alone picks the checkpoint that forgot most. With
`eval.general` set, each evaluation in training also decodes a small general-speech set (greedy,
the Trainer's own generation) and compares its CER with the base model's on the same set (the
adapters switched off, once per run):

    guarded metric = the in-domain metric            where forgetting <= budget
                   = OVER_BUDGET + forgetting (pts)  otherwise

The Trainer's own best-checkpoint tracking then does the rest (`metric_for_best_model`
`guarded_<metric>`, and `save_total_limit` never deletes the best checkpoint). When no
checkpoint is within budget, the one that forgot least is kept, and the summary says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transformers import Seq2SeqTrainer

from whisperforge.metrics.cer import normalize, score_pairs

GENERAL_PREFIX = "eval_general"  # the general set's metrics: eval_general_loss, eval_general_cer
BASE_PREFIX = "eval_general_base"  # the base model's, measured once per run
FORGETTING_KEY = "eval_forgetting_pts"  # general CER minus base's, in CER points
# Above any in-domain loss or CER: a checkpoint over budget never beats one within it.
OVER_BUDGET = 1000.0


@dataclass(frozen=True)
class Guard:
    """What the trainer guards: the general set's name, the budget in CER points, and the
    in-domain metric (`loss` or `cer`) that ranks the checkpoints within it."""

    general_set: str
    budget_pts: float
    metric: str
    language: str
    task: str

    @property
    def metric_for_best(self) -> str:
        return f"guarded_{self.metric}"


def guarded_value(in_domain: float, forgetting_pts: float, budget_pts: float) -> float:
    if forgetting_pts <= budget_pts:
        return in_domain
    return OVER_BUDGET + forgetting_pts


def cer_metric(processor: Any):
    """compute_metrics for generated predictions: CER (0-1) under whisperforge's normalization."""

    def compute(pred) -> dict[str, float]:
        labels = pred.label_ids.copy()
        labels[labels == -100] = processor.tokenizer.pad_token_id
        hyps = processor.tokenizer.batch_decode(pred.predictions, skip_special_tokens=True)
        refs = processor.tokenizer.batch_decode(labels, skip_special_tokens=True)
        scores = score_pairs([normalize(r) for r in refs], [normalize(h) for h in hyps])
        return {"cer": scores["cer"] if scores["cer"] is not None else 1.0}

    return compute


class GuardedTrainer(Seq2SeqTrainer):
    """A Seq2SeqTrainer whose evaluation also scores the general set and adds the guarded metric.

    `general_set`: the general-speech dataset (the same transform as the dev set); `guard`:
    its name, budget and metric. Without them it is a plain Seq2SeqTrainer.
    """

    def __init__(
        self,
        *args: Any,
        general_set: Any = None,
        guard: Guard | None = None,
        processor: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.general_set, self.guard, self.processor = general_set, guard, processor

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval", **gen_kwargs):
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix, **gen_kwargs)
        if self.guard is None or eval_dataset is not None or metric_key_prefix != "eval":
            return metrics
        base_cer = self._base_cer()
        general = self._general_cer(GENERAL_PREFIX)
        forgetting = round(100 * (general - base_cer), 6)
        in_domain = metrics[f"eval_{self.guard.metric}"]
        extra = {
            FORGETTING_KEY: forgetting,
            f"eval_{self.guard.metric_for_best}": guarded_value(
                in_domain, forgetting, self.guard.budget_pts
            ),
        }
        self.log(extra)
        return {**metrics, **extra}

    def _general_cer(self, prefix: str) -> float:
        """Greedy-decode the general set with the Trainer's own evaluation loop (batched,
        gathered across processes) and return its CER; the loss and CER are logged."""
        assert self.guard is not None
        saved = self.args.predict_with_generate, self.compute_metrics
        self.args.predict_with_generate = True
        self.compute_metrics = cer_metric(self.processor)
        try:
            metrics = super().evaluate(
                self.general_set,
                metric_key_prefix=prefix,
                language=self.guard.language,
                task=self.guard.task,
                num_beams=1,
                max_length=225,
            )
        finally:
            self.args.predict_with_generate, self.compute_metrics = saved
        return float(metrics[f"{prefix}_cer"])

    def _base_cer(self) -> float:
        """The base model's general CER: from the log (a resumed run measured it before), else
        measured once with the adapters off and logged."""
        for entry in self.state.log_history:
            if f"{BASE_PREFIX}_cer" in entry:
                return float(entry[f"{BASE_PREFIX}_cer"])
        with self.model.disable_adapter():  # PEFT's switch: base outputs, adapters untouched
            return self._general_cer(BASE_PREFIX)


def guard_outcome(log_history: list[Mapping[str, Any]], best_step: int | None, guard: Guard):
    """What the run's summary says of the guard: the base's and the best checkpoint's general
    CER, the forgetting in points, and whether the best checkpoint is within budget."""
    base = next((e[f"{BASE_PREFIX}_cer"] for e in log_history if f"{BASE_PREFIX}_cer" in e), None)
    at_best = {
        key: entry[key]
        for entry in log_history
        if entry.get("step") == best_step
        for key in (f"{GENERAL_PREFIX}_cer", FORGETTING_KEY)
        if key in entry
    }
    forgetting = at_best.get(FORGETTING_KEY)
    return {
        "general_set": guard.general_set,
        "budget_pts": guard.budget_pts,
        "base_general_cer": base,
        "best_general_cer": at_best.get(f"{GENERAL_PREFIX}_cer"),
        "best_forgetting_pts": forgetting,
        "within_budget": None if forgetting is None else forgetting <= guard.budget_pts,
    }
