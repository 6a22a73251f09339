"""Audio in: the one sample rate, and the reader training uses.

The workflow reads audio three ways:

* `read_training_audio` (here): a manifest's clip for training: channels are averaged, another
  sample rate is resampled to 16 kHz (scipy's polyphase filter), and Whisper-Finetune's
  `audio.start_time`/`end_time` read only that stretch of a longer file (`clip_bounds`).
* `whisperforge.decode.transcribe.load_audio`: a manifest's clip for decoding (evaluation, export
  probe, speed): 16 kHz mono is read directly, other rates or channel counts go through
  faster-whisper.
* `whisperforge.data.media.decode_recording`: a user's own recording (subtitles, own-recordings
  corpora), any container PyAV decodes (wav/flac/mp3/m4a/mp4/mkv), with one-line errors for
  missing, empty or undecodable files.

The last two need faster-whisper, which the training environment (envs/train.yaml) does not have,
so they live in modules of their own. numpy and soundfile are imported where
they are used, so that the Snakemake rules can import modules that import `SAMPLE_RATE` without
the audio stack (`--sdm conda`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from whisperforge.core.errors import WhisperforgeError

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16000  # Whisper's input rate, everywhere in the workflow
FRAMES_PER_S = 100  # Whisper's log-mel hop: 10 ms


def audio_frames(n_samples: int) -> int:
    """How many log-mel frames of a clip of `n_samples` hold its audio, as faster-whisper counts
    them (one per 10 ms hop, plus the frame centred on the last sample); the rest is padding."""
    return n_samples * FRAMES_PER_S // SAMPLE_RATE + 1


def clip_bounds(audio: dict) -> tuple[float | None, float | None]:
    """A manifest record's `audio` stretch in seconds: Whisper-Finetune's `start_time` and
    `end_time` (either may be absent: the file's start or end)."""
    start, end = audio.get("start_time"), audio.get("end_time")
    return (None if start is None else float(start), None if end is None else float(end))


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Samples at `rate` Hz -> SAMPLE_RATE (polyphase filter, the rational ratio reduced)."""
    from math import gcd

    import numpy as np
    from scipy.signal import resample_poly

    if rate == SAMPLE_RATE:
        return audio
    g = gcd(rate, SAMPLE_RATE)
    return resample_poly(audio, SAMPLE_RATE // g, rate // g).astype(np.float32)


def read_training_audio(
    path: str | Path, start_s: float | None = None, end_s: float | None = None
) -> np.ndarray:
    """Mono float32 at 16 kHz of the file, or of its stretch [start_s, end_s); an unreadable
    file or a stretch outside it is a clear error naming the file."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as f:
            rate, frames = f.samplerate, f.frames
            first = 0 if start_s is None else round(start_s * rate)
            last = frames if end_s is None else min(frames, round(end_s * rate))
            if first < 0 or first >= last:
                raise WhisperforgeError(
                    f"{path}: start_time {start_s} / end_time {end_s} s lie outside its "
                    f"{frames / rate:.2f} s of audio"
                )
            f.seek(first)
            audio = f.read(last - first, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as e:
        raise WhisperforgeError(f"{path}: cannot read audio ({e})") from None
    return resample(audio.mean(axis=1), rate)
