"""Checks that decide whether a clip is kept; each failure has a reason name counted in the reports."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClipLimits", "SKIP_REASONS", "check_clip"]

#: Every reason a clip can be skipped for (keys of the ``skipped`` counts in reports).
SKIP_REASONS = (
    "empty_text", "no_phonemes", "synthesis_failed", "undecodable", "not_finite", "silent", "too_short", "too_long",
)
_SILENCE_PEAK = 1e-3
_SILENCE_RMS = 1e-4


@dataclass(frozen=True)
class ClipLimits:
    """Duration limits (seconds) of a kept clip."""

    min_duration: float = 0.3
    max_duration: float = 15.0


def check_clip(audio: np.ndarray, sampling_rate: int, text: str | None, limits: ClipLimits) -> str | None:
    """The reason to skip a clip (one of ``SKIP_REASONS``), or ``None`` when it is usable."""
    if text is None or not str(text).strip():
        return "empty_text"
    if audio.size == 0:
        return "silent"
    if not np.all(np.isfinite(audio)):
        return "not_finite"
    peak = float(np.max(np.abs(audio)))
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if peak < _SILENCE_PEAK or rms < _SILENCE_RMS:
        return "silent"
    duration = audio.size / float(sampling_rate)
    if duration < limits.min_duration:
        return "too_short"
    if duration > limits.max_duration:
        return "too_long"
    return None
