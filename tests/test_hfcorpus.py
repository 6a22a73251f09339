"""A Hugging Face dataset as a corpus: an audiofolder, save_to_disk output and parquet files, each
read into 16 kHz wavs and manifests with AISHELL's text normalization; bad rows stop with one
line naming the row (data.bad_wav: error) or are counted (skip), and an error writes nothing."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from helpers import speech_like

from whisperforge.core.errors import WhisperforgeError
from whisperforge.data.hfcorpus import import_hf_corpus

DATA = {"min_audio_s": 0.1, "max_audio_s": 30.0, "max_text_chars": 200, "bad_wav": "error"}
SPLITS = {"train": "train", "dev": None, "test": "test"}
# file name -> (sample rate, seconds, metadata text, speaker)
TRAIN = {
    "a.wav": (8000, 0.5, "今天 天气 很好", "s1"),
    "b.wav": (44100, 0.7, "ＡＢＣ 学习", "s2"),
    "c.mp3": (44100, 1.0, "你好 世界", "s1"),
}
TEST = {"d.wav": (22050, 0.6, "再见", "s3")}


def mp3_bytes(samples: np.ndarray, rate: int) -> bytes:
    """An mp3 of the samples, encoded by PyAV (Common Voice ships mp3)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buf.getvalue()


def write_audio(path: Path, rate: int, seconds: float, seed: int) -> None:
    samples = speech_like(seconds, seed=seed)[: int(seconds * 16000)]
    samples = np.interp(
        np.arange(int(seconds * rate)) * 16000 / rate, np.arange(samples.size), samples
    )
    samples = samples.astype(np.float32)
    if path.suffix == ".mp3":
        path.write_bytes(mp3_bytes(samples, rate))
    else:
        soundfile.write(str(path), samples, rate)


def audiofolder(root: Path, extra: list[str] = ()) -> Path:
    """train/ and test/ folders of audio with metadata.csv (file_name,sentence,speaker)."""
    for split, files in (("train", TRAIN), ("test", TEST)):
        folder = root / split
        folder.mkdir(parents=True)
        rows = ["file_name,sentence,speaker"]
        for k, (name, (rate, seconds, text, speaker)) in enumerate(files.items()):
            write_audio(folder / name, rate, seconds, seed=k)
            rows.append(f"{name},{text},{speaker}")
        if split == "train":
            rows += extra
        (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def hf_settings(path: Path, **changes) -> dict:
    return {
        "path": str(path),
        "name": None,
        "revision": None,
        "splits": SPLITS,
        "audio_column": "audio",
        "text_column": "sentence",
        "speaker_column": "speaker",
        **changes,
    }


def read(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]


def test_an_audiofolder_becomes_16khz_wavs_and_normalized_manifests(tmp_path):
    source = audiofolder(tmp_path / "cv")
    out, audio = tmp_path / "manifests", tmp_path / "audio"
    stats = import_hf_corpus("cv", hf_settings(source), source, DATA, audio, out)
    assert stats["utterances"] == {"train": 3, "dev": 0, "test": 1}
    assert stats["speakers"] == {"train": 2, "dev": 0, "test": 1}
    assert stats["kind"] == "hf" and stats["hours"]["train"] == pytest.approx(2.2 / 3600, abs=1e-4)
    train = read(out, "train")
    assert [r["sentence"] for r in train] == ["今天天气很好", "ABC学习", "你好世界"]
    assert read(out, "dev") == []
    for record, (_, seconds, _, speaker) in zip(train, TRAIN.values(), strict=True):
        info = soundfile.info(record["audio"]["path"])
        assert info.samplerate == 16000 and info.channels == 1, record
        assert Path(record["audio"]["path"]).is_relative_to(audio / "train")
        assert record["duration"] == pytest.approx(seconds, abs=0.06)  # mp3 pads its frames
        assert record["speaker"] == speaker
    assert json.loads((out / "stats.json").read_text())["utterances"] == stats["utterances"]


def _as_dataset(source: Path):
    """The audiofolder as a DatasetDict with the audio bytes inside (no torchcodec needed)."""
    from datasets import Audio, Dataset, DatasetDict

    splits = {}
    for split, files in (("train", TRAIN), ("test", TEST)):
        rows = {"audio": [], "sentence": [], "speaker": []}
        for name, (_, _, text, speaker) in files.items():
            data = (source / split / name).read_bytes()
            rows["audio"].append({"bytes": data, "path": name})
            rows["sentence"].append(text)
            rows["speaker"].append(speaker)
        splits[split] = Dataset.from_dict(rows).cast_column("audio", Audio())
    return DatasetDict(splits)


@pytest.mark.parametrize("form", ["save_to_disk", "parquet"])
def test_save_to_disk_and_parquet_give_what_the_audiofolder_gives(tmp_path, form):
    folder = audiofolder(tmp_path / "cv")
    stats = import_hf_corpus(
        "cv", hf_settings(folder), folder, DATA, tmp_path / "a0", tmp_path / "m0"
    )
    dataset = _as_dataset(folder)
    source = tmp_path / form
    if form == "save_to_disk":
        dataset.save_to_disk(str(source))
    else:
        for split, part in dataset.items():
            part.to_parquet(str(source / "data" / f"{split}-00000-of-00001.parquet"))
    got = import_hf_corpus("cv", hf_settings(source), source, DATA, tmp_path / "a", tmp_path / "m")
    assert got["utterances"] == stats["utterances"] and got["speakers"] == stats["speakers"]
    strip = [(r["sentence"], r["duration"]) for r in read(tmp_path / "m0", "train")]
    assert [(r["sentence"], r["duration"]) for r in read(tmp_path / "m", "train")] == strip


BAD_ROWS = ["gone.wav,不在,s1", "a.wav, ,s1", "junk.wav,坏的,s1"]  # " ": no words


def test_a_bad_row_stops_with_one_line_naming_the_row_and_writes_nothing(tmp_path):
    source = audiofolder(tmp_path / "cv", extra=BAD_ROWS[1:2])
    out, audio = tmp_path / "manifests", tmp_path / "audio"
    with pytest.raises(WhisperforgeError) as error:
        import_hf_corpus("cv", hf_settings(source), source, DATA, audio, out)
    message = str(error.value)
    assert "\n" not in message
    assert re.search(
        rf"{re.escape(str(source))} split 'train' row 3 .*a\.wav\): empty text", message
    )
    assert "data.bad_wav: skip" in message
    assert not out.exists() and not audio.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["cv"]  # no staging folder left either


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path):
    source = audiofolder(tmp_path / "cv", extra=BAD_ROWS)
    (source / "train" / "junk.wav").write_bytes(b"RIFF not really a wav")
    (source / "train" / "gone.wav").write_bytes(b"")  # the audiofolder lists it; then it goes
    (source / "train" / "gone.wav").unlink()
    out = tmp_path / "manifests"
    stats = import_hf_corpus(
        "cv", hf_settings(source), source, {**DATA, "bad_wav": "skip"}, tmp_path / "audio", out
    )
    assert stats["utterances"]["train"] == 3
    assert stats["skipped"]["train"] == {"empty_text": 1, "missing_audio": 1, "unreadable_audio": 1}


def test_a_missing_column_or_split_names_its_key(tmp_path):
    source = audiofolder(tmp_path / "cv")
    with pytest.raises(WhisperforgeError, match=r"hf\.text_column: no column 'text' in"):
        import_hf_corpus(
            "cv",
            hf_settings(source, text_column="text"),
            source,
            DATA,
            tmp_path / "a",
            tmp_path / "m",
        )
    splits = {**SPLITS, "dev": "validation"}
    with pytest.raises(
        WhisperforgeError, match=r"hf\.splits\.dev: no split 'validation' in .*has: train, test"
    ):
        import_hf_corpus(
            "cv", hf_settings(source, splits=splits), source, DATA, tmp_path / "a", tmp_path / "m"
        )
