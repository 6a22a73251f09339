"""The manifest format (Whisper-Finetune's JSONL + `id`): round trip, and one line per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import record_of, speech_like

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.manifest import (
    import_eval_set,
    import_manifests,
    make_record,
    read_manifest,
    utterance_id,
    write_jsonl,
)


def test_records_round_trip_with_chinese_text_unescaped(tmp_path: Path):
    records = [
        make_record("U1", "/a/U1.wav", "今天天气很好", 1.234),
        make_record("U2", "/a/U2.wav", "好", 2),
    ]
    assert write_jsonl(tmp_path / "m.jsonl", records) == 2
    assert read_manifest(tmp_path / "m.jsonl") == records
    assert "今天" in (tmp_path / "m.jsonl").read_text(encoding="utf-8")
    assert records[0]["duration"] == 1.23 and records[0]["sentences"][0]["end"] == 1.23


def test_an_id_falls_back_to_the_audio_stem_for_other_tools_manifests():
    assert utterance_id({"audio": {"path": "/x/BAC009S0764W0121.wav"}}) == "BAC009S0764W0121"
    assert utterance_id({"id": "mine", "audio": {"path": "/x/y.wav"}}) == "mine"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"m\.jsonl:2: not valid JSON"),
        (json.dumps({"audio": {"path": "a.wav"}, "duration": 1}), r"m\.jsonl:2: .*lacks sentence"),
        (json.dumps({"audio": "a.wav", "sentence": "好", "duration": 1}), r"lacks audio\.path"),
    ],
)
def test_a_bad_line_names_the_file_and_line(tmp_path: Path, line: str, message: str):
    good = json.dumps(make_record("U1", "a.wav", "好", 1.0), ensure_ascii=False)
    (tmp_path / "m.jsonl").write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(WhisperforgeError, match=message):
        read_manifest(tmp_path / "m.jsonl")


def test_a_missing_manifest_is_one_line(tmp_path: Path):
    with pytest.raises(WhisperforgeError, match=r"nope\.jsonl: manifest not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_own_manifests_are_checked_then_copied_with_stats(tmp_path: Path):
    rows = [record_of(tmp_path / f"{i}.wav", speech_like(1.0, seed=i)) for i in range(3)]
    sources = {}
    for split, row in zip(("train", "dev", "test"), rows, strict=True):
        write_jsonl(tmp_path / f"{split}-src.jsonl", [row])
        sources[split] = tmp_path / f"{split}-src.jsonl"
    stats = import_manifests(sources, tmp_path / "out")
    assert stats["utterances"] == {"train": 1, "dev": 1, "test": 1}
    assert read_manifest(tmp_path / "out/train.jsonl") == [rows[0]]

    (tmp_path / "1.wav").unlink()  # dev's audio
    with pytest.raises(WhisperforgeError, match=r"dev-src\.jsonl: audio file .*1\.wav not found"):
        import_manifests(sources, tmp_path / "out2")
    assert not (tmp_path / "out2/train.jsonl").exists(), "nothing is written before all pass"


def test_an_eval_set_is_checked_line_by_line_and_copied(tmp_path: Path):
    good = [record_of(tmp_path / f"{i}.wav", speech_like(1.0, seed=i)) for i in range(2)]
    source = tmp_path / "lectures.jsonl"
    write_jsonl(source, good)
    out = tmp_path / "sets" / "lectures.jsonl"
    assert import_eval_set(source, out) == 2
    assert read_manifest(out) == good


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ({"audio": {"path": "x.wav"}, "duration": 1.0}, r":3: manifest line lacks sentence$"),
        ({"sentence": "你好", "duration": 1.0}, r":3: manifest line lacks audio$"),
        ("not audio", r":3: cannot read audio .*broken\.wav"),
        ("missing", r":3: cannot read audio .*missing\.wav"),
        ("empty sentence", r":3: `sentence` is not a non-empty text$"),
    ],
)
def test_a_bad_eval_set_line_names_the_file_and_line_and_writes_nothing(
    tmp_path: Path, bad_line, message: str
):
    good = [record_of(tmp_path / f"{i}.wav", speech_like(1.0, seed=i)) for i in range(2)]
    if bad_line == "not audio":
        (tmp_path / "broken.wav").write_text("this is text, not a wav")
        bad_line = {**good[0], "audio": {"path": str(tmp_path / "broken.wav")}}
    elif bad_line == "missing":
        bad_line = {**good[0], "audio": {"path": str(tmp_path / "missing.wav")}}
    elif bad_line == "empty sentence":
        bad_line = {**good[0], "sentence": " "}
    source = tmp_path / "lectures.jsonl"
    write_jsonl(source, [*good, bad_line])
    out = tmp_path / "sets" / "lectures.jsonl"
    with pytest.raises(WhisperforgeError, match=str(source).replace(".", r"\.") + message) as err:
        import_eval_set(source, out)
    assert "\n" not in str(err.value)
    assert not out.exists()
