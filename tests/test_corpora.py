"""Own-recordings corpora: finding recordings, splits held out by recording or speaker, the mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ROOT

from whisperforge.core.config import run_mix, run_settings, validate_config
from whisperforge.core.errors import WhisperforgeError
from whisperforge.data.corpora import (
    assign_splits,
    corpus_plan,
    find_recordings,
    gather_split,
    mix_manifests,
    repeat_by_weight,
    subset_of_recordings,
)

SETTINGS = {"test": None, "dev": None, "test_fraction": 0.1, "dev_fraction": 0.1, "split_seed": 0}


def lectures(folder: Path, names: list[str], subtitle: str = "srt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.mp4").write_bytes(b"x")
        (folder / f"{name}.{subtitle}").write_text("1\n00:00:00,000 --> 00:00:01,000\n好\n")
    return folder


def test_recordings_pair_with_their_subtitle_files_and_odd_names_work(tmp_path):
    names = ["讲座 第1课 (final)", "it's a&b [v2] 100%", "l$3;x"]
    folder = lectures(tmp_path / "lec", names)
    (folder / "notes.txt").write_text("ignored")
    found = find_recordings("lec", folder, {"l$3;x.mp4": "wang"})
    assert sorted(r.name for r in found) == sorted(names)
    by_name = {r.name: r for r in found}
    assert by_name["l$3;x"].speaker == "wang"
    assert by_name["讲座 第1课 (final)"].speaker == "讲座 第1课 (final)"  # its own speaker
    assert by_name["it's a&b [v2] 100%"].subtitles.name == "it's a&b [v2] 100%.srt"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("lonely.mp3", "lonely.mp3: recording without a subtitle file"),
        ("orphan.vtt", "orphan.vtt: subtitle file without a recording"),
        ("a.wav", "two files for one recording name"),
    ],
)
def test_a_recording_or_subtitle_file_without_its_pair_is_one_line_naming_it(
    tmp_path, extra, message
):
    folder = lectures(tmp_path / "lec", ["a", "b"])
    (folder / extra).write_bytes(b"x")
    with pytest.raises(WhisperforgeError, match=message.replace("[", r"\[").replace(".", r"\.")):
        find_recordings("lec", folder, {})


def test_named_splits_hold_out_recordings_and_whole_speakers(tmp_path):
    folder = lectures(tmp_path / "lec", [f"l{i}" for i in range(6)])
    recordings = find_recordings("lec", folder, {"l4": "li", "l5": "li"})
    splits = assign_splits("lec", {**SETTINGS, "test": ["l0.mp4"], "dev": ["li"]}, recordings)
    assert splits == {
        "l0": "test",
        "l4": "dev",
        "l5": "dev",
        "l1": "train",
        "l2": "train",
        "l3": "train",
    }


def test_fractions_hold_out_seeded_recordings_and_never_all(tmp_path):
    folder = lectures(tmp_path / "lec", [f"l{i:02d}" for i in range(20)])
    recordings = find_recordings("lec", folder, {})
    a = assign_splits("lec", {**SETTINGS, "test_fraction": 0.2}, recordings)
    b = assign_splits("lec", {**SETTINGS, "test_fraction": 0.2}, recordings)
    c = assign_splits("lec", {**SETTINGS, "test_fraction": 0.2, "split_seed": 1}, recordings)
    assert a == b != c
    assert list(a.values()).count("test") == 4 and list(a.values()).count("dev") == 2
    two = find_recordings("lec2", lectures(tmp_path / "two", ["x", "y"]), {})
    assert (
        list(assign_splits("lec2", {**SETTINGS, "test_fraction": 1.0}, two).values()).count("train")
        >= 1
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"test": ["nope"]},
            "config data.corpora.lec.test: 'nope' is neither a recording nor a speaker",
        ),
        ({"test": ["l0"], "dev": ["l0"]}, "config data.corpora.lec.dev: l0 is already in test"),
        ({"test": ["l0", "l1"], "dev": ["l2"]}, "none is left to train on"),
    ],
)
def test_bad_split_lists_name_the_key(tmp_path, change, message):
    recordings = find_recordings("lec", lectures(tmp_path / "lec", ["l0", "l1", "l2"]), {})
    with pytest.raises(WhisperforgeError, match=message.replace(".", r"\.")):
        assign_splits("lec", {**SETTINGS, **change}, recordings)


def test_weights_repeat_records_and_a_fraction_draws_a_growing_subset():
    records = [{"i": i} for i in range(10)]
    assert len(repeat_by_weight(records, 2.0, 0)) == 20
    mixed = repeat_by_weight(records, 1.5, 0)
    assert len(mixed) == 15 and mixed[:10] == records
    assert mixed[10:] == repeat_by_weight(records, 1.5, 0)[10:]  # seeded
    names = [f"r{i}" for i in range(10)]
    small, large = subset_of_recordings(names, 0.3, 7), subset_of_recordings(names, 0.6, 7)
    assert len(small) == 3 and len(large) == 6 and small < large


def write_manifest(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return str(path)


def test_mix_weights_train_takes_dev_once_and_counts_hours(tmp_path):
    def rec(i: int, name: str) -> dict:
        return {
            "id": f"{name}{i}",
            "audio": {"path": "x.wav"},
            "duration": 3600.0,
            "sentence": "好",
            "recording": name,
        }

    sources = {
        "aishell": {
            "train": write_manifest(
                tmp_path / "a_train.jsonl",
                [{"id": "a", "audio": {"path": "x.wav"}, "duration": 1.0, "sentence": "好"}],
            ),
            "dev": write_manifest(
                tmp_path / "a_dev.jsonl",
                [{"id": "ad", "audio": {"path": "x.wav"}, "duration": 1.0, "sentence": "好"}],
            ),
        },
        "lec": {
            "train": write_manifest(
                tmp_path / "l_train.jsonl", [rec(i, f"l{i % 4}") for i in range(8)]
            ),
            "dev": write_manifest(tmp_path / "l_dev.jsonl", [rec(0, "d")]),
        },
    }
    mix = {"aishell": {"weight": 1.0, "fraction": 1.0}, "lec": {"weight": 3.0, "fraction": 0.5}}
    records, facts = mix_manifests(sources, mix, seed=42)
    assert len(records["train"]) == 1 + 3 * 4  # half of 4 recordings, 2 windows each, x3
    assert len(records["dev"]) == 2
    assert facts["lec"]["recordings"] == 2 and facts["lec"]["hours"] == 4.0
    assert facts["lec"]["samples_per_epoch"] == 12


def test_gather_split_keeps_no_speech_windows_for_training_only(tmp_path):
    windows = write_manifest(
        tmp_path / "w.jsonl",
        [
            {"id": str(i), "audio": {"path": "x.wav"}, "duration": 1.0, "sentence": t}
            for i, t in ((1, "好"), (2, ""))
        ],
    )
    assert gather_split("train", [windows], tmp_path / "train.jsonl") == 2
    assert gather_split("test", [windows], tmp_path / "test.jsonl") == 1
    assert gather_split("dev", [], tmp_path / "dev.jsonl") == 0


def config_with(tmp_path, corpora, runs):
    import yaml

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["data"]["corpora"] = corpora
    config["runs"] = runs
    return validate_config(config, ROOT / "schemas" / "config.schema.yaml")


def test_config_fills_corpus_defaults_and_reads_mixes(tmp_path):
    folder = lectures(tmp_path / "lec", ["a", "b", "c"])
    config = config_with(
        tmp_path,
        {"lec": {"recordings": str(folder), "test": ["a"]}},
        {"lora": {}, "mine": {"mix": {"aishell": 1, "lec": {"weight": 3, "fraction": 0.5}}}},
    )
    assert config["data"]["corpora"]["lec"]["check"]["model"] == "base"
    assert run_mix(config, "lora") == {"aishell": {"weight": 1.0, "fraction": 1.0}}
    assert run_mix(config, "mine")["lec"] == {"weight": 3.0, "fraction": 0.5}
    assert "mix" not in run_settings(config, "mine")
    plan = corpus_plan("lec", config["data"]["corpora"]["lec"])
    assert plan["a"]["split"] == "test"


@pytest.mark.parametrize(
    ("corpora", "runs", "message"),
    [
        ({}, {"m": {"mix": {"lectures": 1}}}, "config runs.m.mix.lectures: no such corpus"),
        (
            {"lec": {"recordings": "/nonexistent"}},
            {"m": {}},
            "config data.corpora.lec.recordings: /nonexistent: folder not found",
        ),
        ({}, {"m": {"mix": {"aishell": 0}}}, "config runs.m.mix.aishell"),
        ({"train": {"recordings": "."}}, {"m": {}}, "config data.corpora"),
    ],
)
def test_bad_corpus_config_is_one_line_naming_the_key(tmp_path, corpora, runs, message):
    with pytest.raises(WhisperforgeError, match=message.replace(".", r"\.")):
        config_with(tmp_path, corpora, runs)
