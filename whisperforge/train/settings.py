"""A training job's settings as one typed, frozen value, built once from the rule's params.

The fields are config `train`'s keys (a run's overlay applied, every default filled by the schema,
which documents each), with how the data is read (`data.streaming`) and the forgetting guard
(from `eval.general`). The step builds it once (`TrainSettings.from_mapping`) and passes it whole;
`as_dict` gives it back for the resume fingerprint and a data-parallel rank's job file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal


@dataclass(frozen=True)
class TrainSettings:
    learning_rate: float
    warmup_steps: int
    num_train_epochs: float
    max_steps: int
    per_device_train_batch_size: int | Literal["auto"]
    effective_batch_size: int | None
    per_device_eval_batch_size: int
    gradient_accumulation_steps: int
    logging_steps: int
    eval_steps: int
    save_steps: int
    save_total_limit: int
    language: str | None
    task: str
    timestamps: bool
    report_to: list[str]
    device: str
    gpus: int  # data-parallel processes per node
    nodes: int  # nodes of a SLURM job, each running `gpus` processes
    precision: str
    fp16: bool | Literal["auto"]
    gradient_checkpointing: bool
    eval_max_utterances: int | None
    use_8bit: bool
    use_adalora: bool
    use_compile: bool
    metric_for_best: str
    seed: int
    dataloader_num_workers: int
    feature_padding: str
    full_finetune: bool
    forgetting_guard: bool
    guard_max_utterances: int
    divergence: dict[str, Any]
    lora: dict[str, Any]
    adalora: dict[str, Any]
    augment: dict[str, Any]
    streaming: bool = False  # data.streaming: the manifests read as an IterableDataset
    guard: dict[str, Any] | None = None  # the forgetting guard (rules/common.smk guard_settings)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> TrainSettings:
        """From a validated `train` section (plus `streaming`, `guard`); an unknown key is a
        programming error here, the schema having refused it in a user's config."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"TrainSettings: unknown keys {', '.join(unknown)}")
        return cls(**settings)

    @property
    def world_size(self) -> int:
        """Data-parallel processes in all: `gpus` on each of `nodes`."""
        return self.gpus * self.nodes

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
