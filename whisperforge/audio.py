"""Audio in: the one sample rate, and the reader training uses.

The workflow reads audio three ways:

* `read_training_audio` (here): a manifest's clip for training, which must already be 16 kHz
  (channels are averaged); anything else is an error naming the file.
* `whisperforge.transcribe.load_audio`: a manifest's clip for decoding (evaluation, export probe,
  speed): 16 kHz mono is read directly, other rates or channel counts go through faster-whisper.
* `whisperforge.transcribe.decode_recording`: a user's own recording for subtitles, any container
  PyAV decodes (wav/flac/mp3/m4a/mp4/mkv), with one-line errors for missing, empty or undecodable
  files.

The last two need faster-whisper, which the training environment (envs/train.yaml) does not have,
so they live with the rest of the faster-whisper runtime. numpy and soundfile are imported where
they are used, so that the Snakemake rules can import modules that import `SAMPLE_RATE` without
the audio stack (`--sdm conda`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from whisperforge.errors import WhisperforgeError

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16000  # Whisper's input rate, everywhere in the workflow


def read_training_audio(path: str | Path) -> np.ndarray:
    """Mono float32 at 16 kHz; anything else is a clear error naming the file."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as e:
        raise WhisperforgeError(f"{path}: cannot read audio ({e})") from None
    if rate != SAMPLE_RATE:
        raise WhisperforgeError(f"{path}: sample rate {rate} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1)
