"""The speed table's measurement: transformers generate vs faster-whisper, same clips."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from helpers import EVAL

from whisperforge.speed import measure_speed
from whisperforge.transcribe import pick_device_and_compute_type


def test_measure_speed_times_both_back_ends(tiny, exported, manifest):
    result = measure_speed(tiny, exported[0], manifest, replace(EVAL, beam_size=1), n_utterances=2)
    assert result["utterances"] == 2
    assert result["audio_s"] == pytest.approx(2.0, abs=0.01)
    assert result["hf"]["seconds"] > 0 and result["ct2"]["seconds"] > 0
    assert result["hf"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    ct2 = (result["ct2"]["device"], result["ct2"]["compute_type"])
    assert ct2 == pick_device_and_compute_type("auto")
    assert result["speedup"] > 0
    assert 0 <= result["hf_texts_equal_ct2"] <= 2
    json.dumps(result)  # JSON-able for write_json
