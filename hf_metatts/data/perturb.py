"""New voices from existing ones: pitch and vocal-tract-length (formant) shifts with the WORLD vocoder.

WORLD (``pyworld``) splits a waveform into F0, spectral envelope and aperiodicity. Scaling F0 moves
the pitch; warping the frequency axis of the envelope by ``alpha`` moves every formant by that factor,
which is what a shorter (``alpha > 1``) or longer (``alpha < 1``) vocal tract does. Each
``Perturbation`` applied to a source voice makes a voice (a task) of its own.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import SourceUnavailableError

logger = logging.getLogger(__name__)

__all__ = ["Perturbation", "perturb", "pyworld_available"]

_FRAME_PERIOD_MS = 10.0  # 5 ms costs twice the time for no audible gain at these shifts
_F0_FLOOR, _F0_CEIL = 60.0, 600.0


@dataclass(frozen=True)
class Perturbation:
    """A pitch factor and a formant (vocal-tract-length) factor; both 1.0 is the identity.

    ``name`` is the suffix of the perturbed voice's ``speaker_id`` (``p1.15_f1.10``).
    """

    pitch: float = 1.0
    formant: float = 1.0

    @property
    def name(self) -> str:
        return f"p{self.pitch:.2f}_f{self.formant:.2f}"

    @property
    def is_identity(self) -> bool:
        return self.pitch == 1.0 and self.formant == 1.0


def _import_pyworld():
    with warnings.catch_warnings():  # pyworld 0.3.x imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        import pyworld
    return pyworld


def pyworld_available() -> tuple[bool, str]:
    """Whether pyworld imports, and a message saying how to get it otherwise."""
    try:
        _import_pyworld()
    except ImportError:
        return False, "pyworld is not installed: pip install 'hf-metatts[data]' (or pip install pyworld)"
    return True, "pyworld"


def _warp_envelope(sp: np.ndarray, alpha: float) -> np.ndarray:
    """Move formants by ``alpha``: new(f) = old(f / alpha), interpolated per frame on the linear axis."""
    bins = sp.shape[1]
    src = np.arange(bins, dtype=np.float64) / alpha
    src = np.clip(src, 0, bins - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, bins - 1)
    w = src - lo
    return np.ascontiguousarray(sp[:, lo] * (1.0 - w) + sp[:, hi] * w)


def perturb(audio: np.ndarray, sampling_rate: int, perturbation: Perturbation) -> np.ndarray:
    """Apply a pitch and formant shift; returns float32 audio of the same rate and about the same length.

    Raises:
        SourceUnavailableError: pyworld is not installed.
    """
    if perturbation.is_identity or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    try:
        pw = _import_pyworld()
    except ImportError as exc:
        raise SourceUnavailableError(pyworld_available()[1]) from exc
    x = audio.astype(np.float64)
    f0, t = pw.dio(x, sampling_rate, f0_floor=_F0_FLOOR, f0_ceil=_F0_CEIL, frame_period=_FRAME_PERIOD_MS)
    f0 = pw.stonemask(x, f0, t, sampling_rate)
    sp = pw.cheaptrick(x, f0, t, sampling_rate)
    ap = pw.d4c(x, f0, t, sampling_rate)
    if perturbation.formant != 1.0:
        sp = _warp_envelope(sp, perturbation.formant)
        ap = _warp_envelope(ap, perturbation.formant)
    y = pw.synthesize(f0 * perturbation.pitch, sp, ap, sampling_rate, _FRAME_PERIOD_MS)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 0.99:  # WORLD can overshoot; keep the level without clipping
        y = y * (0.99 / peak)
    return y.astype(np.float32)
