"""The prepared corpus as a Hugging Face dataset (results/manifests/hf/): rows and audio back."""

from __future__ import annotations

import time
from pathlib import Path

import datasets
import pytest
from helpers import leftovers, tone_manifest

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.manifest import read_manifest, write_jsonl
from whisperforge.data.hfdata import save_hf_dataset


@pytest.fixture
def splits(manifest, tmp_path) -> dict[str, Path]:
    """The session's 3-clip manifest as train; dev and test of other clips, one of them in
    Whisper-Finetune's segment form (`audio.start_time`, `end_time`)."""
    dev = tone_manifest(tmp_path / "dev.jsonl", [("DEV_1", 0.6, "今天天气很好")])
    test = tone_manifest(
        tmp_path / "test.jsonl", [("TEST_1", 0.9, "北京"), ("TEST_2", 0.4, "上海")]
    )
    records = read_manifest(test)
    records[1]["audio"].update(start_time=0.1, end_time=0.3)
    write_jsonl(test, records)
    return {"train": manifest, "dev": dev, "test": test}


def test_the_saved_dataset_loads_back_with_the_same_rows_and_audio(splits, tmp_path):
    out = tmp_path / "results/manifests/hf"
    counts = save_hf_dataset(splits, out)
    assert counts == {"train": 3, "dev": 1, "test": 2}
    assert leftovers(out.parent, {"hf"}) == []  # no temp dir left beside it

    corpus = datasets.load_from_disk(str(out))
    assert set(corpus) == {"train", "dev", "test"}
    for split, manifest in splits.items():
        data = corpus[split]
        assert isinstance(data.features["audio"], datasets.Audio)
        assert data.features["audio"].sampling_rate == 16000
        rows = data  # undecoded: readable without torchcodec
        records = read_manifest(manifest)
        assert len(rows) == len(records)
        for row, record in zip(rows, records, strict=True):
            source = Path(record["audio"]["path"])
            # The audio travels inside the dataset: the bytes of the file, under its name.
            assert row["audio"]["bytes"] == source.read_bytes()
            assert row["audio"]["path"] == source.name
            segment = {k: v for k, v in record["audio"].items() if k != "path"}
            if segment:
                assert row["audio_info"] == pytest.approx(segment)  # JSON-typed: ujson floats
            for key, value in record.items():
                if key != "audio":
                    assert row[key] == value, (split, key)  # 0 == 0.0: the schema's float


def test_two_saves_of_the_same_manifests_are_the_same_bytes(splits, tmp_path):
    first = tmp_path / "first/hf"
    save_hf_dataset(splits, first)
    time.sleep(0.01)
    for manifest in splits.values():
        manifest.touch()  # a rebuild: same bytes, a newer mtime
    second = tmp_path / "second/hf"
    save_hf_dataset(splits, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert any(f.name == "state.json" for f in files)
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_missing_audio_file_is_named_and_nothing_is_written(splits, tmp_path):
    records = read_manifest(splits["dev"])
    records[0]["audio"]["path"] = str(tmp_path / "gone.wav")
    write_jsonl(splits["dev"], records)
    out = tmp_path / "out/hf"
    with pytest.raises(WhisperforgeError, match=r"hf: cannot embed the audio .*gone\.wav"):
        save_hf_dataset(splits, out)
    assert not out.exists() and leftovers(out.parent, set()) == []
