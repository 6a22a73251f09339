"""Subtitle timing against the speech VAD finds: a global offset, and linear drift where clear.

Subtitle files are often shifted (a cut intro) or drift (another frame rate). Cues and speech are
turned into +1/-1 masks at 10 ms; the offset is the lag that maximizes their agreement (an FFT
cross-correlation over +-max_s). Agreement counts cue time over speech and silence outside cues
alike, so the VAD's padding, which widens speech on both sides, does not bias the lag.

The offset is applied only when it is confident: the share of the recording on which cues and
speech agree must rise by at least `min_gain` over no shift. Drift is estimated from the offsets
of the recording's first and second halves and kept only when both halves are confident and the
linear fit agrees better than the single offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STEP_S = 0.01  # mask resolution; the offset is found to this step
MIN_DRIFT_S = 0.05  # a half-to-half offset change below this is not called drift
MIN_HALF_S = 120.0  # each half must be this long for a drift estimate


@dataclass(frozen=True)
class Timing:
    """Cue time t (s) -> t + offset_s + drift_s_per_h * t / 3600."""

    offset_s: float = 0.0
    drift_s_per_h: float = 0.0
    agreement_before: float = 0.0  # share of the recording where cues and speech agree
    agreement_after: float = 0.0
    found_offset_s: float = 0.0  # the best lag, applied or not
    applied: bool = False

    def __call__(self, t: float) -> float:
        return t + self.offset_s + self.drift_s_per_h * t / 3600.0


def _mask(intervals: Sequence[tuple[float, float]], n: int) -> np.ndarray:
    mask = -np.ones(n, dtype=np.float32)
    for start, end in intervals:
        a, b = max(0, round(start / STEP_S)), min(n, round(end / STEP_S))
        if b > a:
            mask[a:b] = 1.0
    return mask


def _best_lag(cues: np.ndarray, speech: np.ndarray, max_lag: int) -> tuple[int, float, float]:
    """(lag in steps, agreement at that lag, agreement at lag 0) of `cues` shifted onto
    `speech`; agreement is the mean product of the masks, in [-1, 1]."""
    n = len(cues)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    # corr[k] = sum_t speech[t] * cues[t - k]: cues moved later by k steps.
    corr = np.fft.irfft(np.fft.rfft(speech, size) * np.conj(np.fft.rfft(cues, size)), size)
    lags = np.arange(-max_lag, max_lag + 1)
    values = corr[lags % size]
    best = int(np.argmax(values))
    # Overlap shrinks with the lag; the masks' outside counts as silence on both (agreement).
    return int(lags[best]), float(values[best]) / n, float(corr[0]) / n


def _agreement(cues: Sequence[tuple[float, float]], speech: np.ndarray, timing: Timing) -> float:
    moved = [(timing(s), timing(e)) for s, e in cues]
    return float(np.mean(_mask(moved, len(speech)) * speech))


def estimate_timing(
    cues: Sequence[tuple[float, float]],
    speech: Sequence[tuple[float, float]],
    duration_s: float,
    *,
    max_s: float,
    min_gain: float,
) -> Timing:
    """How to move the cues onto the speech (see the module doc); the identity when unsure."""
    n = max(1, round(duration_s / STEP_S))
    cue_mask, speech_mask = _mask(cues, n), _mask(speech, n)
    max_lag = round(max_s / STEP_S)
    lag, best, at_zero = _best_lag(cue_mask, speech_mask, max_lag)
    # Agreement in [-1, 1] -> share of the recording in [0, 1].
    before, after = (at_zero + 1) / 2, (best + 1) / 2
    found = lag * STEP_S
    if after - before < min_gain or lag == 0:
        return Timing(0.0, 0.0, before, before, found, False)
    timing = Timing(found, 0.0, before, after, found, True)
    drifted = _drift(cues, speech, duration_s, max_lag, min_gain, timing, speech_mask)
    return drifted or timing


def _drift(cues, speech, duration_s, max_lag, min_gain, timing, speech_mask) -> Timing | None:
    """A line through the offsets of the two halves, if both are sure and it agrees better."""
    half = duration_s / 2
    if half < MIN_HALF_S:
        return None
    offsets = []
    for lo, hi in ((0.0, half), (half, duration_s)):
        part_cues = [(s - lo, e - lo) for s, e in cues if lo <= s < hi]
        part_speech = [(s - lo, e - lo) for s, e in speech if lo <= s < hi]
        m = max(1, round((hi - lo) / STEP_S))
        lag, best, at_zero = _best_lag(_mask(part_cues, m), _mask(part_speech, m), max_lag)
        if (best - at_zero) / 2 < min_gain / 2:
            return None
        offsets.append(lag * STEP_S)
    change = offsets[1] - offsets[0]
    if abs(change) < MIN_DRIFT_S:
        return None
    drift_per_h = change / half * 3600.0
    # Offset at t = 0 of the line through the halves' centres.
    offset0 = offsets[0] - drift_per_h * (half / 2) / 3600.0
    candidate = Timing(
        round(offset0, 3),
        round(drift_per_h, 3),
        timing.agreement_before,
        0.0,
        timing.found_offset_s,
        True,
    )
    agreement = (_agreement(cues, speech_mask, candidate) + 1) / 2
    if agreement <= timing.agreement_after:
        return None
    return Timing(
        candidate.offset_s,
        candidate.drift_s_per_h,
        timing.agreement_before,
        agreement,
        timing.found_offset_s,
        True,
    )
