"""A real pretrained Whisper through the real rules: faster-whisper-base (CTranslate2 float16, from
PyPI) as `model.base`, real Mandarin speech (../shared/realzh) as the general-speech set.

One DAG build, shortened: the base is imported, exported and scored; a short LoRA run on the
demo's espeak voices (which whisper-base has never heard: it loops on them) is trained with the
forgetting guard, merged, exported and scored on both sets. Every check is relative (against
base, or against faster-whisper run directly), never a fixed CER: a real model is weak on voices
it has not heard, and how weak depends on the voice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import REALZH, copy_workflow, read_hyps, realzh_manifest, snakemake

from whisperforge.cer import normalize, score_pairs
from whisperforge.files import sha256_file

pytestmark = [pytest.mark.realmodel, pytest.mark.e2e]

STEPS, EVERY = 8, 4
BUDGET = 2.0


def lane_overlay(base: Path, general: Path) -> dict:
    """REFERENCE's hand-made run, shortened: LoRA r16 on all six projections at lr 1e-3,
    faster-whisper padding, the shift augmentation, greedy decoding, on the CPU."""
    return {
        "data": {"archive": "demo/data_aishell.tgz", "md5": None, "size": None},
        "model": {"base": str(base), "revision": None},
        "train": {
            "device": "cpu",
            "max_steps": STEPS,
            "warmup_steps": 1,
            "per_device_train_batch_size": 8,
            "per_device_eval_batch_size": 8,
            "logging_steps": EVERY,
            "eval_steps": EVERY,
            "save_steps": EVERY,
            "dataloader_num_workers": 0,
            "gradient_checkpointing": False,
            "feature_padding": "faster-whisper",
            "guard_max_utterances": 8,
            "lora": {"r": 16, "alpha": 32},
            "augment": {"speed_prob": 0.0, "volume_prob": 0.0, "shift_prob": 0.5},
        },
        "export": {"quantizations": ["float16"]},
        "eval": {
            "splits": ["test"],
            "sets": {"realzh": str(general)},
            "general": "realzh",
            "max_forgetting": BUDGET,
            "beam_size": 1,
            "speed_utterances": 1,
        },
        "subtitles": {"inputs": "no-recordings/"},
    }


@pytest.fixture(scope="module")
def built(faster_whisper_base, tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("realmodel"))
    general = realzh_manifest(workdir / "realzh.jsonl")
    overlay = lane_overlay(faster_whisper_base, general)
    (workdir / "realmodel.yaml").write_text(yaml.safe_dump(overlay, allow_unicode=True))
    snakemake(workdir, "--configfile", "config.yaml", "realmodel.yaml", "--resources", "gpu=1")
    return workdir


def cer_of(workdir: Path, model: str, name: str) -> float:
    return json.loads((workdir / f"results/eval/{model}/{name}/cer.json").read_text())["cer"]


def test_the_imported_base_exports_back_to_the_packaged_model_byte_for_byte(
    built, faster_whisper_base
):
    exported = built / "results/models/base/ct2-float16/model.bin"
    assert sha256_file(exported) == sha256_file(faster_whisper_base / "model.bin")


def test_zero_shot_on_real_speech_matches_faster_whisper_run_directly(built, faster_whisper_base):
    from faster_whisper import WhisperModel

    model = WhisperModel(str(faster_whisper_base), device="cpu", compute_type="default")
    refs, hyps = [], []
    for record in read_hyps(built / "results/manifests/sets/realzh.jsonl"):
        segments, _ = model.transcribe(
            record["audio"]["path"],  # faster-whisper decodes and resamples the file itself
            language="zh",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        refs.append(normalize(record["sentence"]))
        hyps.append(normalize("".join(s.text for s in segments)))
    direct = score_pairs(refs, hyps)["cer"]
    assert len(refs) == len((REALZH / "clips.tsv").read_text().splitlines()) - 1
    assert abs(cer_of(built, "base", "realzh") - direct) <= 0.01
    # Real speech it knows, unheard synthetic voices it does not: the lane's premise.
    assert cer_of(built, "base", "realzh") < cer_of(built, "base", "test")


def test_a_short_lora_run_adapts_to_the_unheard_voices(built):
    assert cer_of(built, "lora", "test") < 0.5 * cer_of(built, "base", "test")


def test_forgetting_is_measured_flagged_by_the_budget_and_guarded_in_training(built):
    base, lora = cer_of(built, "base", "realzh"), cer_of(built, "lora", "realzh")
    points = round(100 * (lora - base), 2)
    summary = (built / "results/summary.md").read_text(encoding="utf-8")
    assert "## Forgetting: general speech against the target set" in summary
    assert f"| lora | test | {100 * cer_of(built, 'lora', 'test'):.2f} |" in summary
    assert f"| realzh | {100 * lora:.2f} | {points:+.2f} |" in summary
    assert ("⚠ lora forgot general speech (realzh)" in summary) == (points > BUDGET)

    training = json.loads((built / "results/models/lora/adapter/training_summary.json").read_text())
    guard = training["forgetting_guard"]
    assert guard["general_set"] == "realzh" and guard["budget_pts"] == BUDGET
    state = json.loads((built / "results/models/lora/adapter/trainer_state.json").read_text())
    measured = {
        e["step"]: e["eval_forgetting_pts"]
        for e in state["log_history"]
        if "eval_forgetting_pts" in e
    }
    assert sorted(measured) == list(range(EVERY, STEPS + 1, EVERY))
    within = [step for step, pts in measured.items() if pts <= BUDGET]
    best_step = int(state["best_model_checkpoint"].rsplit("-", 1)[1])
    assert guard["within_budget"] == bool(within)
    if within:  # the best dev loss among the checkpoints within budget
        losses = {e["step"]: e["eval_loss"] for e in state["log_history"] if "eval_loss" in e}
        assert best_step == min(within, key=lambda s: (losses[s], s))
    else:  # none: the one that forgot least, and the summary says so
        assert best_step == min(measured, key=lambda s: (measured[s], s))
        assert "⚠ lora: no checkpoint was within" in summary

    card = (built / "results/hub/lora/transformers/README.md").read_text(encoding="utf-8")
    assert f"`realzh` this model's CER is {100 * lora:.2f} %" in card
