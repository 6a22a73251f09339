"""Whisper-Finetune's `audio.start_time`/`end_time` and other rates, in training and decoding."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from whisperforge.core.audio import read_training_audio
from whisperforge.core.errors import WhisperforgeError
from whisperforge.decode.transcribe import load_audio


def ramp_wav(path, rate: int, seconds: float, channels: int = 1):
    """A wav whose every sample says where it is: value = time in seconds / 10."""
    t = np.arange(round(rate * seconds)) / rate
    data = np.stack([t / 10] * channels, axis=1) if channels > 1 else t / 10
    soundfile.write(str(path), data.astype(np.float32), rate, subtype="FLOAT")
    return path


def test_training_reads_only_the_stretch_of_a_long_file(tmp_path):
    wav = ramp_wav(tmp_path / "long.wav", 16000, 10.0)
    clip = read_training_audio(wav, 2.5, 4.0)
    assert len(clip) == 24000
    assert clip[0] == pytest.approx(0.25, abs=1e-4) and clip[-1] == pytest.approx(0.4, abs=1e-3)
    assert len(read_training_audio(wav)) == 160000


def test_training_resamples_other_rates_and_averages_channels(tmp_path):
    wav = ramp_wav(tmp_path / "cd.wav", 44100, 2.0, channels=2)
    audio = read_training_audio(wav, 0.5, 1.5)
    assert len(audio) == 16000
    assert audio[8000] == pytest.approx(0.1, abs=2e-3)  # t = 1.0 s, in the middle of the stretch


def test_a_stretch_outside_the_file_is_one_line_naming_it(tmp_path):
    wav = ramp_wav(tmp_path / "short.wav", 16000, 1.0)
    with pytest.raises(
        WhisperforgeError, match=r"short\.wav: start_time 5\.0 / end_time 6\.0 s lie outside"
    ):
        read_training_audio(wav, 5.0, 6.0)


@pytest.mark.parametrize("rate", [16000, 22050])
def test_decoding_reads_the_same_stretch_as_training(tmp_path, rate):
    wav = ramp_wav(tmp_path / "long.wav", rate, 6.0)
    record_audio = {"path": str(wav), "start_time": 1.0, "end_time": 3.0}
    decoded = load_audio(record_audio)
    assert len(decoded) == pytest.approx(32000, abs=2)
    assert decoded[16000] == pytest.approx(0.2, abs=3e-3)
    trained = read_training_audio(wav, 1.0, 3.0)
    n = min(len(decoded), len(trained))
    # Away from the stretch's edges, where a resampling filter sees the cut differently.
    assert np.abs(decoded[200 : n - 200] - trained[200 : n - 200]).max() < 5e-3
