"""Training inputs through `datasets`: manifest loading and streaming, the log-mel cache, the
time-shift augmentation, timestamp labels."""

from __future__ import annotations

import json
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import RATE, augment, record_of, speech_like
from transformers import WhisperFeatureExtractor, WhisperProcessor

from whisperforge.core.errors import WhisperforgeError
from whisperforge.core.manifest import write_jsonl
from whisperforge.data.hfdata import load_manifest, scan_manifest
from whisperforge.model.tinymodel import build_whisper_tokenizer
from whisperforge.train import dataset
from whisperforge.train.dataset import (
    FRAMES_PER_S,
    SpeechTransform,
    audio_frames,
    rank_share,
    shared_epoch,
    shift_features,
    speech_dataset,
)


@pytest.fixture(scope="module")
def processor() -> WhisperProcessor:
    return WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80),
        tokenizer=build_whisper_tokenizer(),
    )


def speech_data(records: list[dict], processor: WhisperProcessor, **options):
    """`records` written as a manifest (beside their audio), loaded by `datasets`, transformed on
    the fly as training reads them."""
    _, path = tempfile.mkstemp(suffix=".jsonl", dir=Path(records[0]["audio"]["path"]).parent)
    write_jsonl(path, records)
    return speech_dataset(load_manifest(path), processor, **options)


def log_mel(processor: WhisperProcessor, audio: np.ndarray) -> np.ndarray:
    return processor.feature_extractor(
        audio, sampling_rate=RATE, return_tensors="np"
    ).input_features[0]


def test_shifted_log_mel_is_the_log_mel_of_the_delayed_audio(processor):
    audio = speech_like(2.0)
    frames = 37
    delayed = np.concatenate([np.zeros(frames * RATE // FRAMES_PER_S, np.float32), audio])
    expected = log_mel(processor, delayed)
    unshifted = log_mel(processor, audio)
    shifted = shift_features(unshifted, frames, audio_frames(len(audio)))
    # STFT frames straddling the onset differ (reflect padding vs zeros); the rest is equal.
    inner = np.r_[frames + 2 : shifted.shape[1] - 2]
    np.testing.assert_allclose(shifted[:, inner], expected[:, inner], atol=1e-4)
    assert np.abs(unshifted - expected).mean() > 10 * np.abs(shifted - expected).mean()


def test_log_mels_are_cached_without_audio_augmentation(processor, tmp_path, monkeypatch):
    records = [record_of(tmp_path / f"{i}.wav", speech_like(1.0, seed=i)) for i in range(3)]
    reads = []
    real_load = dataset.read_training_audio
    monkeypatch.setattr(
        dataset, "read_training_audio", lambda *clip: reads.append(clip) or real_load(*clip)
    )

    shift_only = speech_data(records, processor, augment=augment(shift_prob=1.0), seed=1)
    for _epoch in range(3):
        for i in range(len(records)):
            shift_only[i]
    assert len(reads) == len(records)  # one read per clip, whatever the epochs and shifts

    reads.clear()
    speed = speech_data(records, processor, augment=augment(speed_prob=1.0), seed=1)
    speed[0], speed[0]
    assert len(reads) == 2  # a new speed per visit: nothing to cache


def test_shift_delays_the_speech_by_the_drawn_frames(processor, tmp_path):
    record = record_of(tmp_path / "a.wav", speech_like(1.5))
    plain = speech_data([record], processor)[0]["input_features"]
    epoch = shared_epoch()
    shifting = speech_data(
        [record], processor, augment=augment(shift_prob=1.0, shift_max_s=0.5), seed=3, epoch=epoch
    )

    def shift() -> int:
        features = shifting[0]["input_features"]
        # The shift is the offset at which the unshifted log-mel reappears.
        matches = [k for k in range(51) if np.array_equal(features[:, k:], plain[:, : -k or None])]
        assert len(matches) == 1, matches
        return matches[0]

    shifts = []
    for n in range(20):
        epoch.fill_(n)  # as the trainer sets it when an epoch begins
        shifts.append(shift())
    assert len(set(shifts)) > 5 and max(shifts) <= 50
    # A draw is a function of the seed, the record and the epoch: a resumed run draws the same.
    epoch.fill_(7)
    assert shift() == shifts[7]


def test_timestamp_labels_move_with_the_shift(processor, tmp_path):
    record = record_of(tmp_path / "a.wav", speech_like(1.5))
    epoch = shared_epoch()
    data = speech_data(
        [record], processor, timestamps=True, augment=augment(shift_prob=1.0), seed=5, epoch=epoch
    )
    tokenizer = processor.tokenizer
    for n in range(10):
        epoch.fill_(n)
        item = data[0]
        text = tokenizer.decode(item["labels"], decode_with_timestamps=True)
        start = float(re.findall(r"<\|(\d+\.\d+)\|>", text)[0])
        leading = np.argmax(item["input_features"].max(axis=0) > item["input_features"].min())
        assert abs(start - leading / FRAMES_PER_S) <= 0.03, (text, leading)


def test_shift_never_pushes_audio_out_of_the_window(processor, tmp_path):
    record = record_of(tmp_path / "long.wav", speech_like(29.9))
    epoch = shared_epoch()
    data = speech_data(
        [record], processor, augment=augment(shift_prob=1.0, shift_max_s=2.0), epoch=epoch
    )
    for n in range(5):
        epoch.fill_(n)
        features = data[0]["input_features"]
        silent_lead = np.argmax(features.max(axis=0) > features.min())
        assert silent_lead <= 10 + 1  # 30 s window - 29.9 s of audio = 10 frames of room


def test_shift_draws_are_reproducible_from_the_seed():
    shift = augment(shift_prob=0.5, shift_max_s=0.3)
    draws = [shift.shift_frames(random.Random(7)) for _ in range(3)]
    assert len(set(draws)) == 1
    spread = {shift.shift_frames(random.Random(seed)) for seed in range(200)}
    assert 0 in spread and max(spread) == 30 and len(spread) > 10


def test_faster_whisper_padding_gives_the_engines_own_features(processor, tmp_path):
    """With feature_padding faster-whisper, training sees what faster-whisper feeds the exported
    model: its log-mel of the clip, then zeros to 30 s (transformers: the log-mel of silence)."""
    from faster_whisper.feature_extractor import FeatureExtractor

    audio = speech_like(2.345)
    record = record_of(tmp_path / "a.wav", audio)
    engine = FeatureExtractor(feature_size=80)(sf.read(tmp_path / "a.wav", dtype="float32")[0])
    expected = np.zeros((80, 3000), np.float32)
    expected[:, : engine.shape[1]] = engine
    padded = speech_data([record], processor, feature_padding="faster-whisper")[0]
    np.testing.assert_allclose(padded["input_features"], expected, atol=1e-4)
    plain = speech_data([record], processor)[0]["input_features"]
    assert np.abs(plain - expected).max() > 0.5  # the default differs: that is the point
    shifted = speech_data(
        [record],
        processor,
        feature_padding="faster-whisper",
        augment=augment(shift_prob=1.0, shift_max_s=0.3),
        seed=2,
    )[0]["input_features"]
    frames = engine.shape[1]
    shift = np.flatnonzero(np.abs(shifted).max(axis=0) > 0)[-1] + 1 - frames
    assert 0 < shift <= 30
    np.testing.assert_allclose(shifted[:, shift : shift + frames], engine, atol=1e-4)


def test_unknown_feature_padding_names_the_config_key(processor):
    with pytest.raises(WhisperforgeError, match=r"train\.feature_padding"):
        SpeechTransform(processor, feature_padding="zeros")


def test_a_manifest_loads_whatever_types_its_later_lines_hold(tmp_path):
    """pyarrow infers a JSON column's type per 10 MB chunk: `"start": 0` early and `0.5` later
    is a cast error unless the schema is declared; fields of other tools are kept as JSON."""
    record = record_of(tmp_path / "a.wav", speech_like(0.5))
    filler = "x" * 6000  # 2000 lines of 6 kB: the last ones in a second chunk
    lines = [{**record, "note": filler} for _ in range(2000)]
    lines[-1] = {
        **record,
        "audio": {"path": record["audio"]["path"], "start_time": 0.1},  # Whisper-Finetune's
        "sentences": [{"start": 0.5, "end": 1.5, "text": "今天"}],
        "speaker": {"id": 7},
    }
    path = tmp_path / "m.jsonl"
    write_jsonl(path, lines)
    scan = scan_manifest(path)
    assert (scan.records, scan.extra_fields, scan.plain_audio) == (2000, ("note", "speaker"), False)
    data = load_manifest(scan)
    assert len(data) == 2000 and data[0]["note"] == filler
    assert data[-1]["sentences"] == [{"start": 0.5, "end": 1.5, "text": "今天"}]
    assert data[-1]["audio"] == lines[-1]["audio"] and data[-1]["speaker"] == {"id": 7}
    assert data[0]["sentences"][0]["start"] == 0.0


def test_a_bad_manifest_line_is_named_before_datasets_reads_it(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(record_of(tmp_path / "a.wav", speech_like(0.5))) + "\n{oops\n")
    with pytest.raises(WhisperforgeError, match=r"m\.jsonl:2: not valid JSON"):
        load_manifest(path)


def test_a_streamed_manifest_gives_each_record_once_an_epoch_in_a_seeded_order(processor, tmp_path):
    sentences = ["今天天气很好", "我们明天开会", "经济增长很快", "北京是首都", "楼市", "新政"]
    records = [
        record_of(tmp_path / f"{i}.wav", speech_like(0.5 + 0.1 * i, seed=i), text)
        for i, text in enumerate(sentences)
    ]
    path = tmp_path / "m.jsonl"
    write_jsonl(path, records)
    arrow = speech_dataset(load_manifest(path), processor)

    def epoch(seed: int, number: int = 0) -> list[str]:
        stream = speech_dataset(
            load_manifest(path, streaming=True), processor, seed=seed, size=len(records)
        )
        stream.set_epoch(number)  # as the Trainer does at each epoch
        order = []
        for example in stream:
            text = processor.tokenizer.decode(example["labels"], skip_special_tokens=True)
            order.append(text)
            same = arrow[sentences.index(text)]  # what the Arrow-backed set computes
            np.testing.assert_array_equal(example["input_features"], same["input_features"])
            assert example["labels"] == same["labels"]
        return order

    first = epoch(seed=1)
    assert sorted(first) == sorted(sentences) and first != sentences  # shuffled, all once
    assert epoch(seed=1) == first  # seeded
    assert epoch(seed=1, number=1) != first  # reshuffled the next epoch


def test_each_process_streams_its_own_share_and_together_every_record_once(
    processor, tmp_path, monkeypatch
):
    sentences = ["今天天气很好", "我们明天开会", "经济增长很快", "北京是首都"]
    sentences += ["楼市", "新政", "开会"]
    records = [
        record_of(tmp_path / f"{i}.wav", speech_like(0.5, seed=i), text)
        for i, text in enumerate(sentences)
    ]
    path = tmp_path / "m.jsonl"
    write_jsonl(path, records)
    decoded = []  # the clips this process turned into log-mels
    log_mel = dataset.SpeechTransform.log_mel

    def counting(self, audio_ref, rng):
        decoded.append(audio_ref["path"])
        return log_mel(self, audio_ref, rng)

    monkeypatch.setattr(dataset.SpeechTransform, "log_mel", counting)
    shares = []
    for rank in range(3):
        decoded.clear()
        share = rank_share(load_manifest(path, streaming=True), rank, 3)
        stream = speech_dataset(share, processor, seed=1, size=len(records))
        decode = processor.tokenizer.decode
        shares.append([decode(e["labels"], skip_special_tokens=True) for e in stream])
        assert len(decoded) == len(shares[-1]), "a process decoded another's share"
    assert [len(share) for share in shares] == [3, 2, 2]
    assert sorted(text for share in shares for text in share) == sorted(sentences)
