"""The forgetting guard: checkpoint-best within a budget of general-speech CER (guard.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train import inputs, tiny_settings  # noqa: F401  (the module's fixture)

from whisperforge.train.finetune import finetune
from whisperforge.train.guard import (
    BASE_PREFIX,
    FORGETTING_KEY,
    GENERAL_PREFIX,
    OVER_BUDGET,
    Guard,
    guard_outcome,
    guarded_value,
)


def test_a_checkpoint_over_budget_never_beats_one_within_and_least_forgetting_wins_over():
    within = [guarded_value(loss, pts, 2.0) for loss, pts in [(5.0, 1.9), (0.3, 2.0), (9.0, -4)]]
    over = [guarded_value(0.01, pts, 2.0) for pts in (2.01, 30.0, 5.0)]
    assert within == [5.0, 0.3, 9.0]
    assert min(over) > max(within) and min(over) >= OVER_BUDGET
    assert sorted(over) == [guarded_value(0.01, p, 2.0) for p in (2.01, 5.0, 30.0)]


def test_the_outcome_reads_the_base_and_the_best_checkpoints_general_cer_from_the_log():
    guard = Guard("realzh", 2.0, "loss", "Chinese", "transcribe")
    history = [
        {f"{BASE_PREFIX}_cer": 0.20, "step": 2},
        {f"{GENERAL_PREFIX}_cer": 0.21, "step": 2},
        {FORGETTING_KEY: 1.0, "step": 2},
        {f"{GENERAL_PREFIX}_cer": 0.55, "step": 4},
        {FORGETTING_KEY: 35.0, "step": 4},
    ]
    assert guard_outcome(history, 2, guard) == {
        "general_set": "realzh",
        "budget_pts": 2.0,
        "base_general_cer": 0.20,
        "best_general_cer": 0.21,
        "best_forgetting_pts": 1.0,
        "within_budget": True,
    }
    assert guard_outcome(history, 4, guard)["within_budget"] is False


def guarded_run(inputs, root: Path, budget: float) -> tuple[dict, dict]:  # noqa: F811
    base, train, dev = inputs
    guard = {"general_set": "general", "budget_pts": budget, "max_utterances": 2}
    settings = tiny_settings(guard=guard, max_steps=6, eval_steps=2, save_steps=2)
    summary = finetune(
        base,
        train,
        dev,
        root / "adapter",
        root / "checkpoints",
        settings,
        threads=1,
        general_manifest=dev,
    )
    state = json.loads((root / "adapter/trainer_state.json").read_text())
    return summary, state


def test_a_guarded_run_logs_the_general_cer_and_ranks_checkpoints_by_the_guarded_loss(
    inputs,  # noqa: F811
    tmp_path,
):
    summary, state = guarded_run(inputs, tmp_path, budget=1000.0)
    history = state["log_history"]
    bases = [e for e in history if f"{BASE_PREFIX}_cer" in e]
    assert len(bases) == 1  # measured once, with the adapters off
    guarded = {e["step"]: e["eval_guarded_loss"] for e in history if "eval_guarded_loss" in e}
    losses = {
        e["step"]: e["eval_loss"] for e in history if "eval_loss" in e and e["step"] in guarded
    }
    assert sorted(guarded) == [2, 4, 6]
    assert guarded == losses  # everything within a budget of 1000 points: the dev loss decides
    best_step = min(losses, key=losses.get)
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    outcome = summary["forgetting_guard"]
    assert outcome["within_budget"] is True
    assert outcome["base_general_cer"] == bases[0][f"{BASE_PREFIX}_cer"]
    assert outcome["best_forgetting_pts"] == pytest.approx(
        100 * (outcome["best_general_cer"] - outcome["base_general_cer"]), abs=1e-4
    )


def test_with_no_checkpoint_within_budget_the_least_forgetting_is_kept_and_said(
    inputs,  # noqa: F811
    tmp_path,
):
    # A negative budget (the schema allows none) puts every checkpoint over it.
    summary, state = guarded_run(inputs, tmp_path, budget=-1e9)
    history = state["log_history"]
    forgetting = {e["step"]: e[FORGETTING_KEY] for e in history if FORGETTING_KEY in e}
    least = min(sorted(forgetting), key=forgetting.get)
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{least}")
    assert summary["forgetting_guard"]["within_budget"] is False
    assert summary["forgetting_guard"]["best_forgetting_pts"] == forgetting[least]
