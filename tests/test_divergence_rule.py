"""A diverging run through the real `finetune` rule: it stops with one line naming the step, the
value and the keys to change, writes no adapter, and keeps only the checkpoints from before it."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import yaml
from helpers import copy_workflow, record_of, snakemake, speech_like

from whisperforge.core.manifest import write_jsonl

SENTENCES = ["今天天气很好", "我们明天开会", "经济增长很快", "北京是首都"]
RUN = "lora"
SAVE_STEPS = 2
# A learning rate of 1000 takes the tiny model's grad_norm to NaN at step 3, its loss at step 4
# (as in test_train.py); patience 3 stops the run two logged steps after the first bad one.
SETTINGS = {
    "device": "cpu",
    "learning_rate": 1000.0,
    "warmup_steps": 0,
    "max_steps": 12,
    "logging_steps": 1,
    "eval_steps": 2,
    "save_steps": SAVE_STEPS,
    "per_device_train_batch_size": 2,
    "dataloader_num_workers": 0,
    "lora": {"r": 4, "alpha": 8},
}
MESSAGE = (
    r"whisperforge error in rule finetune: training diverged at step (\d+): "
    r"(loss|grad_norm) nan.* in a row since step (\d+) \(train.divergence.patience: 3\); "
    r"lower train.learning_rate \(now 1000\) or change train.precision \(now fp32\); "
    rf"nothing was saved from step \3 on; earlier checkpoints stay in results/checkpoints/{RUN}$"
)


def workflow(root: Path) -> Path:
    """A workflow copy with a tiny local base model and four short utterances as its manifests."""
    from whisperforge.model.tinymodel import build_tiny_whisper

    workdir = copy_workflow(root)
    # Not conftest's `tiny`: its decoder is pinned to a constant output, so nothing diverges.
    build_tiny_whisper(workdir / "tiny model", d_model=32, ffn_dim=64)
    data = workdir / "my data"
    data.mkdir()
    records = [
        record_of(data / f"{i}.wav", speech_like(1.0 + 0.3 * i, seed=i), sentence)
        for i, sentence in enumerate(SENTENCES)
    ]
    for split, chosen in (("train", records), ("dev", records[:2]), ("test", records[:2])):
        write_jsonl(data / f"{split}.jsonl", chosen)
    config = {
        "model": {"base": "tiny model", "revision": None},
        "data": {"manifests": {s: f"my data/{s}.jsonl" for s in ("train", "dev", "test")}},
        "train": SETTINGS,
    }
    (workdir / "mine.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return workdir


def test_a_diverging_run_fails_its_rule_with_one_line_and_keeps_the_checkpoints_before_it(
    tmp_path,
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir = workflow(tmp_path / "wf")
    target = f"results/models/{RUN}/adapter"
    proc = snakemake(workdir, target, "--configfile", "config.yaml", "mine.yaml", check=False)
    assert proc.returncode != 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if re.fullmatch(MESSAGE, line)]
    assert len(lines) == 1, proc.stderr[-6000:]
    found = re.fullmatch(MESSAGE, lines[0])
    last_step, first_bad = int(found[1]), int(found[3])
    assert last_step == first_bad + 2, lines[0]
    log = (workdir / f"logs/train/finetune_{RUN}.log").read_text(encoding="utf-8")
    assert f"ERROR finetune: {lines[0].split(': ', 1)[1]}" in log
    assert "Traceback" not in proc.stderr and "Traceback" not in log  # the one line only

    # The declared outputs are absent, so nothing downstream (merge, export, ...) can run.
    assert not (workdir / f"results/models/{RUN}/adapter").exists()
    assert not (workdir / f"results/models/{RUN}/loss.png").exists()
    # Every checkpoint from before the first bad step stays, and none after it was written.
    checkpoints = workdir / f"results/checkpoints/{RUN}"
    saved = sorted(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*"))
    assert saved and saved == list(range(SAVE_STEPS, first_bad, SAVE_STEPS)), saved
    state = json.loads((checkpoints / f"checkpoint-{saved[-1]}/trainer_state.json").read_text())
    kept = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert kept and all(math.isfinite(loss) for loss in kept), kept

    # The curves hold every logged step up to the one named, NaN as NaN: not filtered away (the
    # Trainer's logging_nan_inf_filter would), and flushed before the job exited.
    curves = EventAccumulator(str(workdir / f"results/models/{RUN}/tensorboard")).Reload()
    losses = [(e.step, e.value) for e in curves.Scalars("train/loss")]
    grad_norms = [e.value for e in curves.Scalars("train/grad_norm")]
    assert [step for step, _ in losses] == list(range(1, last_step + 1)), losses
    assert all(math.isfinite(loss) for _, loss in losses[: first_bad - 1]), losses
    assert math.isnan(losses[-1][1] if found[2] == "loss" else grad_norms[-1]), (losses, grad_norms)
