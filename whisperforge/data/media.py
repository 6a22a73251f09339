"""A user's own recording, any container PyAV decodes, as 16 kHz mono samples.

Through faster-whisper's `decode_audio` (PyAV), which the training environment does not have:
hence a module of its own, imported by the subtitles and the own-recordings steps only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from whisperforge.core.audio import SAMPLE_RATE
from whisperforge.core.errors import WhisperforgeError, one_line

if TYPE_CHECKING:
    import numpy as np


def decode_recording(audio_path: str | Path) -> np.ndarray:
    """16 kHz mono float32 samples of any file PyAV decodes; a WhisperforgeError otherwise."""
    from faster_whisper import decode_audio

    path = Path(audio_path)
    if not path.is_file():
        raise WhisperforgeError(f"{path}: recording not found")
    if path.stat().st_size == 0:
        raise WhisperforgeError(f"{path}: empty file (0 bytes), not a recording")
    try:
        audio = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except IndexError as e:  # container.decode(audio=0) on a file without an audio stream
        raise WhisperforgeError(f"{path}: no audio track") from e
    except Exception as e:  # PyAV raises FFmpegError subclasses (also ValueError, OSError)
        reason = getattr(e, "strerror", None) or one_line(e)  # FFmpeg's own words, if any
        raise WhisperforgeError(f"{path}: cannot decode audio ({reason})") from e
    if audio.size == 0:
        raise WhisperforgeError(f"{path}: no audio samples (no audio track?)")
    return audio
