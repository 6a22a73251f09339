"""Subtitle timing against speech: a shift found to 10 ms, drift only where it is clear."""

from __future__ import annotations

import pytest

from whisperforge.data.timing import estimate_timing


def speech_pattern(n: int, start: float = 1.0) -> list[tuple[float, float]]:
    """Speech stretches of varied length and pauses, as a lecture has."""
    out, t = [], start
    for i in range(n):
        length, pause = 1.5 + (i * 7 % 5) * 0.4, 0.3 + (i * 3 % 4) * 0.3
        out.append((round(t, 2), round(t + length, 2)))
        t += length + pause
    return out


@pytest.mark.parametrize("shift", [0.4, -1.25, 3.0])
def test_a_shifted_subtitle_file_is_moved_back_onto_the_speech(shift):
    speech = speech_pattern(40)
    cues = [(s + shift, e + shift) for s, e in speech]
    timing = estimate_timing(cues, speech, speech[-1][1] + 2, max_s=5.0, min_gain=0.02)
    assert timing.applied
    assert timing.offset_s == pytest.approx(-shift, abs=0.011)
    assert timing.agreement_after > timing.agreement_before
    assert timing(cues[3][0]) == pytest.approx(speech[3][0], abs=0.011)


def test_cues_on_time_are_left_alone():
    speech = speech_pattern(30)
    cues = [(s + 0.05, e - 0.05) for s, e in speech]  # subtitles a touch inside the speech
    timing = estimate_timing(cues, speech, speech[-1][1] + 2, max_s=5.0, min_gain=0.02)
    assert not timing.applied and timing.offset_s == 0.0


def test_drift_is_estimated_on_a_long_recording():
    speech = speech_pattern(260)  # ~10 minutes
    rate = 2.0 / 600  # 2 s late by the end: another frame rate
    cues = [(s + 0.5 + s * rate, e + 0.5 + e * rate) for s, e in speech]
    timing = estimate_timing(cues, speech, speech[-1][1] + 2, max_s=5.0, min_gain=0.02)
    assert timing.applied and timing.drift_s_per_h != 0.0
    for s, _ in (cues[10], cues[130], cues[250]):
        true = (s - 0.5) / (1 + rate)
        assert timing(s) == pytest.approx(true, abs=0.15)
