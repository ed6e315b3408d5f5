"""Mel-cepstral distortion (MCD) between a reference and a predicted utterance of the same text.

Definition (Kubichek 1993), in dB, averaged over the frame pairs of the DTW alignment path::

    MCD = mean over aligned (t, t') of  10 / ln(10) * sqrt(2 * sum_{d=1..D} (c_d[t] - c'_d[t'])^2)

where ``c_d`` are mel-cepstral coefficients, ``c_0`` (energy) excluded. Analysis (see :class:`MCDSettings`):
both signals are resampled to 16 kHz, leading and trailing silence is trimmed (librosa, 30 dB below
peak), the spectral envelope is WORLD's CheapTrick (pyworld; F0 from DIO + StoneMask, 5 ms frame
period), converted to mel-cepstra of order 24 (c_0..c_24) with all-pass constant alpha = 0.41
(``pysptk.util.mcepalpha(16000)``) by ``pysptk.sp2mc``. Frames are aligned by DTW (librosa) on the
Euclidean distance of c_1..c_24.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import AUDIO_DEFAULTS, EmptyAudioError, check_paired, load_audio

logger = logging.getLogger(__name__)

_DB_PER_NEPER = 10.0 / np.log(10.0)


@dataclass(frozen=True)
class MCDSettings:
    """Analysis settings of the MCD.

    Attributes:
        sampling_rate: analysis rate (Hz); both utterances are resampled to it.
        order: mel-cepstral order D; coefficients c_1..c_D enter the distance.
        alpha: frequency-warping all-pass constant; ``None`` takes ``pysptk.util.mcepalpha(sampling_rate)``
            (0.41 at 16 kHz, 0.455 at 22.05 kHz).
        frame_period_ms: hop between analysis frames (ms).
        f0_floor_hz, f0_ceil_hz: F0 search range of DIO (Hz).
        trim_top_db: leading/trailing frames this many dB below the peak are dropped; ``None`` keeps them.
    """

    sampling_rate: int = AUDIO_DEFAULTS.sampling_rate
    order: int = 24
    alpha: float | None = None
    frame_period_ms: float = 5.0
    f0_floor_hz: float = 71.0
    f0_ceil_hz: float = 800.0
    trim_top_db: float | None = 30.0

    def resolved_alpha(self) -> float:
        """The all-pass constant in use."""
        if self.alpha is not None:
            return float(self.alpha)
        import pysptk

        return float(pysptk.util.mcepalpha(self.sampling_rate))


MCD_SETTINGS = MCDSettings()


def mel_cepstrum(
    audio: Any, sampling_rate: int | None = None, settings: MCDSettings = MCD_SETTINGS, name: str = "audio"
) -> np.ndarray:
    """Mel-cepstra of one utterance.

    Args:
        audio: one utterance in any form :func:`~hf_metatts.evaluation.audio.load_audio` accepts.
        sampling_rate: rate (Hz) of raw-array input.

    Returns:
        ``(frames, order + 1)`` float64; column 0 is c_0 (energy), one row per ``frame_period_ms``.
    """
    import librosa
    import pysptk
    import pyworld

    samples = load_audio(audio, sampling_rate, settings.sampling_rate, name=name).astype(np.float64)
    if settings.trim_top_db is not None:
        samples, _ = librosa.effects.trim(samples, top_db=settings.trim_top_db)
    if samples.shape[0] < settings.sampling_rate * settings.frame_period_ms / 1000.0 * 2:
        raise EmptyAudioError(
            f"{name} is silent (nothing above -{settings.trim_top_db} dB of its peak); drop silent clips "
            "before computing MCD."
        )
    f0, times = pyworld.dio(
        samples, settings.sampling_rate, f0_floor=settings.f0_floor_hz, f0_ceil=settings.f0_ceil_hz,
        frame_period=settings.frame_period_ms,
    )
    f0 = pyworld.stonemask(samples, f0, times, settings.sampling_rate)
    envelope = pyworld.cheaptrick(samples, f0, times, settings.sampling_rate, f0_floor=settings.f0_floor_hz)
    return pysptk.sp2mc(envelope, settings.order, settings.resolved_alpha())


def mcd_from_cepstra(reference: np.ndarray, prediction: np.ndarray) -> float:
    """MCD (dB) of two mel-cepstrum sequences ``(frames, order + 1)``, aligned by DTW; c_0 is skipped.

    Returns:
        mean distortion along the DTW path in dB, >= 0 (0 for identical sequences).
    """
    import librosa

    ref, pred = np.asarray(reference)[:, 1:], np.asarray(prediction)[:, 1:]
    _, path = librosa.sequence.dtw(X=ref.T, Y=pred.T, metric="euclidean")
    diff = ref[path[:, 0]] - pred[path[:, 1]]
    return float(np.mean(_DB_PER_NEPER * np.sqrt(2.0 * np.sum(diff**2, axis=1))))


def mel_cepstral_distortion(
    references: Sequence[Any],
    predictions: Sequence[Any],
    sampling_rate: int | None = None,
    references_sampling_rate: int | None = None,
    settings: MCDSettings = MCD_SETTINGS,
) -> np.ndarray:
    """MCD of each (reference, prediction) pair of utterances of the same text.

    Args:
        references: list of real utterances (any accepted audio form).
        predictions: list of synthesised utterances, ``predictions[i]`` saying the text of ``references[i]``.
        sampling_rate: rate (Hz) of raw-array predictions (and references, unless given below).
        references_sampling_rate: rate (Hz) of raw-array references when it differs.
        settings: analysis settings.

    Returns:
        ``(n,)`` float, MCD in dB per pair; 0 for identical audio, about 2 to 4 dB for the same synthetic
        voice at another speed, 6 to 12 dB between different voices.
    """
    check_paired(references, predictions)
    scores = []
    for index, (reference, prediction) in enumerate(zip(references, predictions)):
        ref = mel_cepstrum(reference, references_sampling_rate or sampling_rate, settings, name=f"references[{index}]")
        pred = mel_cepstrum(prediction, sampling_rate, settings, name=f"predictions[{index}]")
        scores.append(mcd_from_cepstra(ref, pred))
    return np.asarray(scores, dtype=np.float64)


__all__ = ["MCDSettings", "MCD_SETTINGS", "mcd_from_cepstra", "mel_cepstral_distortion", "mel_cepstrum"]
