"""A lhotse corpus: a RecordingSet + SupervisionSet of one long recording, and the same as a
CutSet, become manifest records that point into the recording with start_time/end_time (no audio
re-cut), which the training reader honours; a supervision without text follows data.bad_wav."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from helpers import speech_like
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

from whisperforge.core.audio import read_training_audio
from whisperforge.core.errors import WhisperforgeError
from whisperforge.data.lhotsecorpus import import_lhotse_corpus

DATA = {"min_audio_s": 0.1, "max_audio_s": 30.0, "max_text_chars": 200, "bad_wav": "error"}
RATE = 8000  # not 16 kHz: training resamples the stretch it reads
# (supervision id, start, duration, text)
SUPERVISIONS = [
    ("u1", 1.0, 2.0, "第一 句"),
    ("u2", 4.5, 1.5, "第二 句"),
    ("u3", 7.0, 2.5, "ＯＫ 好"),
]


def long_recording(folder: Path, texts: list[str] | None = None) -> tuple[Path, Path, Path]:
    """One 10 s recording with three supervisions at offsets: (recordings, supervisions, cuts)."""
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / "lecture.wav"
    samples = speech_like(10.0, seed=3)
    soundfile.write(
        str(wav), np.interp(np.arange(10 * RATE) * 2, np.arange(samples.size), samples), RATE
    )
    recording = Recording.from_file(wav, recording_id="lecture")
    texts = texts or [text for *_, text in SUPERVISIONS]
    segments = [
        SupervisionSegment(
            id=sid, recording_id="lecture", start=start, duration=dur, text=text, speaker="wang"
        )
        for (sid, start, dur, _), text in zip(SUPERVISIONS, texts, strict=True)
    ]
    paths = (
        folder / "recordings.jsonl.gz",
        folder / "supervisions.jsonl.gz",
        folder / "cuts.jsonl.gz",
    )
    RecordingSet.from_recordings([recording]).to_file(paths[0])
    SupervisionSet.from_segments(segments).to_file(paths[1])
    CutSet.from_manifests(
        recordings=RecordingSet.from_recordings([recording]),
        supervisions=SupervisionSet.from_segments(segments),
    ).to_file(paths[2])
    return paths


def read(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]


def test_supervisions_point_into_their_recording_with_start_and_end_times(tmp_path):
    recordings, supervisions, _ = long_recording(tmp_path / "lh")
    settings = {
        "recordings": {"train": str(recordings)},
        "supervisions": {"train": str(supervisions)},
    }
    stats = import_lhotse_corpus("lh", settings, DATA, tmp_path / "out")
    records = read(tmp_path / "out", "train")
    assert [(r["audio"]["start_time"], r["audio"]["end_time"]) for r in records] == [
        (1.0, 3.0),
        (4.5, 6.0),
        (7.0, 9.5),
    ]
    assert [r["sentence"] for r in records] == ["第一句", "第二句", "OK好"]
    assert {r["audio"]["path"] for r in records} == {
        str(tmp_path / "lh" / "lecture.wav")
    }  # not re-cut
    assert [r["duration"] for r in records] == [2.0, 1.5, 2.5]
    assert {r["recording"] for r in records} == {"lecture"} and {r["speaker"] for r in records} == {
        "wang"
    }
    assert stats["utterances"] == {"train": 3, "dev": 0, "test": 0}
    assert stats["speakers"]["train"] == 1 and stats["hours"]["train"] == pytest.approx(
        6 / 3600, abs=1e-4
    )
    assert read(tmp_path / "out", "test") == []
    second = records[1]["audio"]
    audio = read_training_audio(second["path"], second["start_time"], second["end_time"])
    assert audio.size == 1.5 * 16000  # the stretch, resampled to 16 kHz at training time


def test_a_cutset_gives_what_its_recordings_and_supervisions_give(tmp_path):
    recordings, supervisions, cuts = long_recording(tmp_path / "lh")
    import_lhotse_corpus("lh", {"cuts": {"test": str(cuts)}}, DATA, tmp_path / "cuts")
    pair = {"recordings": {"test": str(recordings)}, "supervisions": {"test": str(supervisions)}}
    import_lhotse_corpus("lh", pair, DATA, tmp_path / "pair")
    assert read(tmp_path / "cuts", "test") == read(tmp_path / "pair", "test")
    assert len(read(tmp_path / "cuts", "test")) == 3


def test_a_supervision_without_text_follows_bad_wav(tmp_path):
    _, _, cuts = long_recording(tmp_path / "lh", texts=["第一 句", "  ", "好"])
    settings = {"cuts": {"train": str(cuts)}}
    with pytest.raises(WhisperforgeError) as error:
        import_lhotse_corpus("lh", settings, DATA, tmp_path / "out")
    assert str(error.value) == (
        f"{cuts}: supervision u2: empty text (set data.bad_wav: skip to skip such rows)"
    )
    assert not (tmp_path / "out").exists()
    stats = import_lhotse_corpus("lh", settings, {**DATA, "bad_wav": "skip"}, tmp_path / "out")
    assert stats["utterances"]["train"] == 2 and stats["skipped"]["train"] == {"empty_text": 1}


def test_a_missing_recording_file_follows_bad_wav_and_a_split_left_empty_stops(tmp_path):
    _, _, cuts = long_recording(tmp_path / "lh")
    (tmp_path / "lh" / "lecture.wav").unlink()
    with pytest.raises(
        WhisperforgeError, match=r"supervision u1: audio file .*lecture\.wav not found"
    ):
        import_lhotse_corpus("lh", {"cuts": {"train": str(cuts)}}, DATA, tmp_path / "out")
    skip = {**DATA, "bad_wav": "skip"}
    with pytest.raises(
        WhisperforgeError, match=r"no usable rows for split 'train' \(skipped: missing_audio: 3\)"
    ):
        import_lhotse_corpus("lh", {"cuts": {"train": str(cuts)}}, skip, tmp_path / "out")
    assert not (tmp_path / "out").exists()
