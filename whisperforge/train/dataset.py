"""Manifest -> model inputs for training, through Hugging Face `datasets`.

The JSONL manifest is loaded by `whisperforge.data.hfdata` as an Arrow-backed `Dataset` (or streamed
as an `IterableDataset`); `speech_dataset` sets the transform through which each visit reads the
audio (with soundfile: `datasets`' own Audio feature would need torchcodec, built per torch
release, and FFmpeg's shared libraries), applies the augmentations and the time shift, and
computes the log-mel and the label tokens (`SpeechTransform`).
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from whisperforge.core.audio import (
    FRAMES_PER_S,
    SAMPLE_RATE,
    audio_frames,
    clip_bounds,
    read_training_audio,
)
from whisperforge.core.errors import WhisperforgeError

MAX_LABEL_TOKENS = 448  # Whisper's decoder positions
# Log-mels are cached in memory when no augmentation changes the audio between epochs and the set
# is small (a 30 s log-mel of 80 bins is ~1 MB): the demo's epochs then cost only the model.
# A time shift is applied to the cached log-mel, so it keeps the cache.
FEATURE_CACHE_MAX_ITEMS = 2000
# The column speech_dataset adds: each record's place in its manifest, which keys its augmentation
# draws (so that a record's draws do not depend on where the data comes from).
POSITION = "manifest_position"


@dataclass(frozen=True)
class Augment:
    """Whisper-Finetune's augmentations (speed perturbation, volume, additive noise) and a shift.

    The shift delays the speech by up to `shift_max_s` of silence. Clips that all start the same
    way (synthetic speech, or one recording setup) otherwise teach a small model where in the
    window speech begins, and it then fails on clips cut elsewhere (a VAD's, for subtitles).
    Built from config `train.augment` (defaults in the schema only).
    """

    speed_prob: float
    speed_min: float
    speed_max: float
    volume_prob: float
    volume_db: float
    noise_prob: float
    noise_dir: str | None
    snr_min: float
    snr_max: float
    shift_prob: float
    shift_max_s: float

    @property
    def changes_audio(self) -> bool:
        """Whether a draw changes the samples (then log-mels cannot be cached)."""
        return bool(self.speed_prob or self.volume_prob or (self.noise_prob and self.noise_dir))

    @property
    def active(self) -> bool:
        return self.changes_audio or bool(self.shift_prob and self.shift_max_s > 0)

    def shift_frames(self, rng: random.Random) -> int:
        """How many 10 ms frames of silence to put before the speech (0: no shift this time)."""
        if not self.shift_prob or rng.random() >= self.shift_prob:
            return 0
        return rng.randint(0, round(self.shift_max_s * FRAMES_PER_S))

    def apply(self, audio: np.ndarray, rng: random.Random) -> np.ndarray:
        if self.speed_prob and rng.random() < self.speed_prob:
            audio = change_speed(audio, rng.uniform(self.speed_min, self.speed_max))
        if self.volume_prob and rng.random() < self.volume_prob:
            audio = audio * 10 ** (rng.uniform(-self.volume_db, self.volume_db) / 20)
        if self.noise_prob and self.noise_dir and rng.random() < self.noise_prob:
            audio = add_noise(audio, self.noise_dir, rng.uniform(self.snr_min, self.snr_max), rng)
        return np.clip(audio, -1.0, 1.0).astype(np.float32)


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (pitch changes too, as with sox `speed`)."""
    n_out = max(1, round(len(audio) / factor))
    positions = np.linspace(0, len(audio) - 1, n_out)
    return np.interp(positions, np.arange(len(audio)), audio).astype(np.float32)


def add_noise(audio: np.ndarray, noise_dir: str, snr_db: float, rng: random.Random) -> np.ndarray:
    files = sorted(Path(noise_dir).glob("*.wav"))
    if not files:
        raise WhisperforgeError(
            f"{noise_dir}: no .wav noise files (config train.augment.noise_dir)"
        )
    noise = read_training_audio(rng.choice(files))
    noise = np.resize(noise, len(audio))
    signal_power = float(np.mean(audio**2)) + 1e-10
    noise_power = float(np.mean(noise**2)) + 1e-10
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return audio + scale * noise


# What fills the log-mel after the audio (config train.feature_padding). transformers pads the
# audio with silence to 30 s; faster-whisper, which runs the exported model, pads the log-mel with
# zeros. Whisper-Finetune trains with the former; a small model trained that way can loop forever
# on the latter (the demo's LoRA model: 41 % CER on its training clips in transformers, 566 %
# through faster-whisper).
FEATURE_PADDINGS = ("transformers", "faster-whisper")


def shift_features(features: np.ndarray, frames: int, audio_frames: int) -> np.ndarray:
    """The log-mel of the same audio after `frames` 10 ms frames of digital silence.

    `audio_frames` is how many frames hold the audio: the rest is padding, and the frames shifted
    out at the end must be padding. Silence is the log-mel's floor, 8 decades (2.0 after
    Whisper's scaling by 1/4) below the audio's peak.
    """
    if frames <= 0:
        return features
    silence = float(features[:, :audio_frames].max()) - 2.0
    shifted = np.full_like(features, silence)
    shifted[:, frames:] = features[:, :-frames]
    return shifted


def timestamp_text(record: dict[str, Any], offset_s: float = 0.0) -> str:
    """`<|0.00|>text<|2.30|>...` from the record's `sentences` (moved `offset_s` later), times
    rounded to 20 ms."""
    parts = []
    for seg in record.get("sentences") or [
        {"start": 0, "end": record["duration"], "text": record["sentence"]}
    ]:
        start, end = (round((float(seg[k]) + offset_s) / 0.02) * 0.02 for k in ("start", "end"))
        parts.append(f"<|{start:.2f}|>{seg['text']}<|{end:.2f}|>")
    return "".join(parts)


# Records held in the shuffle buffer of a streamed manifest: manifest lines, not audio.
SHUFFLE_BUFFER = 10_000


class SpeechTransform:
    """Manifest rows -> {"input_features", "labels"} for WhisperForConditionalGeneration.

    Applied on the fly to each batch `datasets` hands out (`with_transform`, or a lazy `map` when
    streaming): the audio is read, augmented, shifted and turned into a log-mel at each visit.
    The log-mel is cached in memory when no augmentation changes the audio and the set has at
    most FEATURE_CACHE_MAX_ITEMS records (`size`); DataLoader workers each keep their own.
    """

    def __init__(
        self,
        processor: Any,
        *,
        timestamps: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        feature_padding: str = "transformers",
        size: int | None = None,
        epoch: torch.Tensor | None = None,
    ) -> None:
        if feature_padding not in FEATURE_PADDINGS:
            raise WhisperforgeError(
                f"config train.feature_padding: {feature_padding!r} is not one of "
                f"{', '.join(FEATURE_PADDINGS)}"
            )
        self.feature_padding = feature_padding
        self.processor = processor
        self.timestamps = timestamps
        self.augment = augment if augment is not None and augment.active else None
        self.seed = seed
        # Without the trainer's shared epoch (evaluation, tests), a plain one that stays 0.
        self.epoch = torch.zeros((), dtype=torch.int64) if epoch is None else epoch
        changes_audio = self.augment is not None and self.augment.changes_audio
        cacheable = not changes_audio and size is not None and size <= FEATURE_CACHE_MAX_ITEMS
        # Keyed by (path, start, end): segments of one long recording share its path.
        self.feature_cache: dict[tuple, tuple[np.ndarray, int]] | None = {} if cacheable else None

    def __getstate__(self) -> dict[str, Any]:
        # `datasets` hashes a transform when it is set (the dataset's fingerprint): its Hasher
        # takes ~1 s over a Whisper tokenizer, 0.1 s over the tokenizer's pickle. DataLoader
        # workers that spawn get the same state.
        return {**self.__dict__, "processor": pickle.dumps(self.processor)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({**state, "processor": pickle.loads(state["processor"])})

    def labels(self, record: dict[str, Any], offset_s: float = 0.0) -> list[int]:
        tokenizer = self.processor.tokenizer
        text = timestamp_text(record, offset_s) if self.timestamps else record["sentence"]
        ids = tokenizer(text).input_ids
        if len(ids) > MAX_LABEL_TOKENS:
            raise WhisperforgeError(
                f"{record['audio']['path']}: transcript is {len(ids)} tokens, more than "
                f"{MAX_LABEL_TOKENS} (lower data.max_text_chars)"
            )
        return ids

    def log_mel(self, audio_ref: dict, rng: random.Random | None) -> tuple[np.ndarray, int]:
        """The clip's log-mel (its audio augmented with `rng` if audio augmentations are on)
        and how many of its frames hold the audio; the rest is padding. `audio_ref` is the
        record's `audio`: a path, with `start_time`/`end_time` for a stretch of a longer file."""
        key = (audio_ref["path"], *clip_bounds(audio_ref))
        if self.feature_cache is not None and key in self.feature_cache:
            return self.feature_cache[key]
        audio = read_training_audio(*key)
        if rng is not None and self.augment.changes_audio:  # rng: augmentation is on
            audio = self.augment.apply(audio, rng)
        features = self.processor.feature_extractor(
            audio, sampling_rate=SAMPLE_RATE, return_tensors="np"
        ).input_features[0]
        frames = audio_frames(len(audio))
        if self.feature_padding == "faster-whisper":
            features[:, frames:] = 0.0
        if self.feature_cache is not None:
            self.feature_cache[key] = (features, frames)
        return features, frames

    def example(self, record: dict[str, Any]) -> dict[str, Any]:
        rng = None
        if self.augment is not None:
            # A fresh draw each epoch (an epoch visits a record once), a function of the seed,
            # the record's place in the manifest and the epoch only: the same whichever worker
            # computes it and whether or not the run was resumed (ints only: str hashes differ
            # between processes).
            rng = random.Random(hash((self.seed, record[POSITION], int(self.epoch))))
        features, clip_frames = self.log_mel(record["audio"], rng)
        shift = 0
        if rng is not None:
            room = max(0, features.shape[-1] - clip_frames)  # never push audio out of the window
            shift = min(self.augment.shift_frames(rng), room)
            features = shift_features(features, shift, clip_frames)
        return {"input_features": features, "labels": self.labels(record, shift / FRAMES_PER_S)}

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rows = [
            dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)
        ]
        examples = [self.example(row) for row in rows]
        return {key: [e[key] for e in examples] for key in ("input_features", "labels")}


def shared_epoch() -> torch.Tensor:
    """The epoch being trained, in shared memory: DataLoader workers hold copies of the training
    transform and read the Trainer's epoch through it (set by `train.EpochOfAugmentation`)."""
    return torch.zeros((), dtype=torch.int64).share_memory_()


def rank_share(
    data: datasets.IterableDataset, rank: int, world_size: int
) -> datasets.IterableDataset:
    """One process's share of a streamed training set in a data-parallel run: every
    `world_size`-th line of the manifest, so no record is decoded, or trained on, twice an epoch.

    A filter before the transform, not datasets' `split_dataset_by_node`: that one drops the
    other ranks' examples at the end of the pipeline, after every process has read and turned
    all of their audio into log-mels (measured: 7 of 7 clips decoded for a share of 3).
    """
    return data.filter(lambda _, line: line % world_size == rank, with_indices=True)


def speech_dataset(
    data: datasets.Dataset | datasets.IterableDataset,
    processor: Any,
    *,
    size: int | None = None,
    **options: Any,
) -> datasets.Dataset | datasets.IterableDataset:
    """`data` (a loaded manifest) with Whisper's inputs computed on the fly at each visit;
    `options`: SpeechTransform's keywords (timestamps, augment, seed, feature_padding, epoch).

    A `Dataset` gets the transform with `with_transform`; an `IterableDataset` is shuffled with a
    seeded buffer (reshuffled each epoch: the Trainer calls `set_epoch`) and mapped lazily.
    `size`: the number of records of a streamed set, for the feature cache's decision.
    """
    streamed = isinstance(data, datasets.IterableDataset)
    columns = list(data.features)
    transform = SpeechTransform(processor, size=size if streamed else len(data), **options)
    if not streamed:
        return data.add_column(POSITION, list(range(len(data)))).with_transform(transform)
    numbered = data.map(lambda _, i: {POSITION: i}, with_indices=True)
    shuffled = numbered.shuffle(seed=transform.seed, buffer_size=SHUFFLE_BUFFER)
    # One record at a time: a batched map would compute 1000 log-mels (1 GB) before the first.
    return shuffled.map(transform.example, remove_columns=[*columns, POSITION])


@dataclass
class SpeechCollator:
    """Stack log-mels; pad labels with -100 and drop the start token the model prepends itself.

    The decoder's inputs are the labels shifted right, made here rather than by the model: the
    Trainer hands the labels to the token-mean loss (loss.py) instead of to the model.
    """

    decoder_start_token_id: int
    pad_token_id: int

    @classmethod
    def for_model(cls, config: Any) -> SpeechCollator:
        return cls(config.decoder_start_token_id, config.pad_token_id)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        from transformers.models.whisper.modeling_whisper import shift_tokens_right

        inputs = torch.tensor(np.stack([f["input_features"] for f in features]))
        labels = [f["labels"] for f in features]
        if all(ids and ids[0] == self.decoder_start_token_id for ids in labels):
            labels = [ids[1:] for ids in labels]
        width = max(len(ids) for ids in labels)
        padded = torch.full((len(labels), width), -100, dtype=torch.long)
        for row, ids in enumerate(labels):
            padded[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        decoder_inputs = shift_tokens_right(padded, self.pad_token_id, self.decoder_start_token_id)
        return {"input_features": inputs, "labels": padded, "decoder_input_ids": decoder_inputs}
